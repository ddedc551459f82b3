"""Pointing discord.py at another Discord: a proxy, or the fake one in tests.

discord.py keeps its REST base in a class variable (`discord.http.Route.BASE`), so that
override is process-wide and undone on stop. The gateway address is per client: a plain
`discord.Client` always dials `DiscordWebSocket.DEFAULT_GATEWAY` (it never asks
`/gateway/bot`), so we rewrite that one address in this client's `ws_connect` only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord
import yarl
from discord.gateway import DiscordWebSocket

from bridge.config import Settings
from bridge.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_API_BASE = discord.http.Route.BASE


def api_base(settings: Settings) -> str:
    """The REST base discord.py should use (no trailing slash)."""
    return (settings.discord_api_url or DEFAULT_API_BASE).rstrip("/")


def redirect_gateway(url: str, gateway: str) -> str:
    """`url` with Discord's default gateway address replaced by `gateway`, keeping the
    query discord.py adds (`v`, `encoding`, `compress`). Other URLs (the
    `resume_gateway_url` the server handed out) are left alone."""
    original = yarl.URL(url)
    if original.host != DiscordWebSocket.DEFAULT_GATEWAY.host:
        return url
    target = yarl.URL(gateway)
    return str(target.with_query({**target.query, **original.query}))


async def resolve_gateway(settings: Settings, http: discord.http.HTTPClient) -> str | None:
    """The gateway to dial instead of Discord's, or None to keep discord.py's default.

    DISCORD_GATEWAY_URL wins; otherwise, when DISCORD_API_URL is set, ask that API's
    `GET /gateway/bot` (must be called after login, with Route.BASE already moved).

    Raises:
        ConfigError: when the overridden API does not say where its gateway is.
    """
    if settings.discord_gateway_url:
        return settings.discord_gateway_url
    if not settings.discord_api_url:
        return None
    try:
        _shards, url, _limits = await http.get_bot_gateway()
    except discord.GatewayNotFound as exc:
        raise ConfigError(
            f"DISCORD_API_URL={settings.discord_api_url} did not answer GET /gateway/bot; "
            "set DISCORD_GATEWAY_URL to the gateway's ws(s):// address"
        ) from exc
    return str(url)


def use_gateway(client: discord.Client, gateway: str) -> None:
    """Make `client` dial `gateway` wherever it would dial Discord's default address."""
    original: Callable[..., Awaitable[Any]] = client.http.ws_connect

    async def ws_connect(url: str, *, compress: int = 0) -> Any:
        return await original(redirect_gateway(url, gateway), compress=compress)

    client.http.ws_connect = ws_connect  # type: ignore[method-assign]
    log.info("discord gateway overridden: %s", yarl.URL(gateway).with_query(None))
