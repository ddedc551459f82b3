"""Log formatting, correlation ids and redaction, through the real root handler."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bridge.config import Settings, load_settings
from bridge.logs import (
    LEVEL_TESTING_LOGGERS,
    REDACTED,
    Redactor,
    bind_correlation_id,
    configure_logging,
)
from bridge.testing.fake_slack import FakeSlack

BOT_TOKEN = "xoxb-1111-2222-abcdefABCDEF"
APP_TOKEN = "xapp-1-A0001-3333-deadbeef"
SIGNING_SECRET = "8f14e45fceea167a5a36dedd4bea2543"
DISCORD_TOKEN = "MTA4NzY1NDMyMTA5ODc2NTQzMg.GhIjKl.abcdefghijklmnopqrstuvwxyz0123456789"
WIDGET_KEY = "wk_live_0123456789secret"


def secret_settings(**overrides: object) -> Settings:
    return load_settings(
        slack_bot_token=BOT_TOKEN,
        slack_app_token=APP_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        discord_token=DISCORD_TOKEN,
        widget_api_url="http://127.0.0.1:1",
        widget_api_key=WIDGET_KEY,
        **overrides,
    )


ALL_SECRETS = (BOT_TOKEN, APP_TOKEN, SIGNING_SECRET, DISCORD_TOKEN, WIDGET_KEY)


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Install the bridge handler on a string buffer; remove it afterwards."""
    stream = io.StringIO()
    root = logging.getLogger()
    before_handlers, before_level, excepthook = list(root.handlers), root.level, sys.excepthook
    library_levels = {name: logging.getLogger(name).level for name in LEVEL_TESTING_LOGGERS}
    yield stream
    root.handlers[:] = before_handlers
    root.setLevel(before_level)
    sys.excepthook = excepthook
    for name, level in library_levels.items():
        logging.getLogger(name).setLevel(level)


def test_configured_secrets_are_redacted_in_message_args_and_traceback(
    log_stream: io.StringIO,
) -> None:
    configure_logging(secret_settings(log_level="debug"), stream=log_stream)
    log = logging.getLogger("slack_sdk.web")
    log.debug("headers: %s", {"Authorization": f"Bearer {BOT_TOKEN}"})
    log.info("app token %s, discord %s, key=%s", APP_TOKEN, DISCORD_TOKEN, WIDGET_KEY)
    try:
        raise RuntimeError(f"signature check with {SIGNING_SECRET} failed")
    except RuntimeError:
        log.exception("request failed")
    output = log_stream.getvalue()
    for secret in ALL_SECRETS:
        assert secret not in output
    assert output.count(REDACTED) >= 5
    assert "RuntimeError: signature check with [redacted] failed" in output


def test_token_shapes_are_redacted_even_when_not_configured() -> None:
    redact = Redactor()
    text = (
        "a xoxp-9-9-zzz b xoxa-2-abc c xapp-1-B-2-ff d "
        "OTk5OTk5OTk5OTk5OTk5OTk5OTk5.Ab-cDe.abcdefghijklmnopqrstuvwxyz01234 "
        "Authorization: Bearer sk-abcdef123 url postgres://app:hunter2pw@db.example:5432/x "
        "Authorization: Bot NzkyNzE1NDU0MTk2MDg4ODQy.X-hvzA.Ovy4MCQywSkoMRRclStW4xAYK7I"
    )
    redacted = redact(text)
    for leaked in ("zzz", "xoxa-2", "xapp-1", "Ab-cDe", "sk-abcdef123", "hunter2pw", "Ovy4MC"):
        assert leaked not in redacted
    assert "Bearer [redacted]" in redacted
    assert "postgres://app:[redacted]@db.example" in redacted


def test_ordinary_words_survive_redaction() -> None:
    text = "Bot connected as helper; see https://example.com/a.b.c and user:name@host"
    assert Redactor(["abc"])(text) == text  # too short a secret is not redacted by value


def test_json_format_fields_and_correlation_id(log_stream: io.StringIO) -> None:
    configure_logging(secret_settings(log_format="json"), stream=log_stream)
    log = logging.getLogger("bridge.relay")
    log.info("outside any question")
    with bind_correlation_id("abc123def456"):
        try:
            raise ValueError(f"token {BOT_TOKEN} rejected")
        except ValueError:
            log.exception("answer %s failed", "q1")
    log.warning("after the question")
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    assert [entry["correlation_id"] for entry in lines] == ["-", "abc123def456", "-"]
    failed = lines[1]
    assert set(failed) >= {"time", "level", "logger", "message", "correlation_id", "exc_info"}
    assert failed["level"] == "error"
    assert failed["logger"] == "bridge.relay"
    assert failed["message"] == "answer q1 failed"
    assert "ValueError: token [redacted] rejected" in failed["exc_info"]
    assert BOT_TOKEN not in log_stream.getvalue()
    assert "exc_info" not in lines[0]


async def test_correlation_id_is_per_task(log_stream: io.StringIO) -> None:
    configure_logging(secret_settings(), stream=log_stream)
    log = logging.getLogger("bridge.relay")

    async def answer(cid: str) -> None:
        bind_correlation_id(cid)  # plain call: lasts for the rest of this task
        await asyncio.sleep(0)
        log.info("answering %s", cid)

    await asyncio.gather(answer("first"), answer("second"))
    log.info("main task")
    lines = log_stream.getvalue().splitlines()
    assert any("[first] answering first" in line for line in lines)
    assert any("[second] answering second" in line for line in lines)
    assert "[-] main task" in lines[-1]


def test_level_and_reconfiguration_keep_one_handler(log_stream: io.StringIO) -> None:
    configure_logging(secret_settings(log_level="warning"), stream=log_stream)
    configure_logging(secret_settings(log_level="warning"), stream=log_stream)
    log = logging.getLogger("aiohttp.access")
    log.info("hidden")
    log.warning("shown")
    assert log_stream.getvalue().count("shown") == 1
    assert "hidden" not in log_stream.getvalue()


def test_uncaught_exceptions_are_logged_redacted(log_stream: io.StringIO) -> None:
    configure_logging(secret_settings(), stream=log_stream)
    try:
        raise ConnectionError(f"handshake with {APP_TOKEN} failed")
    except ConnectionError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    output = log_stream.getvalue()
    assert "CRITICAL bridge [-] uncaught exception" in output
    assert "ConnectionError: handshake with [redacted] failed" in output
    assert APP_TOKEN not in output


class ReprCounter(str):
    """A string that counts how often something formats its repr (a debug line does)."""

    formatted = 0

    def __repr__(self) -> str:
        ReprCounter.formatted += 1
        return super().__repr__()


async def post_through_slack_sdk(slack: FakeSlack) -> None:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url + "/")
    await client.api_call("chat.postMessage", json={"channel": "C1", "text": ReprCounter("hi")})


async def test_slack_sdk_builds_no_debug_dump_above_debug(log_stream: io.StringIO) -> None:
    """slack_sdk formats a dump of every request unless its logger has a level of its own
    above DEBUG; configure_logging gives it one, and the dump returns at debug level."""
    async with FakeSlack() as slack:
        for name in LEVEL_TESTING_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)
        ReprCounter.formatted = 0
        await post_through_slack_sdk(slack)
        assert ReprCounter.formatted > 0  # the library's behaviour this guards against

        configure_logging(secret_settings(log_level="info"), stream=log_stream)
        ReprCounter.formatted = 0
        await post_through_slack_sdk(slack)
        assert ReprCounter.formatted == 0

        configure_logging(secret_settings(log_level="debug"), stream=log_stream)
        await post_through_slack_sdk(slack)
        assert ReprCounter.formatted > 0
        assert "Sending a request" in log_stream.getvalue()
