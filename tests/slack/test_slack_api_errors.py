"""Slack Web API answers that are not Slack's JSON still become typed errors."""

from __future__ import annotations

import pytest
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from bridge.slack.api import SlackApi, SlackCallError
from bridge.slack.budget import WorkspaceBudgets
from bridge.testing.server import serve_app


async def test_an_html_error_page_is_a_slack_call_error() -> None:
    async def proxy_error(request: web.Request) -> web.Response:
        return web.Response(
            status=502, text="<html><h1>Bad gateway</h1></html>", content_type="text/html"
        )

    app = web.Application()
    app.router.add_route("*", "/api/{method}", proxy_error)
    runner, port = await serve_app(app)
    try:
        client = AsyncWebClient(token="xoxb-test", base_url=f"http://127.0.0.1:{port}/api/")
        with pytest.raises(SlackCallError) as caught:
            await SlackApi(client, WorkspaceBudgets()).call(
                "chat.postMessage", channel="C1", text="hi"
            )
    finally:
        await runner.cleanup()
    assert caught.value.error == "http_502"
