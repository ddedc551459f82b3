"""What every store shares: the values it hands out, the `Store` protocol the relay
talks to, and how `DATABASE_URL` names a database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bridge.errors import ConfigError, StoreError
from bridge.model import Question, ThreadKey
from bridge.store.quality import QualityRecords

MEMORY = ":memory:"

# Error reasons are short explanations for people, not tracebacks; a cap keeps one
# runaway message from bloating every row that is read back during recovery.
MAX_ERROR_CHARS = 1000

POSTGRES_SCHEMES = ("postgres", "postgresql")  # Heroku sets postgres://, libpq also takes both

UNSUPPORTED_URL_MESSAGE = (
    "DATABASE_URL: use sqlite:///… for a file or postgres://… for a Postgres database "
    "(e.g. sqlite:///bridge.db, sqlite:////data/bridge.db or "
    "postgres://user:password@host:5432/dbname)"
)


class TurnStatus(StrEnum):
    """Life of one turn. `queued` and `streaming` are unfinished: a turn left in either
    by a process that is gone has its reply marked interrupted (see `Store.stale_turns`)."""

    QUEUED = "queued"
    STREAMING = "streaming"
    DONE = "done"
    ERROR = "error"
    INTERRUPTED = "interrupted"


UNFINISHED = (TurnStatus.QUEUED, TurnStatus.STREAMING)


@dataclass(frozen=True)
class Conversation:
    """The backend conversation a thread continues (`chatlogId` or `resp_…` id)."""

    backend: str
    conversation_id: str


@dataclass(frozen=True)
class Turn:
    """One accepted question and what became of its answer.

    `reply_channel` and `reply_message_ids` say where the reply was drawn, so a later
    process can edit it; `owner` is the instance id of the process that claimed it (None
    for turns from before schema version 3); times are epoch seconds; `question_text` and
    `answer_text` are None unless the store keeps text.
    """

    thread: ThreadKey
    event_id: str
    user_id: str
    correlation_id: str
    backend: str
    status: TurnStatus
    owner: str | None
    reply_channel: str | None
    reply_message_ids: tuple[str, ...]
    backend_message_id: str | None
    error: str | None
    question_text: str | None
    answer_text: str | None
    first_text_ms: int | None
    total_ms: int | None
    created_at: float
    updated_at: float

    @property
    def platform(self) -> str:
        return self.thread.platform


class Store(QualityRecords, Protocol):
    """What the relay needs from storage, on SQLite or Postgres; votes, hand-offs and
    report rows come from `QualityRecords`."""

    async def get_conversation(self, thread: ThreadKey) -> Conversation | None:
        """The conversation this thread continues, or None for a new thread."""
        ...

    async def save_conversation(
        self, thread: ThreadKey, backend: str, conversation_id: str
    ) -> None:
        """Remember (or replace) the thread's conversation."""
        ...

    async def forget_conversation(self, thread: ThreadKey) -> None:
        """Drop the thread's conversation; its next question starts a new one."""
        ...

    async def claim_turn(
        self,
        question: Question,
        *,
        backend: str,
        status: str = TurnStatus.QUEUED,
        owner: str | None = None,
    ) -> bool:
        """Record a new turn owned by process `owner`; False when its (platform, event
        id) was already claimed."""
        ...

    async def update_turn(
        self,
        platform: str,
        event_id: str,
        *,
        status: str | None = None,
        reply_channel: str | None = None,
        reply_message_ids: Sequence[str] | None = None,
        backend_message_id: str | None = None,
        error: str | None = None,
        question_text: str | None = None,
        answer_text: str | None = None,
        first_text_ms: int | None = None,
        total_ms: int | None = None,
        sources: Sequence[str] | None = None,
    ) -> bool:
        """Change the given fields of a turn (`sources`: the URLs the answer showed);
        False when there is no such turn."""
        ...

    async def interrupt_turn(self, platform: str, event_id: str, reason: str) -> bool:
        """Mark an unfinished turn interrupted; False when it has finished meanwhile or
        another process marked it first (so only one of them edits the reply)."""
        ...

    async def get_turn(self, platform: str, event_id: str) -> Turn | None: ...

    async def find_thread_by_reply(self, platform: str, message_id: str) -> ThreadKey | None:
        """The thread whose answer includes message `message_id` (any part of it, as
        recorded by `update_turn(reply_message_ids=…)`), or None. Message ids must be
        unique within the platform: Discord's are; Slack's are only unique per channel."""
        ...

    async def stale_turns(self, owner: str, older_than: float) -> list[Turn]:
        """Unfinished turns, oldest first, whose process is gone: not `owner`, and either
        signed off, silent (no heartbeat) for more than `older_than` seconds, or from
        before owners were recorded (crash recovery)."""
        ...

    async def heartbeat(self, owner: str) -> None:
        """Record that process `owner` is alive now."""
        ...

    async def sign_off(self, owner: str) -> None:
        """Record that process `owner` stopped: its unfinished turns are stale at once."""
        ...

    async def ping(self) -> None:
        """Raise StoreError unless the database answers."""
        ...

    async def close(self) -> None:
        """Release the database; safe to call twice."""
        ...


# --- DATABASE_URL -----------------------------------------------------------------------


def is_postgres_url(database_url: str) -> bool:
    """Whether `DATABASE_URL` names a Postgres database (`postgres://` or `postgresql://`)."""
    scheme, separator, _ = database_url.strip().partition("://")
    return bool(separator) and scheme.lower() in POSTGRES_SCHEMES


def parse_database_url(database_url: str) -> str:
    """Turn an sqlite `DATABASE_URL` into a file path (or `:memory:`).

    `sqlite:///relative.db` is relative to the working directory, `sqlite:////abs.db`
    is absolute (the fourth slash starts the path), `sqlite://:memory:` and
    `sqlite:///:memory:` are private in-memory databases for tests.

    Raises:
        ConfigError: for other schemes or a URL without a path. The URL itself is never
            echoed: it may hold a password.
    """
    scheme, separator, rest = database_url.strip().partition("://")
    if not separator or scheme.lower() != "sqlite":
        raise ConfigError(UNSUPPORTED_URL_MESSAGE)
    if rest == MEMORY:
        return MEMORY
    if not rest.startswith("/"):
        raise ConfigError(
            "DATABASE_URL: an sqlite URL has no host; use sqlite:///relative.db "
            "or sqlite:////absolute/path.db"
        )
    path = rest[1:]
    if not path:
        raise ConfigError("DATABASE_URL: sqlite:/// needs a file name, e.g. sqlite:///bridge.db")
    if "?" in path:
        raise ConfigError("DATABASE_URL: sqlite URL options (?…) are not supported")
    return path


def check_schema_version(current: int, known: int) -> None:
    """Refuse a database a newer bridge has upgraded, instead of misreading it.

    Raises:
        StoreError: `current` is beyond the `known` migrations.
    """
    if current > known:
        raise StoreError(
            f"database schema is at version {current}, newer than this bridge knows "
            f"({known}); upgrade the bridge or use another DATABASE_URL"
        )
