"""Picks and builds the backend client the settings ask for."""

from __future__ import annotations

import aiohttp

from bridge.backends.base import ChatBackend
from bridge.backends.widget import WidgetClient
from bridge.backends.wonderchat import WonderchatClient
from bridge.config import BackendName, Settings
from bridge.errors import ConfigError


def build_backend(
    settings: Settings, session: aiohttp.ClientSession, name: BackendName | str | None = None
) -> ChatBackend:
    """The backend client for `name` (default: `settings.backend_name()`).

    Raises:
        ConfigError: naming the variables to set when that backend is not configured.
    """
    if name is not None:
        settings = settings.model_copy(update={"bridge_backend": name})
    chosen = settings.backend_name()
    if chosen == "widget":
        return WidgetClient.from_settings(settings, session)
    if chosen == "wonderchat":
        return WonderchatClient.from_settings(settings, session)
    raise ConfigError(f"unknown backend {chosen!r}: use wonderchat or widget")
