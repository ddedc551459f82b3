"""The HTTP face of `bridge serve`: Slack HTTP events, health, readiness and metrics.

The web app does not know how the bridge's services are built; it is handed them and
runs them in its `cleanup_ctx`, so they live exactly as long as the app (STYLE: one owner
for each resource). It runs them in a task of their own: the port answers while the
platforms connect, because Heroku stops a web dyno that has not bound $PORT within 60 s
(R10 Boot timeout) and a slow Discord or Slack connect can take most of that.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

log = logging.getLogger(__name__)

SlackHTTPHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]

READY = "ok"

# Slack wants every event acknowledged within 3 s. One that arrives while the platforms
# connect waits this long for the start (0.5 s are left for the network and the ack), so
# the first question after a deploy is answered at once rather than a minute later.
STARTING_HOLD_SECONDS = 2.5

# Slack re-sends an event it got a non-2xx answer for on its own schedule (at once, after
# 1 min, after 5 min) and ignores this header; it tells people and proxies how long a
# start usually takes.
STARTING_RETRY_AFTER_SECONDS = 10


class SlackOAuthPages(Protocol):
    """The two pages of Slack OAuth distribution (bridge.slack.oauth.SlackOAuth)."""

    async def install_page(self, request: web.Request) -> web.StreamResponse: ...

    async def redirect_page(self, request: web.Request) -> web.StreamResponse: ...


class Lifecycle(Protocol):
    """Something with a start-up and a shutdown, run by `in_background`."""

    def running(self) -> AbstractAsyncContextManager[None]:
        """Start on entry (returning once started); drain and stop on exit."""
        ...


class WebServices(Lifecycle, Protocol):
    """What the web app needs from the bridge."""

    @property
    def started(self) -> bool:
        """True once every platform has connected and start-up finished."""
        ...

    @property
    def slack_http_handler(self) -> SlackHTTPHandler | None:
        """Handles `POST /slack/events` in Slack HTTP mode once started, else None."""
        ...

    @property
    def slack_oauth(self) -> SlackOAuthPages | None:
        """The install and redirect pages in Slack OAuth mode once started, else None."""
        ...

    async def readiness(self) -> dict[str, str]:
        """Component name → `"ok"` or the reason it is not ready."""
        ...

    async def drain(self) -> None:
        """Stop taking questions and wait for answers in flight; called on shutdown while
        the app still listens, before clean-up."""
        ...


SERVICES = web.AppKey("services", WebServices)
# Resolves once the services have started, or carries the error that ended the start.
STARTED = web.AppKey("started", asyncio.Future)


@asynccontextmanager
async def in_background(services: Lifecycle) -> AsyncIterator[asyncio.Future[None]]:
    """Enter `services.running()` in a task of its own, so the caller can listen (or wait
    for a signal) while it starts.

    Yields a future that resolves once the services have started, or carries the error
    that ended the start. On exit, services that started are drained and stopped; a
    start still in progress is cancelled (SIGTERM during start-up)."""
    started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    leave = asyncio.Event()

    async def run() -> None:
        try:
            async with services.running():
                started.set_result(None)
                await leave.wait()
        except Exception as exc:  # handed to whoever waits for the start
            if started.done():
                raise
            started.set_exception(exc)

    task = asyncio.create_task(run(), name="bridge-services")
    try:
        yield started
    finally:
        if started.done():
            leave.set()
        else:
            task.cancel()
        await asyncio.wait({task})
        if not task.cancelled():
            task.result()  # an error while stopping is a bug: let it show


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process runs its event loop. Deliberately checks nothing else, so a
    slow database, a Slack outage or a slow start never gets a healthy process restarted."""
    return web.Response(text="ok")


async def readyz(request: web.Request) -> web.Response:
    """Readiness: every configured platform connected, the database answering, and the
    bridge accepting questions (not starting, not draining). 503 names what is not ready."""
    services = request.app[SERVICES]
    checks = await services.readiness()
    not_ready = {name: state for name, state in checks.items() if state != READY}
    if not_ready:
        status = "not ready" if services.started else "starting"
        return web.json_response({"status": status, "not_ready": not_ready}, status=503)
    return web.json_response({"status": "ready", "checks": checks})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition format 0.0.4 (what every scraper understands)."""
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


async def slack_not_configured(request: web.Request) -> web.StreamResponse:
    """`POST /slack/events` without Slack HTTP mode."""
    raise web.HTTPNotFound(text="Slack HTTP mode is not configured (SLACK_SIGNING_SECRET)")


def slack_events_handler(signing_secret: str) -> SlackHTTPHandler:
    """`POST /slack/events`: the Slack adapter's handler once started. Before that the
    signature is still checked here (401 when wrong, as bolt would), and a genuine event
    is held until the start completes (`STARTING_HOLD_SECONDS`), then handed to the
    adapter; only a start that takes longer gets 503, so that Slack sends the event again
    instead of it being lost."""
    from slack_sdk.signature import SignatureVerifier  # only Slack HTTP mode loads it

    verifier = SignatureVerifier(signing_secret)

    async def slack_events(request: web.Request) -> web.StreamResponse:
        handler = request.app[SERVICES].slack_http_handler
        if handler is not None:
            return await handler(request)
        deadline = asyncio.get_running_loop().time() + STARTING_HOLD_SECONDS
        body = await request.read()  # kept by aiohttp: the adapter reads it again
        if not verifier.is_valid_request(body, request.headers):
            raise web.HTTPUnauthorized(text="invalid Slack request signature")
        payload = _json_object(body)
        challenge = payload.get("challenge") if payload.get("type") == "url_verification" else None
        if isinstance(challenge, str):  # Slack checking the Request URL needs no platform
            return web.json_response({"challenge": challenge})
        log.debug("Slack event %s held until the bridge has started", payload.get("event_id"))
        handler = await _handler_once_started(request.app, deadline)
        if handler is not None:
            return await handler(request)
        raise web.HTTPServiceUnavailable(
            text="the bridge is starting; Slack will send this event again",
            headers={"Retry-After": str(STARTING_RETRY_AFTER_SECONDS)},
        )

    return slack_events


async def _handler_once_started(app: web.Application, deadline: float) -> SlackHTTPHandler | None:
    """The Slack handler if the start completes before `deadline` (loop time), else None
    (still starting, or the start failed and the process is ending)."""
    started = app[STARTED]
    timeout = deadline - asyncio.get_running_loop().time()
    await asyncio.wait({started}, timeout=max(timeout, 0))  # never cancels `started`
    if not started.done() or started.cancelled() or started.exception() is not None:
        return None
    return app[SERVICES].slack_http_handler


def _json_object(body: bytes) -> dict[str, object]:
    """The request body as a JSON object, or {} (bolt answers anything else itself)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


async def slack_install(request: web.Request) -> web.StreamResponse:
    """GET /slack/install: the "Add to Slack" page."""
    return await _oauth_pages(request).install_page(request)


async def slack_oauth_redirect(request: web.Request) -> web.StreamResponse:
    """GET /slack/oauth_redirect: where Slack sends the installing browser back."""
    return await _oauth_pages(request).redirect_page(request)


def _oauth_pages(request: web.Request) -> SlackOAuthPages:
    pages = request.app[SERVICES].slack_oauth
    if pages is None:
        raise web.HTTPServiceUnavailable(
            text="The bridge is starting; reload this page in a few seconds.",
            headers={"Retry-After": str(STARTING_RETRY_AFTER_SECONDS)},
        )
    return pages


async def _services_ctx(app: web.Application) -> AsyncIterator[None]:
    async with in_background(app[SERVICES]) as started:
        app[STARTED] = started
        yield


def build_web_app(
    services: WebServices, *, slack_signing_secret: str | None, slack_oauth: bool = False
) -> web.Application:
    """The aiohttp app. Its set-up starts `services.running()` in the background (see
    `STARTED`), its clean-up leaves it; `slack_signing_secret` enables Slack HTTP mode,
    `slack_oauth` the install pages of Slack OAuth distribution."""
    app = web.Application()
    app[SERVICES] = services
    app.cleanup_ctx.append(_services_ctx)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    events = (
        slack_events_handler(slack_signing_secret)
        if slack_signing_secret is not None
        else slack_not_configured
    )
    app.router.add_post("/slack/events", events)
    if slack_oauth:
        app.router.add_get("/slack/install", slack_install)
        app.router.add_get("/slack/oauth_redirect", slack_oauth_redirect)
    return app
