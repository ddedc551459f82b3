"""Normalized answer events: what every backend client yields, whatever its wire format.

A stream of these always ends with exactly one terminal event, `AnswerDone` or
`AnswerFailed`; backend clients never raise for backend trouble, they report it.
Events are frozen dataclasses so tests can compare them with `==`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Source:
    """A document the backend cited. `title` may be missing or empty."""

    url: str
    title: str | None = None


@dataclass(frozen=True)
class ConversationStarted:
    """The backend told us the conversation id (`chatlogId` or `resp_…`) to continue with."""

    conversation_id: str


@dataclass(frozen=True)
class ConversationLost:
    """The backend did not know the conversation we asked it to continue (expired,
    deleted, or kept by another deployment); the answer that follows starts a new one.

    `detail` is the backend's refusal, a safe excerpt for logs.
    """

    detail: str = ""


@dataclass(frozen=True)
class TextDelta:
    """A piece of answer text to append."""

    text: str


@dataclass(frozen=True)
class StatusUpdate:
    """Progress text shown while no answer text has arrived ("Thinking...")."""

    text: str


@dataclass(frozen=True)
class SourcesFound:
    """Sources announced before the end of the answer."""

    sources: tuple[Source, ...]


@dataclass(frozen=True)
class ActionsProposed:
    """Widget `delta.actions`; kept for later use (buttons), not rendered yet."""

    actions: tuple[Any, ...]


@dataclass(frozen=True)
class AnswerDone:
    """The answer is complete. `text` is authoritative: it replaces the sum of deltas."""

    text: str
    message_id: str | None = None
    sources: tuple[Source, ...] = ()
    conversation_id: str | None = None


@dataclass(frozen=True)
class AnswerFailed:
    """The answer ended badly.

    Attributes:
        reason: one sentence for the person who asked (no secrets, no tracebacks).
        retryable: whether asking again later could help.
        partial_text: text that arrived before the failure, kept so it can still be shown.
    """

    reason: str
    retryable: bool = False
    partial_text: str = ""
    sources: tuple[Source, ...] = field(default=())


AnswerEvent = (
    ConversationStarted
    | ConversationLost
    | TextDelta
    | StatusUpdate
    | SourcesFound
    | ActionsProposed
    | AnswerDone
    | AnswerFailed
)
TERMINAL_EVENTS = (AnswerDone, AnswerFailed)
