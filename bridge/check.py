"""`bridge check`: validate the configuration and try every configured credential.

Each item prints one line — ✓ works, ✗ broken (followed by how to fix it), – skipped
because nothing is configured for it, ! a warning (a misspelled variable) — and the exit
code is non-zero when any item is broken, so a deploy script can run it first. What an
item found goes through the log redactor: an error message from a platform must not echo
a token back to the terminal (the fixes are our own text, examples included).

The list is all it prints: one message per problem, no log lines (unless
LOG_LEVEL=debug), one backend attempt instead of the retries, and no file created or
changed — a missing SQLite file is reported, not created.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from http import HTTPStatus

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bridge import __version__
from bridge.app import plan_platforms
from bridge.backends import build_backend
from bridge.backends.events import AnswerDone, AnswerFailed, TextDelta
from bridge.config import BackendName, Settings
from bridge.errors import BridgeError, ConfigError
from bridge.logs import Redactor, configure_logging
from bridge.routes import RoutesError, load_routes
from bridge.store import open_store
from bridge.store.base import is_postgres_url
from bridge.store.probe import SQLiteState, probe_sqlite
from bridge.typos import unknown_variables

DEFAULT_SLACK_API_URL = AsyncWebClient.BASE_URL
DEFAULT_DISCORD_API_URL = "https://discord.com/api/v10"

# A credential check is one small request; if it takes longer than this the network or
# the URL is wrong, and saying so beats hanging a deploy script.
HTTP_TIMEOUT_SECONDS = 15.0
# The backend check asks a real question; answers can take a while to start.
BACKEND_TIMEOUT_SECONDS = 90.0
BACKEND_PING_QUESTION = "ping"

# Discord application flags (Developer Portal → Bot → Privileged Gateway Intents).
GATEWAY_MESSAGE_CONTENT = 1 << 18
GATEWAY_MESSAGE_CONTENT_LIMITED = 1 << 19

# Slack shows signing secrets as 32 lowercase hex characters.
_SIGNING_SECRET_SHAPE = re.compile(r"[0-9a-f]{32}")

EXIT_OK = 0
EXIT_PROBLEMS = 1

# What a credential request can fail with short of an answer (ValueError: a 200 that is
# not JSON, as from a captive portal or a wrong URL).
_UNREACHABLE = (aiohttp.ClientError, TimeoutError, ValueError)


class Status(Enum):
    OK = "✓"
    FAILED = "✗"
    SKIPPED = "–"
    WARNING = "!"


@dataclass(frozen=True)
class CheckResult:
    """One line of `bridge check` output."""

    status: Status
    item: str
    detail: str
    fix: str = ""

    def lines(self, redact: Callable[[str], str] = str) -> list[str]:
        text = [redact(f"{self.status.value} {self.item}: {self.detail}")]
        if self.status is Status.FAILED and self.fix:
            text.append(f"    fix: {self.fix}")
        return text


def ok(item: str, detail: str) -> CheckResult:
    return CheckResult(Status.OK, item, detail)


def failed(item: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(Status.FAILED, item, detail, fix)


def skipped(item: str, why: str = "not configured") -> CheckResult:
    return CheckResult(Status.SKIPPED, item, f"skipped ({why})")


# --- configuration ------------------------------------------------------------------------


def check_variables(settings: Settings) -> list[CheckResult]:
    """Variables that look like settings but are not (typos), as warnings."""
    return [
        CheckResult(Status.WARNING, "Variable", variable.message())
        for variable in unknown_variables(also_known=settings.routed_key_names())
    ]


def check_platforms(settings: Settings) -> CheckResult:
    """At least one platform must be connectable, or `bridge run`/`serve` refuse to start."""
    slack_without_events = (
        settings.slack_configured
        and settings.slack_app_token is None
        and settings.slack_signing_secret is None
    )
    if slack_without_events and not settings.discord_configured:
        # One missing variable, one message: "Slack events" below says which to set.
        return skipped("Platforms", "Slack has no event mode yet, see Slack events")
    try:
        plan = plan_platforms(settings, http=True)
    except ConfigError as exc:
        return failed("Platforms", str(exc), "set the variables named above (see docs/deploy.md)")
    modes = []
    if plan.slack:
        modes.append("Slack (" + _slack_modes(settings) + ")")
    if plan.discord:
        modes.append("Discord")
    return ok("Platforms", ", ".join(modes))


def _slack_modes(settings: Settings) -> str:
    modes = []
    if settings.slack_app_token is not None:
        modes.append("Socket Mode: bridge run or serve")
    if settings.slack_signing_secret is not None:
        modes.append("HTTP events: bridge serve")
    return "; ".join(modes)


def check_routes(settings: Settings) -> CheckResult:
    """BRIDGE_ROUTES_FILE parses, names only known keys and set variables, and routes each
    place once; the error names the file and line."""
    item = "Routes"
    if not settings.bridge_routes_file:
        return skipped(item, "BRIDGE_ROUTES_FILE not set: one chatbot everywhere")
    try:
        table = load_routes(settings.bridge_routes_file)
    except RoutesError as exc:
        return failed(item, str(exc), "correct that line (format: docs/routing.md)")
    chatbots = len(table.targets())
    auto = sum(route.mode == "all" for route in table.routes)
    return ok(
        item,
        f"{len(table.routes)} rules, {chatbots} routed chatbots, {auto} auto-answer "
        "(see `bridge routes`)",
    )


# --- Slack ----------------------------------------------------------------------------------


def check_slack_oauth(settings: Settings) -> list[CheckResult]:
    """OAuth distribution: all three credentials and a usable key for the stored tokens.
    Nothing is listed when no OAuth variable is set (single-workspace or no Slack)."""
    item = "Slack OAuth"
    given = {
        "SLACK_CLIENT_ID": settings.slack_client_id,
        "SLACK_CLIENT_SECRET": settings.slack_client_secret,
        "BRIDGE_SECRET_KEY": settings.bridge_secret_key,
    }
    if not any(given.values()):
        return []
    if not settings.slack_oauth_configured:
        missing = [
            name for name, value in given.items() if not value and name != "BRIDGE_SECRET_KEY"
        ]
        if settings.slack_signing_secret is None:
            missing.append("SLACK_SIGNING_SECRET")
        return [
            failed(
                item,
                f"{', '.join(missing)} not set: OAuth distribution needs SLACK_CLIENT_ID, "
                "SLACK_CLIENT_SECRET and SLACK_SIGNING_SECRET",
                "set them from the app's Basic Information page (docs/slack.md)",
            )
        ]
    from bridge.slack.oauth import INSTALL_PATH, sealer_from

    try:
        sealer_from(settings)
    except ConfigError as exc:
        return [failed(item, str(exc), "set BRIDGE_SECRET_KEY (docs/slack.md#many-workspaces)")]
    detail = f"tokens encrypted at rest; workspaces install at {INSTALL_PATH} (bridge serve)"
    return [ok(item, detail)]


async def check_slack(settings: Settings, session: aiohttp.ClientSession) -> list[CheckResult]:
    if settings.slack_bot_token is None:
        return [skipped("Slack")]
    base_url = settings.slack_api_url or DEFAULT_SLACK_API_URL
    base_url = base_url if base_url.endswith("/") else base_url + "/"

    client = AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=base_url,
        session=session,
        timeout=int(HTTP_TIMEOUT_SECONDS),
    )
    results = [await _slack_bot_token(client)]
    app_token, secret = settings.slack_app_token, settings.slack_signing_secret
    if app_token is None and secret is None:
        results.append(
            failed(
                "Slack events",
                "neither Socket Mode nor HTTP events is configured, so no event can arrive",
                "set SLACK_APP_TOKEN (Socket Mode, no public URL needed) or "
                "SLACK_SIGNING_SECRET (HTTP events via `bridge serve`)",
            )
        )
        return results
    if app_token is not None:
        results.append(await _slack_app_token(client, app_token.get_secret_value()))
    else:
        results.append(skipped("Slack app token (Socket Mode)", "SLACK_APP_TOKEN not set"))
    if secret is not None:
        results.append(_slack_signing_secret(secret.get_secret_value()))
    else:
        results.append(
            skipped("Slack signing secret (HTTP events)", "SLACK_SIGNING_SECRET not set")
        )
    return results


async def _slack_bot_token(client: AsyncWebClient) -> CheckResult:
    item = "Slack bot token"
    fix = (
        "copy the Bot User OAuth Token (xoxb-…) from your Slack app's OAuth & Permissions "
        "page into SLACK_BOT_TOKEN; reinstall the app to the workspace if it was revoked"
    )
    try:
        response = await client.auth_test()
    except SlackApiError as exc:
        return failed(item, f"auth.test refused: {exc.response.get('error', 'unknown error')}", fix)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return failed(item, f"cannot reach the Slack API ({type(exc).__name__})", _slack_url_fix())
    return ok(item, f"authenticated as @{response.get('user')} in {response.get('team')}")


async def _slack_app_token(client: AsyncWebClient, app_token: str) -> CheckResult:
    item = "Slack app token (Socket Mode)"
    fix = (
        "turn on Socket Mode in your Slack app's settings, create an app-level token (xapp-…) "
        "with the connections:write scope under Basic Information → App-Level Tokens, and "
        "put it in SLACK_APP_TOKEN"
    )
    try:
        await client.apps_connections_open(app_token=app_token)
    except SlackApiError as exc:
        error = exc.response.get("error", "unknown error")
        return failed(item, f"apps.connections.open refused: {error}", fix)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return failed(item, f"cannot reach the Slack API ({type(exc).__name__})", _slack_url_fix())
    return ok(item, "Socket Mode connections can be opened")


def _slack_signing_secret(secret: str) -> CheckResult:
    item = "Slack signing secret (HTTP events)"
    if _SIGNING_SECRET_SHAPE.fullmatch(secret):
        return ok(item, "well-formed (Slack verifies it on the first event)")
    return failed(
        item,
        "not 32 lowercase hex characters",
        "copy the Signing Secret (not the client secret or a token) from Basic Information "
        "→ App Credentials into SLACK_SIGNING_SECRET",
    )


def _slack_url_fix() -> str:
    return "check the network and SLACK_API_URL (unset it to use https://slack.com/api/)"


# --- Discord --------------------------------------------------------------------------------


async def check_discord(settings: Settings, session: aiohttp.ClientSession) -> list[CheckResult]:
    if settings.discord_token is None:
        return [skipped("Discord")]
    api = (settings.discord_api_url or DEFAULT_DISCORD_API_URL).rstrip("/")
    headers = {
        "Authorization": f"Bot {settings.discord_token.get_secret_value()}",
        # Discord asks API clients to send a `DiscordBot (…)` User-Agent.
        "User-Agent": f"DiscordBot (bridge, {__version__})",
    }

    async def get(path: str) -> tuple[int, dict[str, object]]:
        timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_SECONDS)
        async with session.get(api + path, headers=headers, timeout=timeout) as response:
            ok_status = response.status == HTTPStatus.OK
            body = await response.json(content_type=None) if ok_status else {}
            return response.status, body if isinstance(body, dict) else {}

    item = "Discord bot token"
    try:
        status, me = await get("/users/@me")
    except _UNREACHABLE as exc:
        return [
            failed(item, f"cannot reach the Discord API ({type(exc).__name__})", _discord_url_fix())
        ]
    if status == HTTPStatus.UNAUTHORIZED:
        fix = (
            "copy the token from the Developer Portal → your application → Bot (Reset "
            "Token) into DISCORD_TOKEN, without a 'Bot ' prefix"
        )
        return [failed(item, "Discord rejected the token (HTTP 401)", fix)]
    if status != HTTPStatus.OK:
        return [failed(item, f"GET /users/@me answered HTTP {status}", _discord_url_fix())]
    results = [ok(item, f"logged in as {me.get('username')} (id {me.get('id')})")]
    if not settings.discord_message_content:
        results.append(
            skipped(
                "Discord message content intent",
                "DISCORD_MESSAGE_CONTENT=false: DMs and mentions still work",
            )
        )
        return results
    try:
        status, application = await get("/oauth2/applications/@me")
    except _UNREACHABLE as exc:
        results.append(
            failed(
                "Discord message content intent",
                f"cannot read the application ({type(exc).__name__})",
                _discord_url_fix(),
            )
        )
        return results
    results.append(_message_content_intent(status, application))
    return results


def _message_content_intent(status: int, application: dict[str, object]) -> CheckResult:
    item = "Discord message content intent"
    fix = (
        "enable Message Content Intent in the Developer Portal → your application → Bot → "
        "Privileged Gateway Intents, or set DISCORD_MESSAGE_CONTENT=false"
    )
    if status != 200:
        return failed(item, f"GET /oauth2/applications/@me answered HTTP {status}", fix)
    flags = application.get("flags")
    flags = flags if isinstance(flags, int) else 0
    if flags & (GATEWAY_MESSAGE_CONTENT | GATEWAY_MESSAGE_CONTENT_LIMITED):
        return ok(item, "enabled for this application")
    return failed(item, "DISCORD_MESSAGE_CONTENT=true but the intent is not enabled", fix)


def _discord_url_fix() -> str:
    return (
        "check the network and DISCORD_API_URL (unset it to use "
        f"{DEFAULT_DISCORD_API_URL}); if Discord is having an outage, try again later"
    )


# --- backend and database -------------------------------------------------------------------


async def check_backend(settings: Settings, session: aiohttp.ClientSession) -> CheckResult:
    """Ask the backend a real (tiny) question; only an answer proves URL, id and key.
    When both backends are configured, the line also says why this one was chosen."""
    try:
        name = settings.backend_name()
    except ConfigError as exc:
        return failed("Backend", str(exc), "set the variables named above")
    result = await _ask_backend(settings, session, name)
    rule = settings.backend_rule()
    return replace(result, detail=f"{result.detail}; {rule}") if rule else result


async def _ask_backend(
    settings: Settings, session: aiohttp.ClientSession, name: BackendName
) -> CheckResult:
    item = f"Backend ({name})"
    # One attempt: a retry only repeats the failure (and its log lines) in a check.
    settings = settings.model_copy(update={"bridge_backend_retries": 0})
    fix = {
        "wonderchat": "check WONDERCHAT_CHATBOT_ID and WONDERCHAT_API_URL",
        "widget": "check WIDGET_API_URL, WIDGET_API_KEY and WIDGET_MODEL",
    }[name]
    received = 0
    terminal: AnswerDone | AnswerFailed | None = None
    try:
        async with asyncio.timeout(BACKEND_TIMEOUT_SECONDS):
            backend = build_backend(settings, session)
            async for event in backend.stream_answer(BACKEND_PING_QUESTION):
                if isinstance(event, TextDelta):
                    received += len(event.text)
                elif isinstance(event, AnswerDone | AnswerFailed):
                    terminal = event
    except TimeoutError:
        return failed(item, f"no complete answer within {BACKEND_TIMEOUT_SECONDS:.0f}s", fix)
    if isinstance(terminal, AnswerDone):
        return ok(item, f"answered a test question ({len(terminal.text)} characters)")
    if terminal is None:
        return failed(item, "the answer stream ended without a result", fix)
    if received or terminal.partial_text:
        return ok(item, f"answered in part, then: {terminal.reason}")
    return failed(item, terminal.reason, fix)


async def check_database(settings: Settings) -> CheckResult:
    item = "Database"
    fix = (
        "set DATABASE_URL to sqlite:///bridge.db, sqlite:////absolute/path/bridge.db "
        "or postgres://user:password@host:5432/dbname"
    )
    if not is_postgres_url(settings.database_url):
        try:
            state = await probe_sqlite(settings.database_url)
        except BridgeError as exc:
            return failed(item, str(exc), fix)
        return _sqlite_result(state)
    try:
        store = await open_store(settings.database_url)
        try:
            await store.ping()
        finally:
            await store.close()
    except BridgeError as exc:
        return failed(item, str(exc), fix)
    return ok(item, "opened, schema up to date, answers queries")


def _sqlite_result(state: SQLiteState | None) -> CheckResult:
    item = "Database"
    if state is None:
        return ok(item, "in memory: nothing is kept after the process ends")
    disk = "SQLite: keep the file on a persistent disk, see docs/deploy.md"
    if not state.exists:
        return ok(item, f"{state.path} does not exist yet; the first start creates it ({disk})")
    if state.version > state.known:
        return failed(
            item,
            f"{state.path} has schema version {state.version}, newer than this bridge's "
            f"{state.known}",
            "upgrade the bridge to the version that wrote this database (docs/operations.md)",
        )
    if state.version < state.known:
        return ok(
            item,
            f"{state.path} is at schema version {state.version}; the next start (or "
            f"`bridge migrate`) upgrades it to {state.known} ({disk})",
        )
    return ok(item, f"{state.path}, schema up to date ({disk})")


# --- the command ----------------------------------------------------------------------------


async def collect_results(settings: Settings) -> list[CheckResult]:
    """Run every check; independent network checks run concurrently."""
    results = [
        *check_variables(settings),
        check_platforms(settings),
        check_routes(settings),
        *check_slack_oauth(settings),
    ]
    async with aiohttp.ClientSession() as session:
        slack, discord, backend = await asyncio.gather(
            check_slack(settings, session),
            check_discord(settings, session),
            check_backend(settings, session),
        )
    results += [*slack, *discord, backend, await check_database(settings)]
    return results


async def run_check(settings: Settings, output: Callable[[str], None] = print) -> int:
    """`bridge check`: print one line per item; exit 1 when anything is broken."""
    configure_logging(settings)
    redact = Redactor(settings.secret_values())
    quiet = settings.log_level != "debug"
    if quiet:  # every problem is an item below; log lines would say it again
        logging.disable(logging.CRITICAL)
    try:
        results = await collect_results(settings)
    finally:
        if quiet:
            logging.disable(logging.NOTSET)
    for result in results:
        for line in result.lines(redact):
            output(line)
    problems = sum(result.status is Status.FAILED for result in results)
    if problems:
        output(f"{problems} problem{'s' if problems > 1 else ''} found")
        return EXIT_PROBLEMS
    output("all configured checks passed")
    return EXIT_OK
