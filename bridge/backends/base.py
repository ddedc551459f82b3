"""The interface every backend client implements, so the relay never knows which one it has."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol

from bridge.backends.events import AnswerEvent
from bridge.context import ContextMessage


class ChatBackend(Protocol):
    """Streams one answer as normalized events.

    `stream_answer` yields `AnswerEvent`s and always finishes with exactly one
    `AnswerDone` or `AnswerFailed`; it does not raise for HTTP errors, timeouts or
    malformed streams (those become `AnswerFailed`). Cancelling the iteration closes
    the HTTP request.

    `history` holds earlier messages of the chat thread (oldest first, already capped
    and neutralised, see `bridge.context`); each client sends them in its API's form.
    """

    name: str  # "wonderchat" or "widget"

    def stream_answer(
        self,
        question: str,
        conversation_id: str | None = None,
        *,
        context: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        history: Sequence[ContextMessage] = (),
    ) -> AsyncIterator[AnswerEvent]: ...
