"""The two long-running processes: `bridge run` (workers) and `bridge serve` (web).

`run` connects the platforms that need no inbound HTTP (Slack Socket Mode, Discord).
`serve` listens on $PORT for Slack HTTP events, /healthz, /readyz and /metrics, and
*also* runs Socket Mode and Discord when they are configured, so one web dyno can do
everything. Run one of the two per deployment, not both: two processes holding the same
Discord token would each receive every message.

Shutdown (SIGTERM from the platform, or Ctrl-C): stop accepting questions, let answers
in flight finish for up to BRIDGE_DRAIN_SECONDS (the relay marks the rest interrupted
and says so in their replies), stop the platforms, close the runtime, exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from bridge.config import Settings
from bridge.errors import BridgeError, ConfigError, StartupError, StoreError
from bridge.gc_tuning import tune_for_serving
from bridge.logs import configure_logging
from bridge.platform import PlatformAdapter
from bridge.web import (
    READY,
    STARTED,
    SlackHTTPHandler,
    SlackOAuthPages,
    build_web_app,
    in_background,
)

if TYPE_CHECKING:
    from bridge.runtime import Runtime

log = logging.getLogger(__name__)

SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)

# /readyz must answer quickly even when the database hangs; probes usually time out
# after a few seconds, so give up on the ping well before that.
DATABASE_PING_TIMEOUT = 2.0

# The backlog aiohttp's own sites use.
LISTEN_BACKLOG = 128
LISTEN_HOST = "0.0.0.0"

EXIT_OK = 0
# The fix for a platform that could not connect at start (a rejected token is a
# ConfigError with its own fix).
START_FIX = "check the network and any SLACK_API_URL / DISCORD_API_URL, then start again"
DATABASE_START_FIX = "check DATABASE_URL and that the database is reachable (bridge check)"

_NO_PLATFORM = (
    "no chat platform to connect: set SLACK_BOT_TOKEN and SLACK_APP_TOKEN (Slack Socket "
    "Mode) and/or DISCORD_TOKEN (Discord); for Slack HTTP events set SLACK_BOT_TOKEN and "
    "SLACK_SIGNING_SECRET and use `bridge serve`"
)


@dataclass(frozen=True)
class PlatformPlan:
    """Which platforms this process connects, decided from the settings alone."""

    slack: bool  # create the Slack adapter (Socket Mode and/or HTTP events)
    slack_http: bool  # mount Slack HTTP events at /slack/events
    discord: bool

    def names(self) -> list[str]:
        return [name for name, on in (("slack", self.slack), ("discord", self.discord)) if on]


def plan_platforms(settings: Settings, *, http: bool) -> PlatformPlan:
    """Decide what to connect; `http` is True for `bridge serve`.

    Raises:
        ConfigError: when a Slack variable is set without the bot token, or when nothing
            at all can be connected (naming the variables to set).
    """
    oauth = settings.slack_oauth_configured
    orphans = [
        name
        for name, value in (
            ("SLACK_APP_TOKEN", settings.slack_app_token),
            ("SLACK_SIGNING_SECRET", settings.slack_signing_secret),
        )
        if value is not None
    ]
    if orphans and settings.slack_bot_token is None and not oauth:
        raise ConfigError(f"{' and '.join(orphans)} set but SLACK_BOT_TOKEN is missing")
    slack_on = settings.slack_configured or oauth
    socket_mode = slack_on and settings.slack_app_token is not None
    slack_http = http and slack_on and settings.slack_signing_secret is not None
    if oauth and not http:
        log.warning("Slack OAuth mode needs `bridge serve` (for /slack/install and events)")
        socket_mode = False
    elif slack_on and not (socket_mode or slack_http):
        log.warning(
            "Slack is not connected: set SLACK_APP_TOKEN for Socket Mode%s",
            "" if http else ", or set SLACK_SIGNING_SECRET and use `bridge serve`",
        )
    plan = PlatformPlan(
        slack=socket_mode or slack_http, slack_http=slack_http, discord=settings.discord_configured
    )
    if not plan.names():
        raise ConfigError(_NO_PLATFORM)
    return plan


class Services:
    """The runtime and platform adapters of one process, from start-up to shutdown.

    Built before anything is opened, so that /readyz can name what is still starting
    while `running()` opens the runtime and connects the platforms one by one.
    """

    def __init__(self, settings: Settings, plan: PlatformPlan) -> None:
        self._settings = settings
        self._plan = plan
        self._runtime: Runtime | None = None
        self._adapters: dict[str, PlatformAdapter] = {}
        self._slack_http_handler: SlackHTTPHandler | None = None
        self._slack_oauth: SlackOAuthPages | None = None
        self._started = False
        self._start_failed = False  # a platform raised while starting
        self._drained = False

    @property
    def started(self) -> bool:
        return self._started

    @property
    def slack_http_handler(self) -> SlackHTTPHandler | None:
        return self._slack_http_handler

    @property
    def slack_oauth(self) -> SlackOAuthPages | None:
        return self._slack_oauth

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Open the runtime, start the planned platforms and recover interrupted answers;
        on exit drain the relay, stop the platforms and close the runtime."""
        from bridge.runtime import open_runtime  # keeps `bridge check` from loading the relay

        async with open_runtime(self._settings) as runtime:
            self._runtime = runtime
            adapters, slack_http_handler = _build_adapters(runtime, self._plan)
            slack = next((a for a in adapters if a.name == "slack"), None)
            oauth = getattr(slack, "oauth", None)
            try:
                for adapter in adapters:
                    # Known before it starts: stop() is safe on a half-started adapter,
                    # and SIGTERM or an error may come while it connects.
                    self._adapters[adapter.name] = adapter
                    runtime.relay.register_editor(adapter.name, adapter)
                    log.info("starting %s", adapter.name)
                    await adapter.start()
                runtime.relay.start_recovery()
                self._slack_http_handler = slack_http_handler
                self._slack_oauth = oauth
                self._started = True
                yield
            except BridgeError:
                self._start_failed = not self._started
                raise
            finally:
                # Also when start-up fails or is cancelled after a platform connected:
                # questions it already took still end visibly, before anything closes.
                await self.drain()
                await self._stop_platforms()
                self._log_shutdown("shutdown: closing store, backend and HTTP session")

    def _log_shutdown(self, message: str, *args: object) -> None:
        """Shutdown steps are news after a start; after a failed start, the one line
        saying why is (the CLI prints it), so the steps go to the debug log."""
        log.log(logging.DEBUG if self._start_failed else logging.INFO, message, *args)

    async def _stop_platforms(self) -> None:
        for adapter in reversed(self._adapters.values()):
            self._log_shutdown("shutdown: stopping %s", adapter.name)
            try:
                await adapter.stop()
            except Exception:  # one platform failing to stop must not keep the others up
                log.exception("shutdown: stopping %s failed", adapter.name)

    async def readiness(self) -> dict[str, str]:
        checks = {name: self._platform_state(name) for name in self._plan.names()}
        checks["database"] = await self._database_state()
        checks["relay"] = self._relay_state()
        return checks

    def _platform_state(self, name: str) -> str:
        adapter = self._adapters.get(name)
        if adapter is None:
            return "waiting to connect"
        if adapter.ready:
            return READY
        return "not connected" if self._started else "connecting"

    async def _database_state(self) -> str:
        if self._runtime is None:
            return "opening"
        try:
            await asyncio.wait_for(self._runtime.store.ping(), DATABASE_PING_TIMEOUT)
        except TimeoutError:
            return f"no answer within {DATABASE_PING_TIMEOUT:.0f}s"
        except Exception as exc:  # any failure means not ready; the reason goes to the probe
            return f"unavailable ({type(exc).__name__})"
        return READY

    def _relay_state(self) -> str:
        if not self._started or self._runtime is None:
            return "starting"
        return READY if self._runtime.relay.accepting else "draining: not accepting questions"

    async def drain(self) -> None:
        """Stop taking questions and wait for answers in flight; only the first call
        does anything (serve drains while listening, the clean-up path drains again)."""
        runtime = self._runtime
        if self._drained or runtime is None:
            return
        self._drained = True
        relay = runtime.relay
        drain_seconds = self._settings.bridge_drain_seconds
        self._log_shutdown(
            "shutdown: no new questions; draining %d answers for up to %.0fs",
            relay.active_count,
            drain_seconds,
        )
        await relay.drain(drain_seconds)
        self._log_shutdown("shutdown: drain finished")


def _build_adapters(
    runtime: Runtime, plan: PlatformPlan
) -> tuple[list[PlatformAdapter], SlackHTTPHandler | None]:
    """The planned adapters and, in Slack HTTP mode, the handler for /slack/events.

    Platform packages are imported only when used: a Discord-only bridge never loads
    slack_bolt, and the other way round."""
    adapters: list[PlatformAdapter] = []
    slack_http_handler: SlackHTTPHandler | None = None
    if plan.slack:
        from bridge.slack import SlackAdapter

        slack = SlackAdapter(
            runtime.settings,
            runtime.relay,
            session=runtime.pools.slack,
            feedback=runtime.feedback,
            handoffs=runtime.handoffs,
            store=runtime.store,
        )
        adapters.append(slack)
        if plan.slack_http:
            slack_http_handler = slack.http_handler
    if plan.discord:
        from bridge.discord import DiscordAdapter

        adapters.append(
            DiscordAdapter(
                runtime.settings,
                runtime.relay,
                feedback=runtime.feedback,
                handoffs=runtime.handoffs,
            )
        )
    return adapters, slack_http_handler


@contextmanager
def _shutdown_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Turn SIGTERM/SIGINT into `stop.set()` for the lifetime of the block."""
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("%s received again: already shutting down", sig.name)
            return
        log.info("%s received: shutting down", sig.name)
        stop.set()

    for sig in SHUTDOWN_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        yield
    finally:
        for sig in SHUTDOWN_SIGNALS:
            loop.remove_signal_handler(sig)


async def _started_before_stop(started: asyncio.Future[None], stop: asyncio.Event) -> bool:
    """Wait for the start to finish (True) or SIGTERM/SIGINT to come first (False).

    Raises:
        BridgeError: what ended the start.
    """
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({started, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not started.done():
        return False
    started.result()
    return True


async def _until_stopped(
    services: Services, started: asyncio.Future[None], stop: asyncio.Event, up: str
) -> None:
    """Wait for the start, log `up`, wait for SIGTERM/SIGINT and drain; return at once
    when the signal comes during start-up (leaving the services cancels the start)."""
    if not await _started_before_stop(started, stop):
        log.info("shutdown: stopped during start-up")
        return
    log.info("%s", up)
    await stop.wait()
    await services.drain()


async def _exit_status(work: Awaitable[None]) -> int:
    """Run `work` (start, run, shut down) and turn its outcome into the exit status.

    A platform that could not start becomes a StartupError, which the CLI prints as one
    line and exit code 2, like a ConfigError; never a traceback."""
    try:
        await work
    except (ConfigError, StartupError):
        raise
    except BridgeError as exc:
        fix = DATABASE_START_FIX if isinstance(exc, StoreError) else START_FIX
        raise StartupError(f"could not start: {exc}; {fix}") from exc
    log.info("shutdown complete")
    return EXIT_OK


async def run_workers(settings: Settings) -> int:
    """`bridge run`: connect Slack Socket Mode and/or Discord until SIGTERM/SIGINT.

    Raises:
        ConfigError: when no platform is configured (naming the variables to set).
    """
    configure_logging(settings)
    tune_for_serving()
    plan = plan_platforms(settings, http=False)
    services = Services(settings, plan)
    stop = asyncio.Event()

    async def work() -> None:
        async with in_background(services) as started:
            await _until_stopped(
                services, started, stop, f"bridge running: {', '.join(plan.names())}"
            )

    with _shutdown_on_signals(stop):
        return await _exit_status(work())


def _listen(port: int) -> socket.socket:
    """Bind 0.0.0.0:`port` and listen, before anything else starts (Heroku R10)."""
    return socket.create_server((LISTEN_HOST, port), backlog=LISTEN_BACKLOG)


async def serve_web(settings: Settings) -> int:
    """`bridge serve`: listen on 0.0.0.0:$PORT at once, then run every configured platform.

    Raises:
        ConfigError: when no platform is configured (naming the variables to set).
    """
    configure_logging(settings)
    tune_for_serving()
    plan = plan_platforms(settings, http=True)
    services = Services(settings, plan)
    secret = settings.slack_signing_secret
    app = build_web_app(
        services,
        slack_signing_secret=secret.get_secret_value() if plan.slack_http and secret else None,
        slack_oauth=plan.slack_http and settings.slack_oauth_configured,
    )
    try:
        listener = _listen(settings.port)
    except OSError as exc:
        reason = (os.strerror(exc.errno) if exc.errno else str(exc)).lower()
        raise StartupError(
            f"cannot listen on port {settings.port} ({reason}): stop the program using it, "
            "or set PORT (or --port) to another port"
        ) from exc
    access_log = logging.getLogger("aiohttp.access") if settings.log_level == "debug" else None
    runner = web.AppRunner(app, handle_signals=False, access_log=access_log)
    stop = asyncio.Event()
    names = ", ".join(plan.names())

    async def work() -> None:
        await runner.setup()  # runs cleanup_ctx: the services start in the background
        try:
            await web.SockSite(runner, listener, backlog=LISTEN_BACKLOG).start()
            log.info("listening on %s:%d; connecting %s", LISTEN_HOST, settings.port, names)
            # Drain while still listening (in _until_stopped): /readyz reports "draining"
            # and late Slack events get the relay's polite "restarting" reply instead of
            # a refused connection.
            await _until_stopped(
                services,
                app[STARTED],
                stop,
                f"bridge serving on {LISTEN_HOST}:{settings.port}: {names}",
            )
        finally:
            await runner.cleanup()  # stops listening, then stops platforms and the runtime

    with listener, _shutdown_on_signals(stop):
        return await _exit_status(work())
