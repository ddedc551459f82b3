"""Slack Web API trouble that is not Slack's JSON still becomes a typed error."""

from __future__ import annotations

import socket

import pytest
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from bridge.errors import PlatformUnreachable
from bridge.slack.api import SlackApi, SlackCallError
from bridge.slack.budget import WorkspaceBudgets
from bridge.testing.server import serve_app


def api_at(base_url: str) -> SlackApi:
    return SlackApi(AsyncWebClient(token="xoxb-test", base_url=base_url), WorkspaceBudgets())


async def test_an_html_error_page_is_a_slack_call_error() -> None:
    async def proxy_error(request: web.Request) -> web.Response:
        return web.Response(
            status=502, text="<html><h1>Bad gateway</h1></html>", content_type="text/html"
        )

    app = web.Application()
    app.router.add_route("*", "/api/{method}", proxy_error)
    runner, port = await serve_app(app)
    try:
        with pytest.raises(SlackCallError) as caught:
            await api_at(f"http://127.0.0.1:{port}/api/").call(
                "chat.postMessage", channel="C1", text="hi"
            )
    finally:
        await runner.cleanup()
    assert caught.value.error == "http_502"


async def test_an_unreachable_slack_is_transient_not_a_refusal() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(PlatformUnreachable) as caught:
        await api_at(f"http://127.0.0.1:{port}/api/").call("chat.update", channel="C1", ts="1")
    assert caught.value.retry_after > 0 and caught.value.platform == "slack"


async def test_a_new_message_whose_answer_was_lost_is_not_sent_twice() -> None:
    async def hang_up(request: web.Request) -> web.StreamResponse:
        await request.read()
        assert request.transport is not None
        request.transport.close()  # the request arrived; the answer never comes
        return web.Response()

    app = web.Application()
    app.router.add_route("*", "/api/{method}", hang_up)
    runner, port = await serve_app(app)
    try:
        api = api_at(f"http://127.0.0.1:{port}/api/")
        with pytest.raises(SlackCallError, match="unconfirmed"):
            await api.call("chat.postMessage", channel="C1", text="hi")
        with pytest.raises(PlatformUnreachable):  # an edit can simply be repeated
            await api.call("chat.update", channel="C1", ts="1", text="hi")
    finally:
        await runner.cleanup()
