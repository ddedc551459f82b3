"""The interface every backend client implements, so the relay never knows which one it has."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from bridge.backends.events import AnswerEvent


class ChatBackend(Protocol):
    """Streams one answer as normalized events.

    `stream_answer` yields `AnswerEvent`s and always finishes with exactly one
    `AnswerDone` or `AnswerFailed`; it does not raise for HTTP errors, timeouts or
    malformed streams (those become `AnswerFailed`). Cancelling the iteration closes
    the HTTP request.
    """

    name: str  # "wonderchat" or "widget"

    def stream_answer(
        self,
        question: str,
        conversation_id: str | None = None,
        *,
        context: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[AnswerEvent]: ...
