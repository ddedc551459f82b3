"""HTTP plumbing both backend clients share: POST with retries, SSE reading with timeouts,
status → failure mapping, safe error excerpts, and the one loop that turns a response into
normalized `AnswerEvent`s.

A client only supplies the request and a `StreamMapper` (pure: SSE events or a JSON body in,
answer events out). Everything that touches the network, the clock or metrics lives here,
so the two clients cannot drift apart in how they fail.
"""

from __future__ import annotations

import asyncio
import email.utils
import html
import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from bridge import __version__, metrics
from bridge.backends.events import (
    TERMINAL_EVENTS,
    AnswerEvent,
    AnswerFailed,
    ConversationLost,
    ConversationStarted,
    Source,
    TextDelta,
)
from bridge.backends.sse import SSEEvent, SSEParser
from bridge.config import Settings
from bridge.errors import BackendError, SSEError

log = logging.getLogger(__name__)

RETRY_AFTER_CAP_SECONDS = 30.0  # a longer Retry-After is beyond what a person waits in chat
BACKOFF_BASE_SECONDS = 0.5  # first retry after 0.5 s, then 1 s, 2 s, ... (without Retry-After)
ERROR_BODY_LIMIT = 64 * 1024  # error pages are read only this far, enough for an excerpt
JSON_BODY_LIMIT = 4 * 1024 * 1024  # a whole non-streamed answer; far above any real one
EXCERPT_CHARS = 120  # what of an unexpected reply we quote in chat
MAX_SOURCES = 20  # we keep a few more than the 5 the backends promise; the renderer trims
USER_AGENT = f"bridge/{__version__}"  # identifies us in backend logs

STOPPED_EARLY = "the answer stopped before it was complete"
UNREACHABLE = "could not reach the backend, please try again in a minute"


# Failures -----------------------------------------------------------------------------


class BackendRejected(BackendError):
    """The backend refused our credentials (401/403); asking again will not help."""


class BackendUnavailable(BackendError):
    """A transient failure before any answer arrived (5xx, connection error): retried."""


class BackendBusy(BackendUnavailable):
    """HTTP 429: retried after the backend's `Retry-After`."""


class BackendRefused(BackendError):
    """Any other 4xx: the backend will not take this request as it is. When it carried a
    conversation id, the id may be what it refuses (see `BackendRequest.fresh`)."""


def error_for_status(status: int, detail: str = "") -> BackendError:
    """The one place an HTTP status becomes a failure; `detail` is a safe excerpt."""
    suffix = f" (HTTP {status}: {detail})" if detail else f" (HTTP {status})"
    if status in (401, 403):
        return BackendRejected("the backend rejected the bridge's credentials" + suffix)
    if status == 429:
        return BackendBusy(
            "the backend is busy, please try again in a minute" + suffix, retryable=True
        )
    if status >= 500:
        return BackendUnavailable(
            "the backend is unavailable right now, please try again in a minute" + suffix,
            retryable=True,
        )
    return BackendRefused("the backend refused the question" + suffix)


# Safe excerpts ------------------------------------------------------------------------

# The <head> only repeats the <h1> in error pages; scripts and styles are noise.
_HIDDEN_BLOCKS = re.compile(r"<(head|script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_BEARER = re.compile(r"\b(Bearer\s+)\S+", re.IGNORECASE)


def safe_excerpt(text: str, secrets: Iterable[str] = (), limit: int = EXCERPT_CHARS) -> str:
    """A short, single-line, tag-free quote of `text` that never contains `secrets`.

    Backends echo odd things in error pages (our own headers, stack traces); this is what
    we are willing to show a person in chat.
    """
    text = _HIDDEN_BLOCKS.sub(" ", text)
    text = html.unescape(_TAG.sub(" ", text))
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _BEARER.sub(r"\1***", text)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def describe_body(body: bytes, secrets: Iterable[str] = ()) -> str:
    """Excerpt of an error body, preferring a JSON `error`/`message`/`detail` field."""
    text = body.decode("utf-8", errors="replace")
    try:
        payload = json.loads(text)
    except ValueError:
        return safe_excerpt(text, secrets)
    message = _json_message(payload)
    return safe_excerpt(message if message is not None else text, secrets)


def _json_message(payload: Any) -> str | None:
    """The human part of common JSON error shapes: `{"error": "…"}`,
    `{"error": {"message": "…"}}`, `{"message": "…"}`, `{"detail": "…"}`."""
    if not isinstance(payload, dict):
        return None
    for key in ("error", "message", "detail"):
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict):
            nested = _json_message(value)
            if nested:
                return nested
    return None


# Retry-After ----------------------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP date), capped.

    Returns None when the header is missing or unreadable, so the caller backs off itself.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_SECONDS)


def backoff_delay(attempt: int) -> float:
    """Exponential backoff for retry number `attempt` (0-based), capped like Retry-After."""
    return min(BACKOFF_BASE_SECONDS * (2**attempt), RETRY_AFTER_CAP_SECONDS)


# Requests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackendLimits:
    """Timeouts (seconds) and retry count for one backend; see `Settings.bridge_*`."""

    connect: float = 10.0
    first_event: float = 60.0
    idle: float = 60.0
    retries: int = 2

    @classmethod
    def from_settings(cls, settings: Settings) -> BackendLimits:
        return cls(
            connect=settings.bridge_connect_timeout,
            first_event=settings.bridge_first_event_timeout,
            idle=settings.bridge_idle_timeout,
            retries=settings.bridge_backend_retries,
        )


@dataclass(frozen=True)
class BackendRequest:
    """One POST to a backend. `secrets` are redacted from anything we quote; headers and
    secrets stay out of `repr` so logging a request cannot leak the API key."""

    url: str
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)
    # The same question without its conversation id: sent when the backend refuses this
    # one (an unknown or expired chatlogId / previous_response_id is refused with a 4xx).
    fresh: BackendRequest | None = field(default=None, repr=False)

    def starting_over(self, body: Mapping[str, Any]) -> BackendRequest:
        """This request, with `fresh` the same one carrying `body` (no conversation)."""
        fresh = BackendRequest(self.url, body, self.headers, self.secrets)
        return BackendRequest(self.url, self.body, self.headers, self.secrets, fresh)


async def open_response(
    session: aiohttp.ClientSession, request: BackendRequest, limits: BackendLimits
) -> tuple[aiohttp.ClientResponse, float]:
    """POST `request`, retrying 429/5xx/connection failures; nothing has streamed yet.

    Returns:
        The successful (2xx) response, still open, and the loop time the winning attempt
        started (the first-event deadline counts from there).

    Raises:
        BackendError: the final failure, already phrased for a person.
    """
    loop = asyncio.get_running_loop()
    # The connect timeout times connecting (TCP and TLS) only: `connect` would also count
    # the wait for a free pooled connection, which is load, not an unreachable backend.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=limits.connect, sock_read=None)
    headers = {"User-Agent": USER_AGENT, **request.headers}
    attempt = 0
    while True:
        started = loop.time()
        retry_after: float | None = None
        try:
            async with asyncio.timeout(limits.first_event):
                response = await session.post(
                    request.url, json=dict(request.body), headers=headers, timeout=timeout
                )
        except aiohttp.ClientError as exc:
            # Before TimeoutError: aiohttp's connect timeout is both, and it is retryable.
            failure: BackendError = BackendUnavailable(UNREACHABLE, retryable=True)
            log.warning("backend request failed: %s", type(exc).__name__)
        except TimeoutError as exc:
            # The question may already be with the backend; asking twice is not ours to do.
            raise BackendError(
                f"the backend did not start answering within {limits.first_event:g} seconds",
                retryable=True,
            ) from exc
        else:
            if response.status < 300:
                return response, started
            failure = await _failure_from(response, request.secrets, limits)
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if not isinstance(failure, BackendUnavailable) or attempt >= limits.retries:
            raise failure
        delay = retry_after if retry_after is not None else backoff_delay(attempt)
        attempt += 1
        log.warning(
            "backend failed (%s); retry %d of %d in %.1fs",
            failure.user_message,
            attempt,
            limits.retries,
            delay,
        )
        await asyncio.sleep(delay)


async def open_or_start_over(
    session: aiohttp.ClientSession, request: BackendRequest, limits: BackendLimits
) -> tuple[aiohttp.ClientResponse, float, BackendRefused | None]:
    """`open_response`, and if the backend refuses a request that continues a
    conversation, the same question as a new conversation.

    Returns the response, the start of the winning attempt, and the first refusal when
    the fresh request was the one answered. Whatever the backend had against the first
    request, it did not hold against the question itself, so the conversation is what
    it could not continue (an unknown id, or one too long to go on).

    Raises:
        BackendError: the final failure (of the fresh request, if one was sent).
    """
    try:
        response, started = await open_response(session, request, limits)
    except BackendRefused as refused:
        if request.fresh is None:
            raise
        response, started = await open_response(session, request.fresh, limits)
        return response, started, refused
    return response, started, None


async def _failure_from(
    response: aiohttp.ClientResponse, secrets: tuple[str, ...], limits: BackendLimits
) -> BackendError:
    """Read a bounded excerpt of an error reply, close it, and map its status."""
    try:
        async with asyncio.timeout(limits.idle):
            body = await read_limited(response, ERROR_BODY_LIMIT)
    except (TimeoutError, aiohttp.ClientError):
        body = b""
    finally:
        response.close()
    return error_for_status(response.status, describe_body(body, secrets))


async def read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """Up to `limit` bytes of the body; a hostile server cannot make us buffer more."""
    chunks = bytearray()
    while len(chunks) < limit:
        chunk = await response.content.read(limit - len(chunks))
        if not chunk:
            break
        chunks += chunk
    return bytes(chunks)


# Mapping --------------------------------------------------------------------------------


class StreamMapper(ABC):
    """Turns one backend's wire events into `AnswerEvent`s; pure, one instance per answer.

    Subclasses call `text()` for answer text and `conversation()` for ids, so the partial
    text and conversation id the shared loop needs on failure are always current.
    """

    def __init__(self) -> None:
        self.conversation_id: str | None = None
        self.sources: tuple[Source, ...] = ()
        self._parts: list[str] = []

    @property
    def partial_text(self) -> str:
        return "".join(self._parts)

    def text(self, delta: str) -> TextDelta:
        self._parts.append(delta)
        return TextDelta(delta)

    def conversation(self, conversation_id: Any) -> list[AnswerEvent]:
        """A `ConversationStarted` the first time an id is seen and whenever it changes."""
        if not isinstance(conversation_id, str) or not conversation_id:
            return []
        if conversation_id == self.conversation_id:
            return []
        self.conversation_id = conversation_id
        return [ConversationStarted(conversation_id)]

    def failed(self, reason: str, *, retryable: bool = False) -> AnswerFailed:
        return AnswerFailed(
            reason, retryable=retryable, partial_text=self.partial_text, sources=self.sources
        )

    @abstractmethod
    def on_event(self, event: SSEEvent) -> list[AnswerEvent]:
        """Map one SSE event; a terminal event ends the answer."""

    @abstractmethod
    def on_json(self, payload: Any) -> list[AnswerEvent]:
        """Map a whole non-streamed JSON reply; must end with a terminal event."""

    def on_end(self) -> AnswerEvent:
        """The stream ended without a terminal event."""
        return self.failed(STOPPED_EARLY, retryable=True)


def parse_json_data(event: SSEEvent, backend: str) -> Any | None:
    """The event's data as JSON, or None (logged) when one event is garbage: skipping it
    loses a few words at worst, which beats failing a whole answer."""
    try:
        return json.loads(event.data)
    except ValueError:
        log.warning(
            "%s sent an event %r whose data is not JSON; skipped (%d bytes)",
            backend,
            event.event,
            len(event.data),
        )
        return None


def parse_sources(raw: Any) -> tuple[Source, ...]:
    """`[{url, title}]` as `Source`s, dropping entries without a string URL. URL schemes
    are filtered later, by the renderer, where the decision about what is shown lives."""
    if not isinstance(raw, list):
        return ()
    sources = []
    for item in raw[:MAX_SOURCES]:
        if isinstance(item, dict) and isinstance(item.get("url"), str) and item["url"]:
            title = item.get("title")
            sources.append(Source(item["url"], title if isinstance(title, str) else None))
    return tuple(sources)


# The shared loop ------------------------------------------------------------------------


async def stream_events(
    session: aiohttp.ClientSession,
    request: BackendRequest,
    mapper: StreamMapper,
    limits: BackendLimits,
    backend: str,
) -> AsyncIterator[AnswerEvent]:
    """POST `request` and yield its answer events, ending with exactly one terminal event.

    Never raises for backend trouble (statuses, timeouts, broken streams become
    `AnswerFailed`). The response is closed before the terminal event is yielded, and on
    cancellation or `aclose()`.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    terminal: AnswerEvent | None = None
    try:
        response, attempt_started, refused = await open_or_start_over(session, request, limits)
        try:
            if refused is not None:
                log.warning(
                    "%s could not continue the conversation (%s); a new one was started",
                    backend,
                    refused.user_message,
                )
                yield ConversationLost(refused.user_message)
            reader = _ResponseReader(
                response,
                limits,
                started=started,
                first_deadline=attempt_started + limits.first_event,
                backend=backend,
                secrets=request.secrets,
            )
            while terminal is None:
                batch = await reader.next_batch(mapper)
                if batch is None:
                    terminal = mapper.on_end()
                    break
                for event in batch:
                    if isinstance(event, TERMINAL_EVENTS):
                        terminal = event
                        break
                    yield event
        finally:
            response.close()
    except BackendError as exc:
        terminal = mapper.failed(exc.user_message, retryable=exc.retryable)
    elapsed = loop.time() - started
    metrics.BACKEND_TOTAL.labels(backend=backend).observe(elapsed)
    if isinstance(terminal, AnswerFailed):
        log.info("%s answer failed after %.1fs: %s", backend, elapsed, terminal.reason)
    yield terminal


class _ResponseReader:
    """Reads a 2xx response as SSE events (or one JSON body), enforcing the timeouts."""

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        limits: BackendLimits,
        *,
        started: float,
        first_deadline: float,
        backend: str,
        secrets: tuple[str, ...],
    ) -> None:
        self._response = response
        self._limits = limits
        self._deadline = first_deadline
        self._backend = backend
        self._secrets = secrets
        self._started = started  # when the question was first sent, retries included
        self._parser = SSEParser()
        self._seen_event = False
        self._eof = False

    async def next_batch(self, mapper: StreamMapper) -> list[AnswerEvent] | None:
        """The answer events of the next wire events (maybe none); None at end of stream.

        Raises:
            BackendError: timeout, broken connection, oversized event, or a reply that is
                neither an event stream nor JSON.
        """
        if self._eof:
            return None
        content_type = self._response.content_type
        if content_type == "application/json":
            self._eof = True
            payload = await self._read_json()
            return mapper.on_json(payload)
        if content_type != "text/event-stream":
            raise await self._unexpected_reply(content_type)
        wire_events = await self._read_events()
        return [event for wire in wire_events for event in mapper.on_event(wire)]

    async def _read_events(self) -> list[SSEEvent]:
        try:
            async with asyncio.timeout_at(self._deadline):
                while True:
                    chunk = await self._response.content.readany()
                    if not chunk:
                        self._eof = True
                        events = self._parser.close()
                        break
                    events = self._parser.feed(chunk)
                    if events:
                        break
        except TimeoutError as exc:
            raise self._timeout_error() from exc
        except SSEError as exc:
            log.warning("%s stream abandoned: %s", self._backend, exc)
            raise BackendError("the backend sent an answer too large to read") from exc
        except aiohttp.ClientError as exc:
            log.warning("%s stream broke: %s", self._backend, type(exc).__name__)
            raise BackendError(STOPPED_EARLY, retryable=True) from exc
        if events:
            self._note_event()
        return events

    def _note_event(self) -> None:
        """Record first-event latency once and move the deadline to one idle gap ahead."""
        now = asyncio.get_running_loop().time()
        if not self._seen_event:
            self._seen_event = True
            metrics.BACKEND_FIRST_EVENT.labels(backend=self._backend).observe(now - self._started)
        self._deadline = now + self._limits.idle

    def _timeout_error(self) -> BackendError:
        if self._seen_event:
            reason = f"the backend stopped sending the answer for {self._limits.idle:g} seconds"
        else:
            reason = (
                f"the backend did not start answering within {self._limits.first_event:g} seconds"
            )
        return BackendError(reason, retryable=True)

    async def _read_json(self) -> Any:
        try:
            async with asyncio.timeout_at(self._deadline):
                body = await read_limited(self._response, JSON_BODY_LIMIT)
        except TimeoutError as exc:
            raise self._timeout_error() from exc
        except aiohttp.ClientError as exc:
            raise BackendError(STOPPED_EARLY, retryable=True) from exc
        self._note_event()
        try:
            return json.loads(body)
        except ValueError as exc:
            raise BackendError(
                "the backend sent a reply that is not valid JSON: "
                + describe_body(body, self._secrets)
            ) from exc

    async def _unexpected_reply(self, content_type: str) -> BackendError:
        try:
            async with asyncio.timeout_at(self._deadline):
                body = await read_limited(self._response, ERROR_BODY_LIMIT)
        except (TimeoutError, aiohttp.ClientError):
            body = b""
        excerpt = describe_body(body, self._secrets)
        return BackendError(
            "the backend replied with something that is not a chat answer "
            f"({content_type or 'no content type'})" + (f": {excerpt}" if excerpt else "")
        )
