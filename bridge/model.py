"""Platform-neutral values that adapters hand to the relay."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from bridge.context import QuestionContext


@dataclass(frozen=True)
class ThreadKey:
    """Where a conversation lives: one backend conversation per thread.

    `thread` is the Slack thread ts, the Discord thread/channel id, or for top-level
    DMs the DM channel id itself.
    """

    platform: str  # "slack", "discord", "console"
    workspace: str  # Slack team id, Discord guild id ("@dm" for Discord DMs)
    channel: str
    thread: str


@dataclass(frozen=True)
class Question:
    """One accepted question from a person.

    `event_id` is the platform's unique id for the triggering event (Slack `event_id`,
    Discord message or interaction id); the store refuses a second turn with it, which
    is how retries and duplicate deliveries are answered exactly once.

    `context` loads the earlier messages of the chat thread (see `bridge.context`); the
    relay uses it on a conversation's first turn only.
    """

    thread: ThreadKey
    user_id: str
    text: str
    event_id: str
    is_dm: bool = False
    received_at: float = field(default_factory=time.monotonic)
    correlation_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    context: QuestionContext | None = field(default=None, compare=False, repr=False)
