"""What every store shares: the values it hands out, the `Store` protocol the relay
talks to, and how `DATABASE_URL` names a database."""

from __future__ import annotations

from collections.abc import Collection, Sequence
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

# `owners.last_seen` of a process whose liveness is its process lock, not heartbeats
# (9999-12-31): bridges from before process locks, still running while a deploy upgrades
# them, never take such a process for silent; a clean stop writes the real time.
LOCK_HELD_LAST_SEEN = 253402300799.0

POSTGRES_SCHEMES = ("postgres", "postgresql")  # Heroku sets postgres://, libpq also takes both

UNSUPPORTED_URL_MESSAGE = (
    "DATABASE_URL: use sqlite:///… for a file or postgres://… for a Postgres database "
    "(e.g. sqlite:///bridge.db, sqlite:////data/bridge.db or "
    "postgres://user:password@host:5432/dbname)"
)


class TurnStatus(StrEnum):
    """Life of one turn. `queued` and `streaming` are unfinished: a turn left in either
    by a process that is gone has its reply marked interrupted (see `bridge.relay.liveness`)."""

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


@dataclass(frozen=True)
class OwnerRecord:
    """What the `owners` table says about one process."""

    last_seen: float
    stopped: bool

    @property
    def holds_lock(self) -> bool:
        """Whether the process proves it is alive by its process lock (else: heartbeats,
        a bridge from before process locks)."""
        return self.last_seen >= LOCK_HELD_LAST_SEEN


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

    async def unfinished_turns(self, not_owner: str) -> list[tuple[Turn, OwnerRecord | None]]:
        """Unfinished turns not owned by `not_owner`, oldest first, each with its owner's
        row (None: no row, or a turn from before owners were recorded). Whether their
        processes are gone is `bridge.relay.liveness`'s decision."""
        ...

    # Process liveness: each process holds a lock that the operating system (SQLite: a
    # file lock) or the database (Postgres: a session advisory lock) releases when the
    # process dies, so the others know at once that its unfinished turns are orphans.

    async def register_owner(self, owner: str) -> None:
        """Record process `owner` as running, alive while it holds its process lock
        (`hold_process_lock` first)."""
        ...

    async def sign_off(self, owner: str) -> None:
        """Record that process `owner` stopped: its unfinished turns are orphans at once.
        Also written for a process found gone, so its row can be pruned."""
        ...

    async def hold_process_lock(self, owner: str) -> None:
        """Take `owner`'s lock for the life of this process (until `release_process_lock`
        or `close`); safe to call again.

        Raises:
            StoreError: the lock cannot be taken.
        """
        ...

    async def keep_process_lock(self, owner: str) -> bool:
        """Check that `owner`'s lock is still held, taking it again if it was lost (a
        dropped Postgres connection); False when it had been lost.

        Raises:
            StoreError: it was lost and cannot be taken again now.
        """
        ...

    async def release_process_lock(self, owner: str) -> None:
        """Give up `owner`'s lock (clean stop, after `sign_off`)."""
        ...

    async def live_owners(self, owners: Collection[str]) -> set[str]:
        """Which of `owners` hold their process lock now (any process on the database)."""
        ...

    # Slack OAuth: installations arrive sealed (encrypted); the store never decrypts.

    async def save_installation(
        self, enterprise_id: str | None, team_id: str | None, bot_user_id: str, sealed: str
    ) -> None: ...

    async def find_installation(
        self, enterprise_id: str | None, team_id: str | None
    ) -> str | None: ...

    async def delete_installation(self, enterprise_id: str | None, team_id: str | None) -> bool:
        """False when that workspace was not installed."""
        ...

    async def issue_oauth_state(self, state: str, expires_at: float) -> None: ...

    async def consume_oauth_state(self, state: str) -> bool:
        """True exactly once for a state issued and not yet expired."""
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
