"""Widget client: `POST {base}/api/v1/chat/completions` (seeds/widget-api.md).

OpenAI-style `chat.completion.chunk` SSE: `delta.content` is answer text,
`delta.reason.text` progress, `delta.actions` proposed actions, `finish_reason` ends the
answer and `data: [DONE]` ends the stream. The chunk `id` (`resp_…`) is what the next
question sends back as `previous_response_id`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp
from pydantic import SecretStr

from bridge.backends.events import (
    ActionsProposed,
    AnswerDone,
    AnswerEvent,
    SourcesFound,
    StatusUpdate,
)
from bridge.backends.http import (
    BackendLimits,
    BackendRequest,
    StreamMapper,
    parse_json_data,
    parse_sources,
    safe_excerpt,
    stream_events,
)
from bridge.backends.sse import SSEEvent
from bridge.config import Settings
from bridge.context import ContextMessage, as_chat_messages
from bridge.errors import ConfigError

log = logging.getLogger(__name__)

NAME = "widget"
COMPLETIONS_PATH = "/api/v1/chat/completions"
DONE_SENTINEL = "[DONE]"
CONTEXT_KEY = "context"  # the Widget API has no context field; it travels in metadata

# finish_reason values other than "stop", phrased for the person who asked.
FINISH_REASONS = {
    "length": "the answer was cut off by the backend's length limit",
    "content_filter": "the backend's content filter stopped the answer",
}


class WidgetMapper(StreamMapper):
    """Widget chunks → answer events. The final text is the accumulated content."""

    def on_event(self, event: SSEEvent) -> list[AnswerEvent]:
        if event.data.strip() == DONE_SENTINEL:
            # [DONE] without a finish_reason still means the backend considers it complete.
            return [self._done()]
        if event.event not in ("message", "error"):
            log.debug("widget event %r ignored", event.event)
            return []
        payload = parse_json_data(event, NAME)
        if not isinstance(payload, dict):
            return []
        return self.on_chunk(payload)

    def on_chunk(self, chunk: dict[str, Any]) -> list[AnswerEvent]:
        """Map one `chat.completion.chunk` (or an error object sent in its place)."""
        if "error" in chunk:
            return [self._error(chunk)]
        events = self.conversation(chunk.get("id"))
        choice = _first_choice(chunk)
        delta = choice.get("delta")
        if isinstance(delta, dict):
            events.extend(self._delta(delta))
        # The seed defines no sources; accept them where a deployment adds them.
        found = parse_sources(chunk.get("sources") or (delta or {}).get("sources"))
        if found:
            self.sources = found
            events.append(SourcesFound(found))
        finish = choice.get("finish_reason")
        if isinstance(finish, str) and finish:
            events.append(self._finish(finish))
        return events

    def on_json(self, payload: Any) -> list[AnswerEvent]:
        """A non-streamed completion: `choices[0].message.content`."""
        if not isinstance(payload, dict):
            return [self.failed("the backend sent a reply without an answer")]
        if "error" in payload:
            return [self._error(payload)]
        events = self.conversation(payload.get("id"))
        message = _first_choice(payload).get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str) and content:
            events.append(self.text(content))
        events.append(self._done())
        return events

    def _delta(self, delta: dict[str, Any]) -> list[AnswerEvent]:
        events: list[AnswerEvent] = []
        reason = delta.get("reason")
        if isinstance(reason, dict) and isinstance(reason.get("text"), str) and reason["text"]:
            events.append(StatusUpdate(reason["text"]))
        actions = delta.get("actions")
        if isinstance(actions, list) and actions:
            events.append(ActionsProposed(tuple(actions)))
        content = delta.get("content")
        if isinstance(content, str) and content:
            events.append(self.text(content))
        return events

    def _finish(self, finish_reason: str) -> AnswerEvent:
        if finish_reason == "stop":
            return self._done()
        reason = FINISH_REASONS.get(
            finish_reason, f"the backend ended the answer early ({safe_excerpt(finish_reason)})"
        )
        return self.failed(reason)

    def _done(self) -> AnswerDone:
        return AnswerDone(
            text=self.partial_text,
            message_id=self.conversation_id,
            sources=self.sources,
            conversation_id=self.conversation_id,
        )

    def _error(self, payload: dict[str, Any]) -> AnswerEvent:
        error = payload.get("error")
        if isinstance(error, dict):
            error = error.get("message")
        detail = safe_excerpt(error) if isinstance(error, str) else ""
        reason = "the backend reported an error" + (f": {detail}" if detail else "")
        return self.failed(reason, retryable=True)


def _first_choice(chunk: dict[str, Any]) -> dict[str, Any]:
    choices = chunk.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return {}


class WidgetClient:
    """Streams answers from a Widget API deployment.

    Args:
        session: the process's shared aiohttp session (never created here).
        api_url: base URL, e.g. `https://widget.example.com`.
        api_key: the Bearer key; only ever placed in the Authorization header.
        model: the `model` field.
        limits: timeouts and retries.
    """

    name = NAME

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_url: str,
        api_key: SecretStr | str,
        model: str = "default",
        limits: BackendLimits | None = None,
    ) -> None:
        self._session = session
        self._url = api_url.rstrip("/") + COMPLETIONS_PATH
        self._api_key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        self._model = model
        self._limits = limits or BackendLimits()

    @classmethod
    def from_settings(cls, settings: Settings, session: aiohttp.ClientSession) -> WidgetClient:
        if not settings.widget_api_url or settings.widget_api_key is None:
            raise ConfigError("WIDGET_API_URL and WIDGET_API_KEY must be set")
        return cls(
            session,
            api_url=settings.widget_api_url,
            api_key=settings.widget_api_key,
            model=settings.widget_model,
            limits=BackendLimits.from_settings(settings),
        )

    def stream_answer(
        self,
        question: str,
        conversation_id: str | None = None,
        *,
        context: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        history: Sequence[ContextMessage] = (),
    ) -> AsyncIterator[AnswerEvent]:
        """Ask `question` (continuing from response `conversation_id`); see `ChatBackend`.

        The backend keeps the conversation behind `previous_response_id`, so normally
        only the new user message is sent; the chat thread's earlier messages
        (`history`, sent on a conversation's first turn) go before it as earlier
        `messages`. `context`, if given, travels as `metadata["context"]`.
        """
        meta = dict(metadata or {})
        if context:
            meta[CONTEXT_KEY] = context
        body = {
            "model": self._model,
            "messages": [*as_chat_messages(history), {"role": "user", "content": question}],
            "previous_response_id": conversation_id or None,
            "stream": True,
            "metadata": meta,
        }
        key = self._api_key.get_secret_value()
        request = BackendRequest(
            url=self._url,
            body=body,
            headers={"Authorization": f"Bearer {key}", "Accept": "text/event-stream"},
            secrets=(key,),
        )
        if conversation_id:
            request = request.starting_over({**body, "previous_response_id": None})
        return stream_events(self._session, request, WidgetMapper(), self._limits, NAME)
