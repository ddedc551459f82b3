"""HTTP Events API mode: the adapter's aiohttp handler, with real signed requests."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from bridge.testing.fake_slack import signed_headers

if TYPE_CHECKING:
    from conftest import Bridge, StartBridge

SECRET = "http-mode-signing-secret"
STALE_SECONDS = 10 * 60  # bolt rejects timestamps more than 5 minutes off


@asynccontextmanager
async def events_endpoint(bridge: Bridge) -> AsyncIterator[str]:
    """Mount `adapter.http_handler` at POST /slack/events on 127.0.0.1; yield its URL."""
    app = web.Application()
    app.router.add_post("/slack/events", bridge.adapter.http_handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/slack/events"
    finally:
        await runner.cleanup()


async def post(
    url: str,
    payload: dict[str, Any],
    *,
    secret: str = SECRET,
    timestamp: int | None = None,
    **headers: str,
) -> tuple[int, str]:
    body = json.dumps(payload).encode()
    signed = signed_headers(secret, body, timestamp)
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=signed | headers) as response,
    ):
        return response.status, await response.text()


async def post_form(url: str, fields: dict[str, str], *, secret: str = SECRET) -> int:
    """POST signed form fields, as Slack sends slash commands and interactivity."""
    body = urlencode(fields).encode()
    headers = signed_headers(secret, body) | {"Content-Type": "application/x-www-form-urlencoded"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        return response.status


def http_mode(running_bridge: StartBridge) -> Any:
    return running_bridge(slack_app_token=None, slack_signing_secret=SECRET)


async def test_http_mode_starts_without_socket_mode(running_bridge: StartBridge) -> None:
    async with http_mode(running_bridge) as bridge:
        assert bridge.adapter.ready
        assert not bridge.slack.calls_to("apps.connections.open")


async def test_url_verification_echoes_the_challenge(running_bridge: StartBridge) -> None:
    async with http_mode(running_bridge) as bridge, events_endpoint(bridge) as url:
        status, text = await post(url, {"type": "url_verification", "challenge": "c-123"})
        assert status == 200 and "c-123" in text


async def test_signed_event_is_answered_once_despite_slack_retries(
    running_bridge: StartBridge,
) -> None:
    async with http_mode(running_bridge) as bridge, events_endpoint(bridge) as url:
        event = bridge.mention("over http")
        assert (await post(url, event))[0] == 200
        for attempt in ("1", "2"):
            status, _ = await post(
                url, event, **{"X-Slack-Retry-Num": attempt, "X-Slack-Retry-Reason": "http_timeout"}
            )
            assert status == 200
        [reply] = await bridge.answered("C1", event["event"]["ts"])
        assert "over http" in reply.text
        assert len(bridge.mock.requests) == 1


async def test_forged_and_stale_signatures_are_rejected(running_bridge: StartBridge) -> None:
    async with http_mode(running_bridge) as bridge, events_endpoint(bridge) as url:
        forged = await post(url, bridge.mention("forged"), secret="not-the-secret")
        stale = await post(url, bridge.mention("stale"), timestamp=int(time.time()) - STALE_SECONDS)
        assert forged[0] == 401
        assert stale[0] == 401
        # A valid request afterwards is answered, and is the only question asked.
        event = bridge.mention("genuine")
        assert (await post(url, event))[0] == 200
        await bridge.answered("C1", event["event"]["ts"])
        assert [r.json["question"] for r in bridge.mock.requests] == ["genuine"]
