"""Wonderchat client: `POST {base}/api/v1/chat` (seeds/wonderchat-api.md).

Streamed replies are SSE with `metadata` (chatlogId), `chunk` (delta), `done` (the full
response, sources, message id) and `error`; JSON replies carry the same fields as `done`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp

from bridge.backends.events import AnswerDone, AnswerEvent
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
from bridge.context import ContextMessage, as_text
from bridge.errors import ConfigError

log = logging.getLogger(__name__)

NAME = "wonderchat"
CHAT_PATH = "/api/v1/chat"
CONTEXT_URL_KEY = "context_url"  # metadata key sent as `contextUrl` (e.g. a message permalink)
BACKEND_ERROR = "the backend reported an error"


class WonderchatMapper(StreamMapper):
    """Wonderchat events → answer events. `done.response` is authoritative for the text."""

    def on_event(self, event: SSEEvent) -> list[AnswerEvent]:
        payload = parse_json_data(event, NAME)
        if not isinstance(payload, dict):
            return []
        if event.event == "metadata":
            return self.conversation(payload.get("chatlogId"))
        if event.event == "chunk":
            delta = payload.get("delta")
            return [self.text(delta)] if isinstance(delta, str) and delta else []
        if event.event == "done":
            return self.on_json(payload)
        if event.event == "error":
            message = payload.get("error")
            detail = safe_excerpt(message) if isinstance(message, str) else ""
            return [
                self.failed(
                    f"{BACKEND_ERROR}: {detail}" if detail else BACKEND_ERROR, retryable=True
                )
            ]
        log.debug("wonderchat event %r ignored", event.event)
        return []

    def on_json(self, payload: Any) -> list[AnswerEvent]:
        if not isinstance(payload, dict):
            return [self.failed("the backend sent a reply without an answer")]
        if "response" not in payload and isinstance(payload.get("error"), str):
            return [self.failed(f"{BACKEND_ERROR}: {safe_excerpt(payload['error'])}")]
        events = self.conversation(payload.get("chatlogId"))
        self.sources = parse_sources(payload.get("sources"))
        response = payload.get("response")
        message_id = payload.get("id")
        events.append(
            AnswerDone(
                text=response if isinstance(response, str) else self.partial_text,
                message_id=message_id if isinstance(message_id, str) else None,
                sources=self.sources,
                conversation_id=self.conversation_id,
            )
        )
        return events


class WonderchatClient:
    """Streams answers from one Wonderchat chatbot.

    Args:
        session: the process's shared aiohttp session (never created here).
        api_url: base URL, e.g. `https://app.wonderchat.io`.
        chatbot_id: the chatbot to ask.
        context: standing context sent with every question (`WONDERCHAT_CONTEXT`).
        limits: timeouts and retries.
        stream: False asks for the JSON reply instead of SSE (one event at the end).
    """

    name = NAME

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_url: str,
        chatbot_id: str,
        context: str | None = None,
        limits: BackendLimits | None = None,
        stream: bool = True,
    ) -> None:
        self._session = session
        self._url = api_url.rstrip("/") + CHAT_PATH
        self._chatbot_id = chatbot_id
        self._context = context
        self._limits = limits or BackendLimits()
        self._stream = stream

    @classmethod
    def from_settings(cls, settings: Settings, session: aiohttp.ClientSession) -> WonderchatClient:
        if not settings.wonderchat_chatbot_id:
            raise ConfigError("WONDERCHAT_CHATBOT_ID is not set")
        return cls(
            session,
            api_url=settings.wonderchat_api_url,
            chatbot_id=settings.wonderchat_chatbot_id,
            context=settings.wonderchat_context,
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
        """Ask `question` (continuing `conversation_id` if given); see `ChatBackend`.

        `context` and then the thread's earlier messages (`history`, as text) are appended
        to the standing context — Wonderchat has no field for earlier turns;
        `metadata["context_url"]` is sent as `contextUrl`. Other metadata has no place in
        this API and is not sent.
        """
        body: dict[str, Any] = {
            "chatbotId": self._chatbot_id,
            "question": question,
            "stream": self._stream,
        }
        if conversation_id:
            body["chatlogId"] = conversation_id
        joined = "\n\n".join(part for part in (self._context, context, as_text(history)) if part)
        if joined:
            body["context"] = joined
        context_url = (metadata or {}).get(CONTEXT_URL_KEY)
        if isinstance(context_url, str) and context_url:
            body["contextUrl"] = context_url
        accept = "text/event-stream" if self._stream else "application/json"
        request = BackendRequest(url=self._url, body=body, headers={"Accept": accept})
        if conversation_id:
            fresh = {key: value for key, value in body.items() if key != "chatlogId"}
            request = request.starting_over(fresh)
        return stream_events(self._session, request, WonderchatMapper(), self._limits, NAME)
