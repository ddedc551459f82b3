"""The HTTP face of `bridge serve`: Slack HTTP events, health, readiness and metrics.

The web app does not know how the bridge's services are built; it is handed a factory
for them and opens/closes them in its `cleanup_ctx`, so the services live exactly as
long as the app (STYLE: one owner for each resource).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

log = logging.getLogger(__name__)

SlackHTTPHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebServices(Protocol):
    """What the web app needs from the running bridge."""

    @property
    def slack_http_handler(self) -> SlackHTTPHandler | None:
        """Handles `POST /slack/events` when Slack HTTP mode is configured, else None."""
        ...

    async def readiness(self) -> dict[str, str]:
        """Component name → `"ok"` or the reason it is not ready."""
        ...

    async def drain(self) -> None:
        """Stop taking questions and wait for answers in flight; called on shutdown while
        the app still listens, before clean-up."""
        ...


SERVICES = web.AppKey("services", WebServices)

READY = "ok"


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process runs its event loop. Deliberately checks nothing else, so a
    slow database or a Slack outage never gets a healthy process restarted."""
    return web.Response(text="ok")


async def readyz(request: web.Request) -> web.Response:
    """Readiness: every configured platform connected, the database answering, and the
    bridge accepting questions (not draining). 503 names what is not ready."""
    checks = await request.app[SERVICES].readiness()
    not_ready = {name: state for name, state in checks.items() if state != READY}
    if not_ready:
        return web.json_response({"status": "not ready", "not_ready": not_ready}, status=503)
    return web.json_response({"status": "ready", "checks": checks})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition format 0.0.4 (what every scraper understands)."""
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


async def slack_events(request: web.Request) -> web.StreamResponse:
    """Slack Events API and interactivity requests, verified by the Slack adapter."""
    handler = request.app[SERVICES].slack_http_handler
    if handler is None:
        raise web.HTTPNotFound(text="Slack HTTP mode is not configured (SLACK_SIGNING_SECRET)")
    return await handler(request)


def build_web_app(
    open_services: Callable[[], AbstractAsyncContextManager[WebServices]],
) -> web.Application:
    """The aiohttp app; `open_services()` is entered at start-up and left at clean-up."""

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        async with open_services() as services:
            app[SERVICES] = services
            yield

    app = web.Application()
    app.cleanup_ctx.append(services_ctx)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/slack/events", slack_events)
    return app
