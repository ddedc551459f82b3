"""Logging set-up: text or JSON lines, a correlation id per question, secrets redacted.

Everything is installed on the root logger's one handler, so records from third-party
loggers (slack_sdk, discord, aiohttp) are stamped and redacted too. Redaction runs on
the final formatted text (message with its arguments, plus the traceback), because a
token can hide in an argument, an exception message or a URL.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TextIO

from bridge.config import Settings

REDACTED = "[redacted]"

# Loggers that slack_sdk and bolt test with `logger.level <= DEBUG` (the logger's own
# level, not the effective one) before building a debug line. Left without a level of
# their own (0), they format dumps of every Web API request and response (headers, JSON
# bodies) and of every middleware step, only for the handler to drop them: about 5% of
# the bridge's CPU with 1,000 answers streaming. `configure_logging` gives them the level.
LEVEL_TESTING_LOGGERS = ("slack_bolt", "slack_bolt.oauth", "slack_sdk.web.async_base_client")

# Configured secrets shorter than this are not redacted by value: replacing every
# occurrence of a 1-3 character string would shred the log, and no real token is that short.
MIN_SECRET_CHARS = 4

# Shapes of credentials we may see even when they are not our configured ones (a token
# pasted into a question, another app's token in a third-party error message).
_TOKEN_SHAPES = (
    r"xox[abposr]-[A-Za-z0-9-]+",  # Slack bot/user/legacy tokens
    r"xapp-[A-Za-z0-9-]+",  # Slack app-level tokens
    r"[\w-]{24,}\.[\w-]{6}\.[\w-]{27,}",  # Discord bot tokens
)
# `Authorization` values keep their scheme word so the line still reads. `Bot` needs a
# token-length word after it, or "Bot connected" would lose its verb.
_AUTH_SCHEME = re.compile(r"\b(Bearer\s+|Bot\s+(?=[^\s'\",;]{20}))[^\s'\",;]+")
# Passwords inside URLs (`postgres://user:password@host`).
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/\s@]+:)[^@\s/]+@", re.IGNORECASE)

correlation_id: ContextVar[str] = ContextVar("correlation_id", default="-")

_HANDLER_NAME = "bridge"


class Redactor:
    """Replaces secrets and token-shaped strings with `[redacted]`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
        patterns = [re.escape(value) for value in values] + list(_TOKEN_SHAPES)
        self._pattern = re.compile("|".join(patterns))

    def __call__(self, text: str) -> str:
        text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
        text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
        return self._pattern.sub(REDACTED, text)


class CorrelationFilter(logging.Filter):
    """Stamps every record with the current question's correlation id (`-` outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "correlation_id"):
            record.correlation_id = correlation_id.get()
        return True


class _CorrelationBinding:
    """Sets the correlation id at once; as a context manager, also restores it on exit.

    Setting on construction lets the relay simply call `bind_correlation_id(cid)` at the
    start of an answer task (each task runs in its own context copy), while `with` suits
    code that handles several questions in one context.
    """

    def __init__(self, value: str) -> None:
        self._token: Token[str] = correlation_id.set(value)

    def __enter__(self) -> _CorrelationBinding:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        correlation_id.reset(self._token)


def bind_correlation_id(value: str) -> _CorrelationBinding:
    """Make every log line in the current context carry `value` as its correlation id.

    Call it at the start of an answer task, or use it as `with bind_correlation_id(cid):`
    to restore the previous id afterwards.
    """
    return _CorrelationBinding(value)


class TextFormatter(logging.Formatter):
    """`time level logger [correlation] message`, redacted, traceback included."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__(
            "%(asctime)s %(levelname)-7s %(name)s [%(correlation_id)s] %(message)s",
            datefmt="%Y-%m-%dT%H:%M:%S",
        )
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log drains that parse fields."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self._redact(record.getMessage()),
            "correlation_id": getattr(record, "correlation_id", correlation_id.get()),
        }
        if record.exc_info:
            entry["exc_info"] = self._redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exc_info"] = self._redact(record.exc_text)
        if record.stack_info:
            entry["stack_info"] = self._redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False)


def build_handler(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """The one root handler: stamped with correlation ids, formatted and redacted."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    redactor = Redactor(settings.secret_values())
    formatter: logging.Formatter
    if settings.log_format == "json":
        formatter = JsonFormatter(redactor)
    else:
        formatter = TextFormatter(redactor)
    handler.setFormatter(formatter)
    handler.addFilter(CorrelationFilter())
    return handler


def configure_logging(settings: Settings, stream: TextIO | None = None) -> None:
    """Install the bridge's handler on the root logger (replacing any earlier one).

    Uncaught exceptions are routed through logging too, so their text is redacted
    instead of printed raw by the default excepthook.
    """
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(build_handler(settings, stream))
    root.setLevel(settings.log_level.upper())
    for name in LEVEL_TESTING_LOGGERS:
        logging.getLogger(name).setLevel(root.level)
    sys.excepthook = _log_uncaught


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    logging.getLogger("bridge").critical("uncaught exception", exc_info=(exc_type, exc, tb))
