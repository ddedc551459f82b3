"""A local receiver for `BRIDGE_FEEDBACK_WEBHOOK_URL` in tests: records every POST and can
fail the first few with HTTP 500, as a receiver that is restarting would."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from bridge.testing.server import serve_app

WAIT_SECONDS = 15.0  # generous bound for a condition on a shared machine


class WebhookReceiver:
    """`async with WebhookReceiver(fail_first=2) as receiver:` then point the bridge at
    `receiver.url`; `attempts` holds every body received, `accepted` the ones answered 200."""

    def __init__(self, *, fail_first: int = 0) -> None:
        self._fail_first = fail_first
        self.attempts: list[dict[str, Any]] = []
        self.accepted: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/feedback"

    async def __aenter__(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/feedback", self._receive)
        self._runner, self.port = await serve_app(app)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, accepted: int, *, within: float = WAIT_SECONDS) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self.accepted) >= accepted)

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.attempts.append(body)
        failing = len(self.attempts) <= self._fail_first
        if not failing:
            self.accepted.append(body)
        async with self._changed:
            self._changed.notify_all()
        return web.Response(status=500 if failing else 200, text="down" if failing else "ok")
