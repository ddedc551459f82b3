"""Chat backend clients and the factory that picks one from the settings.

The names below load on first use (PEP 562 module `__getattr__`), so that importing a
light part such as `bridge.backends.sse` does not also import aiohttp, pydantic-settings
and prometheus-client (about a quarter of a second) through this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bridge.backends.base import ChatBackend
    from bridge.backends.factory import build_backend
    from bridge.backends.widget import WidgetClient
    from bridge.backends.wonderchat import WonderchatClient

__all__ = ["ChatBackend", "WidgetClient", "WonderchatClient", "build_backend"]

_HOMES = {
    "ChatBackend": "bridge.backends.base",
    "WidgetClient": "bridge.backends.widget",
    "WonderchatClient": "bridge.backends.wonderchat",
    "build_backend": "bridge.backends.factory",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value
