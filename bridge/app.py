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
import signal
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from bridge.config import Settings
from bridge.errors import BridgeError, ConfigError
from bridge.logs import configure_logging
from bridge.platform import PlatformAdapter
from bridge.web import READY, SERVICES, SlackHTTPHandler, build_web_app

if TYPE_CHECKING:
    from bridge.runtime import Runtime

log = logging.getLogger(__name__)

SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)

# /readyz must answer quickly even when the database hangs; probes usually time out
# after a few seconds, so give up on the ping well before that.
DATABASE_PING_TIMEOUT = 2.0

EXIT_OK = 0
EXIT_START_FAILED = 1

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
    orphans = [
        name
        for name, value in (
            ("SLACK_APP_TOKEN", settings.slack_app_token),
            ("SLACK_SIGNING_SECRET", settings.slack_signing_secret),
        )
        if value is not None
    ]
    if orphans and settings.slack_bot_token is None:
        raise ConfigError(f"{' and '.join(orphans)} set but SLACK_BOT_TOKEN is missing")
    socket_mode = settings.slack_configured and settings.slack_app_token is not None
    slack_http = http and settings.slack_configured and settings.slack_signing_secret is not None
    if settings.slack_configured and not (socket_mode or slack_http):
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
    """The runtime plus the started platform adapters of one process."""

    def __init__(
        self,
        runtime: Runtime,
        adapters: Sequence[PlatformAdapter],
        slack_http_handler: SlackHTTPHandler | None,
    ) -> None:
        self._runtime = runtime
        self._adapters = tuple(adapters)
        self._slack_http_handler = slack_http_handler
        self._drained = False

    @property
    def slack_http_handler(self) -> SlackHTTPHandler | None:
        return self._slack_http_handler

    async def readiness(self) -> dict[str, str]:
        checks = {
            adapter.name: READY if adapter.ready else "not connected" for adapter in self._adapters
        }
        try:
            await asyncio.wait_for(self._runtime.store.ping(), DATABASE_PING_TIMEOUT)
            checks["database"] = READY
        except TimeoutError:
            checks["database"] = f"no answer within {DATABASE_PING_TIMEOUT:.0f}s"
        except Exception as exc:  # any failure means not ready; the reason goes to the probe
            checks["database"] = f"unavailable ({type(exc).__name__})"
        relay = self._runtime.relay
        checks["relay"] = READY if relay.accepting else "draining: not accepting questions"
        return checks

    async def drain(self) -> None:
        """Stop taking questions and wait for answers in flight; only the first call
        does anything (serve drains while listening, the clean-up path drains again)."""
        if self._drained:
            return
        self._drained = True
        relay = self._runtime.relay
        drain_seconds = self._runtime.settings.bridge_drain_seconds
        log.info(
            "shutdown: no new questions; draining %d answers for up to %.0fs",
            relay.active_count,
            drain_seconds,
        )
        await relay.drain(drain_seconds)
        log.info("shutdown: drain finished")


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

        slack = SlackAdapter(runtime.settings, runtime.relay, session=runtime.session)
        adapters.append(slack)
        if plan.slack_http:
            slack_http_handler = slack.http_handler
    if plan.discord:
        from bridge.discord import DiscordAdapter

        adapters.append(DiscordAdapter(runtime.settings, runtime.relay))
    return adapters, slack_http_handler


@asynccontextmanager
async def running_services(settings: Settings, plan: PlatformPlan) -> AsyncIterator[Services]:
    """Open the runtime, start the planned platforms and recover interrupted answers;
    on exit drain the relay, stop the platforms and close the runtime."""
    from bridge.runtime import open_runtime  # keeps `bridge check` from loading the relay

    async with open_runtime(settings) as runtime:
        adapters, slack_http_handler = _build_adapters(runtime, plan)
        services = Services(runtime, adapters, slack_http_handler)
        started: list[PlatformAdapter] = []
        try:
            for adapter in adapters:
                runtime.relay.register_editor(adapter.name, adapter)
                log.info("starting %s", adapter.name)
                await adapter.start()
                started.append(adapter)
            await runtime.relay.recover()
            yield services
            await services.drain()
        finally:
            for adapter in reversed(started):
                log.info("shutdown: stopping %s", adapter.name)
                try:
                    await adapter.stop()
                except Exception:  # one platform failing to stop must not keep the others up
                    log.exception("shutdown: stopping %s failed", adapter.name)
            log.info("shutdown: closing store, backend and HTTP session")


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


async def run_workers(settings: Settings) -> int:
    """`bridge run`: connect Slack Socket Mode and/or Discord until SIGTERM/SIGINT.

    Raises:
        ConfigError: when no platform is configured (naming the variables to set).
    """
    configure_logging(settings)
    plan = plan_platforms(settings, http=False)
    stop = asyncio.Event()
    with _shutdown_on_signals(stop):
        try:
            async with running_services(settings, plan):
                log.info("bridge running: %s", ", ".join(plan.names()))
                await stop.wait()
        except ConfigError:
            raise
        except BridgeError as exc:
            log.error("bridge could not start: %s", exc)
            return EXIT_START_FAILED
    log.info("shutdown complete")
    return EXIT_OK


async def serve_web(settings: Settings) -> int:
    """`bridge serve`: listen on 0.0.0.0:$PORT and run every configured platform.

    Raises:
        ConfigError: when no platform is configured (naming the variables to set).
    """
    configure_logging(settings)
    plan = plan_platforms(settings, http=True)
    app = build_web_app(lambda: running_services(settings, plan))
    access_log = logging.getLogger("aiohttp.access") if settings.log_level == "debug" else None
    runner = web.AppRunner(app, handle_signals=False, access_log=access_log)
    stop = asyncio.Event()
    with _shutdown_on_signals(stop):
        try:
            await runner.setup()  # runs cleanup_ctx: opens the runtime, starts platforms
        except ConfigError:
            raise
        except BridgeError as exc:
            log.error("bridge could not start: %s", exc)
            return EXIT_START_FAILED
        try:
            try:
                await web.TCPSite(runner, "0.0.0.0", settings.port).start()
            except OSError as exc:
                log.error("cannot listen on port %d: %s", settings.port, exc.strerror or exc)
                return EXIT_START_FAILED
            log.info("bridge serving on 0.0.0.0:%d: %s", settings.port, ", ".join(plan.names()))
            await stop.wait()
            # Drain while still listening: /readyz reports "draining" and late Slack
            # events get the relay's polite "restarting" reply instead of a refused connection.
            await app[SERVICES].drain()
        finally:
            await runner.cleanup()  # stops listening, then stops platforms and the runtime
    log.info("shutdown complete")
    return EXIT_OK
