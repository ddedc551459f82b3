"""The stores against real databases: SQLite files in tmp_path and a throwaway Postgres
server (tests/conftest.py). Tests taking `store` or `database_url` run on both."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
import sqlite_utils

import bridge.store.postgres as postgres_module
import bridge.store.sqlite as sqlite_module
from bridge.errors import BridgeError, ConfigError
from bridge.model import Question, ThreadKey
from bridge.store import (
    LOCK_HELD_LAST_SEEN,
    MAX_ERROR_CHARS,
    Conversation,
    OwnerRecord,
    SQLiteStore,
    Store,
    StoreError,
    TurnStatus,
    is_postgres_url,
    migrate_database,
    open_store,
    parse_database_url,
)

THREAD = ThreadKey("slack", "T1", "C1", "1700000000.000100")
OTHER_THREAD = ThreadKey("discord", "@dm", "555", "555")
DISCORD_PLAIN = ThreadKey("discord", "G1", "C9", "Q1")  # plain-reply mode: keyed by question


def url_for(path: Path) -> str:
    return f"sqlite:///{path}"  # path is absolute, so this is the four-slash form


def question(event_id: str, text: str = "what is the refund policy?", user: str = "U1") -> Question:
    return Question(thread=THREAD, user_id=user, text=text, event_id=event_id)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "bridge.db"


@pytest.fixture
async def store(database_url: str):
    opened = await open_store(database_url)
    yield opened
    await opened.close()


def raw(db_path: Path, sql: str) -> list[tuple]:
    """Read the file with a separate plain connection, as an operator would."""
    with sqlite3.connect(db_path) as conn:
        return conn.execute(sql).fetchall()


async def raw_sql(database_url: str, sql: str) -> list[tuple]:
    """Run `sql` on a separate plain connection of either kind, as an operator would."""
    if not is_postgres_url(database_url):
        return raw(Path(parse_database_url(database_url)), sql)
    conn = await asyncpg.connect(database_url)
    try:
        return [tuple(row) for row in await conn.fetch(sql)]
    finally:
        await conn.close()


# --- DATABASE_URL ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///bridge.db", "bridge.db"),
        ("sqlite:///var/bridge.db", "var/bridge.db"),
        ("sqlite:////data/bridge.db", "/data/bridge.db"),
        ("sqlite://:memory:", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
        ("  SQLITE:///bridge.db\n", "bridge.db"),
    ],
)
def test_database_url_forms(url: str, path: str) -> None:
    assert parse_database_url(url) == path


@pytest.mark.parametrize(
    ("url", "postgres"),
    [
        ("postgres://u:p@db.example.com:5432/bridge", True),  # Heroku's form
        ("postgresql://u:p@db.example.com/bridge?sslmode=require", True),
        (" POSTGRES://db/bridge\n", True),
        ("sqlite:///bridge.db", False),
        ("postgres.db", False),
        ("mysql://localhost/bridge", False),
    ],
)
def test_postgres_urls_are_recognised(url: str, postgres: bool) -> None:
    assert is_postgres_url(url) is postgres


async def test_an_unreachable_postgres_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError) as caught:
        await open_store("postgres://bridge:hunter2@127.0.0.1:1/bridgedb")  # port 1: refused
    message = str(caught.value)
    assert "cannot open database (postgres 127.0.0.1/bridgedb)" in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://localhost/bridge", "use sqlite:///… for a file or postgres://…"),
        ("bridge.db", "use sqlite:///… for a file or postgres://…"),
        ("sqlite://dbhost/bridge.db", "has no host"),
        ("sqlite:///", "needs a file name"),
        ("sqlite:///bridge.db?mode=ro", "not supported"),
    ],
)
async def test_bad_database_urls(url: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        await migrate_database(url)


async def test_relative_url_creates_missing_directories_under_the_working_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = await open_store("sqlite:///state/deep/bridge.db")
    await store.close()
    assert (tmp_path / "state" / "deep" / "bridge.db").is_file()


async def test_in_memory_store_works_end_to_end() -> None:
    store = await open_store("sqlite://:memory:")
    try:
        await store.save_conversation(THREAD, "widget", "resp_1")
        assert await store.get_conversation(THREAD) == Conversation("widget", "resp_1")
        assert await store.claim_turn(question("E1"), backend="widget")
        assert not await store.claim_turn(question("E1"), backend="widget")
    finally:
        await store.close()


# --- migrations ---------------------------------------------------------------------------


async def test_migrate_is_idempotent_and_reports_the_version(db_path: Path) -> None:
    latest = len(sqlite_module.MIGRATIONS)
    assert latest >= 1
    assert await migrate_database(url_for(db_path)) == latest
    assert await migrate_database(url_for(db_path)) == latest
    assert raw(db_path, "SELECT version FROM schema_migrations ORDER BY version") == [
        (v,) for v in range(1, latest + 1)
    ]
    tables = {name for (name,) in raw(db_path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"conversations", "turns", "schema_migrations"} <= tables


async def test_a_new_migration_is_applied_once_on_top_of_an_existing_database(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = url_for(db_path)
    first = await migrate_database(url)
    store = await open_store(url)
    await store.save_conversation(THREAD, "wonderchat", "chatlog-1")
    await store.close()

    def add_note_column(db: sqlite_utils.Database) -> None:
        db.table("conversations").add_column("note", str)

    monkeypatch.setattr(sqlite_module, "MIGRATIONS", [*sqlite_module.MIGRATIONS, add_note_column])
    assert await migrate_database(url) == first + 1
    assert await migrate_database(url) == first + 1  # adding the column twice would fail
    assert raw(db_path, "SELECT conversation_id, note FROM conversations") == [("chatlog-1", None)]


async def test_a_failed_migration_leaves_the_schema_unchanged(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = url_for(db_path)
    first = await migrate_database(url)

    def broken(db: sqlite_utils.Database) -> None:
        db.table("conversations").add_column("half_done", str)
        db.execute("SELECT * FROM no_such_table")

    monkeypatch.setattr(sqlite_module, "MIGRATIONS", [*sqlite_module.MIGRATIONS, broken])
    with pytest.raises(StoreError, match="no such table"):
        await migrate_database(url)
    columns = [row[1] for row in raw(db_path, "PRAGMA table_info(conversations)")]
    assert "half_done" not in columns
    assert raw(db_path, "SELECT MAX(version) FROM schema_migrations") == [(first,)]


async def test_a_schema_newer_than_the_code_is_refused(db_path: Path) -> None:
    await migrate_database(url_for(db_path))
    with sqlite3.connect(db_path) as conn:
        conn.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)")
    with pytest.raises(StoreError, match="version 99, newer"):
        await open_store(url_for(db_path))


async def test_postgres_migrates_to_the_same_version_idempotently(postgres_url: str) -> None:
    latest = len(sqlite_module.MIGRATIONS)
    assert len(postgres_module.MIGRATIONS) == latest  # one numbering for both databases
    assert await migrate_database(postgres_url) == latest
    assert await migrate_database(postgres_url) == latest
    versions = await raw_sql(postgres_url, "SELECT version FROM schema_migrations ORDER BY 1")
    assert versions == [(v,) for v in range(1, latest + 1)]
    tables = await raw_sql(
        postgres_url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()",
    )
    assert {name for (name,) in tables} == {
        "conversations",
        "turns",
        "reply_messages",
        "owners",
        "slack_installations",
        "slack_oauth_states",
        "schema_migrations",
        "feedback",
        "handoffs",
    }


OPEN_STORE_IN_A_PROCESS = (
    "import asyncio, sys\n"
    "from bridge.store import migrate_database\n"
    "print(asyncio.run(migrate_database(sys.argv[1])))"
)


async def test_processes_opening_a_new_sqlite_file_together_all_start(tmp_path: Path) -> None:
    """Two processes switching one new file to WAL at once: SQLite refuses the second at
    once, without its busy timeout (the race showed in ~1 start in 5 on a 2-core machine;
    ten pairs make it show almost surely without the retry)."""
    latest = len(sqlite_module.MIGRATIONS)
    for pair in range(10):
        url = url_for(tmp_path / f"pair-{pair}.db")
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                OPEN_STORE_IN_A_PROCESS,
                url,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(2)
        ]
        outputs = await asyncio.gather(*(process.communicate() for process in processes))
        for process, (out, err) in zip(processes, outputs, strict=True):
            assert process.returncode == 0, err.decode()[-600:]
            assert out.decode().strip() == str(latest)


async def test_postgres_processes_starting_together_migrate_once(postgres_url: str) -> None:
    """Without the advisory lock, concurrent CREATE TABLEs collide (duplicate key)."""
    versions = await asyncio.gather(*(migrate_database(postgres_url) for _ in range(4)))
    assert versions == [len(postgres_module.MIGRATIONS)] * 4
    count = "SELECT COUNT(*) FROM schema_migrations"
    assert await raw_sql(postgres_url, count) == [(len(postgres_module.MIGRATIONS),)]


async def test_postgres_failed_migration_changes_nothing(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await migrate_database(postgres_url)
    broken = "ALTER TABLE conversations ADD COLUMN half_done TEXT; SELECT * FROM no_such_table"
    monkeypatch.setattr(postgres_module, "MIGRATIONS", [*postgres_module.MIGRATIONS, broken])
    with pytest.raises(StoreError, match="no_such_table"):
        await migrate_database(postgres_url)
    columns = await raw_sql(
        postgres_url,
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = 'conversations'",
    )
    assert ("half_done",) not in columns
    assert await raw_sql(postgres_url, "SELECT MAX(version) FROM schema_migrations") == [(first,)]


async def test_a_schema_newer_than_the_code_is_refused_by_postgres_too(postgres_url: str) -> None:
    await migrate_database(postgres_url)
    future = "INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)"
    await raw_sql(postgres_url, future)
    with pytest.raises(StoreError, match="version 99, newer"):
        await open_store(postgres_url)


async def test_upgrading_a_v2_database_makes_its_unfinished_turns_stale(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Turns from before owners were recorded belong to no live process."""
    url = url_for(db_path)
    with monkeypatch.context() as patch:
        patch.setattr(sqlite_module, "MIGRATIONS", sqlite_module.MIGRATIONS[:2])
        assert await migrate_database(url) == 2
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "INSERT INTO turns (platform, event_id, workspace, channel, thread, user_id, "
            "correlation_id, backend, status, created_at, updated_at) "
            "VALUES ('slack', 'OLD', 'T1', 'C1', 'th', 'U1', 'corr', 'widget', 'streaming', 0, 0)"
        )
    store = await open_store(url)
    try:
        [(turn, owner)] = await store.unfinished_turns("new-process")
        assert (turn.event_id, turn.owner, owner) == ("OLD", None, None)
    finally:
        await store.close()


def insert_v1_turn(db_path: Path, event_id: str, thread: ThreadKey, reply_ids: str) -> None:
    """A turn row exactly as a version-1 bridge wrote it."""
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "INSERT INTO turns (platform, event_id, workspace, channel, thread, user_id, "
            "correlation_id, backend, status, reply_message_ids, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, 'U1', 'corr', 'wonderchat', 'done', ?, 0, 0)",
            (thread.platform, event_id, thread.workspace, thread.channel, thread.thread, reply_ids),
        )


async def test_upgrading_a_v1_database_indexes_the_replies_of_earlier_turns(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = url_for(db_path)
    with monkeypatch.context() as patch:
        patch.setattr(sqlite_module, "MIGRATIONS", sqlite_module.MIGRATIONS[:1])
        assert await migrate_database(url) == 1
    insert_v1_turn(db_path, "E1", DISCORD_PLAIN, '["901", "902"]')
    insert_v1_turn(db_path, "E2", OTHER_THREAD, "[]")
    insert_v1_turn(db_path, "E3", THREAD, "not json")  # hand-edited: skipped, not fatal

    assert await migrate_database(url) == len(sqlite_module.MIGRATIONS)
    store = await open_store(url)
    try:
        assert await store.find_thread_by_reply("discord", "902") == DISCORD_PLAIN
        assert await store.find_thread_by_reply("discord", "901") == DISCORD_PLAIN
    finally:
        await store.close()
    assert raw(db_path, "SELECT COUNT(*) FROM reply_messages") == [(2,)]


async def test_the_reply_index_step_can_run_again_without_harm(db_path: Path) -> None:
    await migrate_database(url_for(db_path))
    insert_v1_turn(db_path, "E1", DISCORD_PLAIN, '["901"]')
    for _ in range(2):
        with sqlite_utils.Database(db_path) as db:
            sqlite_module.MIGRATIONS[1](db)
    assert raw(db_path, "SELECT message_id, thread FROM reply_messages") == [("901", "Q1")]


async def test_wal_mode_is_active(db_path: Path) -> None:
    await migrate_database(url_for(db_path))
    assert raw(db_path, "PRAGMA journal_mode") == [("wal",)]


# --- conversations ------------------------------------------------------------------------


async def test_conversation_upsert_get_and_forget(store: Store) -> None:
    assert await store.get_conversation(THREAD) is None
    await store.save_conversation(THREAD, "wonderchat", "chatlog-1")
    await store.save_conversation(OTHER_THREAD, "widget", "resp_9")
    assert await store.get_conversation(THREAD) == Conversation("wonderchat", "chatlog-1")

    await store.save_conversation(THREAD, "widget", "resp_2")  # upsert replaces
    assert await store.get_conversation(THREAD) == Conversation("widget", "resp_2")

    await store.forget_conversation(THREAD)
    assert await store.get_conversation(THREAD) is None
    assert await store.get_conversation(OTHER_THREAD) == Conversation("widget", "resp_9")
    await store.forget_conversation(THREAD)  # forgetting twice is harmless


async def test_upsert_keeps_created_at_and_moves_updated_at(
    store: Store, database_url: str
) -> None:
    await store.save_conversation(THREAD, "wonderchat", "a")
    times = "SELECT created_at, updated_at FROM conversations"
    [(created, updated)] = await raw_sql(database_url, times)
    await asyncio.sleep(0.01)
    await store.save_conversation(THREAD, "wonderchat", "b")
    [(created_after, updated_after)] = await raw_sql(database_url, times)
    assert created_after == created
    assert updated_after > updated


# --- turns --------------------------------------------------------------------------------


async def test_claim_turn_refuses_a_duplicate_event(store: Store) -> None:
    first = question("Ev1")
    assert await store.claim_turn(first, backend="wonderchat") is True
    assert await store.claim_turn(question("Ev1"), backend="wonderchat") is False
    assert await store.claim_turn(question("Ev2"), backend="wonderchat") is True
    same_id_other_platform = Question(OTHER_THREAD, "U1", "hi", "Ev1")
    assert await store.claim_turn(same_id_other_platform, backend="widget") is True

    turn = await store.get_turn("slack", "Ev1")
    assert turn is not None
    assert turn.thread == THREAD
    assert turn.platform == "slack"
    assert turn.user_id == "U1"
    assert turn.backend == "wonderchat"
    assert turn.status is TurnStatus.QUEUED
    assert turn.reply_message_ids == ()
    assert turn.correlation_id == first.correlation_id  # the first claim's, not the retry's
    assert await store.get_turn("slack", "nope") is None


async def test_concurrent_claims_for_one_event_have_exactly_one_winner(
    store: Store, database_url: str
) -> None:
    results = await asyncio.gather(
        *(store.claim_turn(question("Dup"), backend="wonderchat") for _ in range(20))
    )
    assert results.count(True) == 1
    count = "SELECT COUNT(*) FROM turns WHERE event_id = 'Dup'"
    assert await raw_sql(database_url, count) == [(1,)]


async def test_two_stores_on_one_database_also_have_exactly_one_winner(database_url: str) -> None:
    """Like `bridge run` and `bridge serve` sharing one file, or two dynos one Postgres."""
    first = await open_store(database_url)
    second = await open_store(database_url)
    try:
        claims = [
            s.claim_turn(question(f"E{i}"), backend="widget")
            for i in range(30)
            for s in (first, second)
        ]
        results = await asyncio.gather(*claims)
        assert results.count(True) == 30
        assert all(results[i] != results[i + 1] for i in range(0, 60, 2))
    finally:
        await first.close()
        await second.close()


async def test_claim_turn_with_an_explicit_status(store: Store) -> None:
    await store.claim_turn(question("S1"), backend="widget", status=TurnStatus.STREAMING)
    turn = await store.get_turn("slack", "S1")
    assert turn is not None and turn.status is TurnStatus.STREAMING


async def test_update_turn_changes_only_the_given_fields(store: Store) -> None:
    await store.claim_turn(question("U1"), backend="wonderchat")
    before = await store.get_turn("slack", "U1")
    assert before is not None

    await asyncio.sleep(0.01)
    assert await store.update_turn(
        "slack", "U1", status="streaming", reply_channel="C1", reply_message_ids=["111.1"]
    )
    streaming = await store.get_turn("slack", "U1")
    assert streaming is not None
    assert streaming.status is TurnStatus.STREAMING
    assert streaming.reply_channel == "C1"
    assert streaming.reply_message_ids == ("111.1",)
    assert streaming.updated_at > before.updated_at
    assert streaming.created_at == before.created_at

    assert await store.update_turn(
        "slack",
        "U1",
        reply_message_ids=("111.1", "111.2"),
        backend_message_id="msg-7",
        first_text_ms=420,
    )
    assert await store.update_turn("slack", "U1", status=TurnStatus.ERROR, error="x" * 5000)
    final = await store.get_turn("slack", "U1")
    assert final is not None
    assert final.status is TurnStatus.ERROR
    assert final.reply_channel == "C1"  # untouched since the first update
    assert final.reply_message_ids == ("111.1", "111.2")
    assert final.backend_message_id == "msg-7"
    assert final.first_text_ms == 420
    assert final.total_ms is None
    assert final.error == "x" * MAX_ERROR_CHARS


async def test_any_reply_message_of_a_turn_finds_its_thread(store: Store) -> None:
    await store.claim_turn(Question(DISCORD_PLAIN, "U1", "long question", "Q1"), backend="widget")
    await store.update_turn("discord", "Q1", reply_message_ids=["901"])  # the placeholder
    assert await store.find_thread_by_reply("discord", "901") == DISCORD_PLAIN
    assert await store.find_thread_by_reply("discord", "902") is None

    await store.update_turn("discord", "Q1", status="done", reply_message_ids=["901", "902"])
    await store.update_turn("discord", "Q1", error="later change without reply ids")
    assert await store.find_thread_by_reply("discord", "901") == DISCORD_PLAIN
    assert await store.find_thread_by_reply("discord", "902") == DISCORD_PLAIN
    assert await store.find_thread_by_reply("slack", "902") is None  # ids are per platform

    # A turn that does not exist records nothing.
    assert not await store.update_turn("discord", "ghost", reply_message_ids=["903"])
    assert await store.find_thread_by_reply("discord", "903") is None


async def test_update_turn_reports_a_missing_turn_and_rejects_unknown_status(
    store: Store,
) -> None:
    assert await store.update_turn("slack", "ghost", status="done") is False
    await store.claim_turn(question("V1"), backend="wonderchat")
    with pytest.raises(ValueError):
        await store.update_turn("slack", "V1", status="finished")
    with pytest.raises(ValueError):
        await store.claim_turn(question("V2"), backend="wonderchat", status="bogus")


async def claim(store: Store, event_id: str, status: TurnStatus, owner: str | None) -> None:
    await store.claim_turn(question(event_id), backend="wonderchat", owner=owner)
    await store.update_turn("slack", event_id, status=status)


async def test_unfinished_turns_of_other_processes_come_with_their_owner_rows(
    store: Store,
) -> None:
    await store.register_owner("me")
    await store.register_owner("locked")
    await store.register_owner("stopped")
    await store.sign_off("stopped")
    await claim(store, "mine", TurnStatus.STREAMING, "me")
    await claim(store, "live", TurnStatus.STREAMING, "locked")
    await claim(store, "left", TurnStatus.QUEUED, "stopped")
    await claim(store, "early", TurnStatus.STREAMING, "no-row")
    await claim(store, "legacy", TurnStatus.QUEUED, None)  # from before schema version 3
    await claim(store, "ended", TurnStatus.DONE, "locked")
    await claim(store, "failed", TurnStatus.ERROR, "stopped")

    rows = await store.unfinished_turns("me")
    assert [turn.event_id for turn, _owner in rows] == ["live", "left", "early", "legacy"]
    owners = {turn.event_id: owner for turn, owner in rows}
    assert owners["live"] == OwnerRecord(last_seen=LOCK_HELD_LAST_SEEN, stopped=False)
    assert owners["live"].holds_lock
    assert owners["left"] is not None and owners["left"].stopped
    assert not owners["left"].holds_lock  # a clean stop writes the real time
    assert owners["early"] is None and owners["legacy"] is None


async def test_process_locks_show_which_processes_live(database_url: str) -> None:
    """Two stores on one database, as two processes: each sees the other's lock, and
    sees it free once the other's store (its connection or file handle) is gone."""
    # Advisory locks are per database, not per schema: ids unique to this test.
    first_id, second_id = f"first-{uuid.uuid4().hex}", f"second-{uuid.uuid4().hex}"
    first = await open_store(database_url)
    second = await open_store(database_url)
    try:
        await first.hold_process_lock(first_id)
        await first.hold_process_lock(first_id)  # again: no-op
        await second.hold_process_lock(second_id)
        assert await second.live_owners([first_id, "never-ran"]) == {first_id}
        assert await first.live_owners([second_id]) == {second_id}
        assert await first.keep_process_lock(first_id) is True
        with pytest.raises(StoreError):
            await second.hold_process_lock(first_id)  # a live process's lock is its own
        await first.close()  # as when the process dies: the OS or database frees it
        assert await second.live_owners([first_id, second_id]) == {second_id}
        await second.release_process_lock(second_id)
        assert await second.live_owners([second_id]) == set()
    finally:
        await first.close()
        await second.close()


async def test_interrupt_turn_wins_once_and_never_over_a_finished_turn(store: Store) -> None:
    await claim(store, "S1", TurnStatus.STREAMING, "gone")
    await claim(store, "S2", TurnStatus.DONE, "gone")
    assert await store.interrupt_turn("slack", "S1", "interrupted by a restart") is True
    assert await store.interrupt_turn("slack", "S1", "interrupted by a restart") is False
    assert await store.interrupt_turn("slack", "S2", "interrupted by a restart") is False
    assert await store.interrupt_turn("slack", "ghost", "interrupted by a restart") is False
    interrupted = await store.get_turn("slack", "S1")
    assert interrupted is not None
    assert (interrupted.status, interrupted.error) == (
        TurnStatus.INTERRUPTED,
        "interrupted by a restart",
    )
    finished = await store.get_turn("slack", "S2")
    assert finished is not None and finished.status is TurnStatus.DONE


# --- privacy ------------------------------------------------------------------------------


SECRET_QUESTION = "my-private-question-5b7e1c"
SECRET_ANSWER = "the-private-answer-9d2f4a"


async def test_message_text_is_not_stored_by_default(database_url: str) -> None:
    store = await open_store(database_url)
    await store.claim_turn(question("P1", text=SECRET_QUESTION), backend="wonderchat")
    await store.update_turn(
        "slack", "P1", status="done", question_text=SECRET_QUESTION, answer_text=SECRET_ANSWER
    )
    turn = await store.get_turn("slack", "P1")
    await store.close()

    assert turn is not None and turn.status is TurnStatus.DONE
    assert turn.question_text is None and turn.answer_text is None
    texts = "SELECT question_text, answer_text FROM turns"
    assert await raw_sql(database_url, texts) == [(None, None)]
    if not is_postgres_url(database_url):  # not even in a free page or the WAL
        data_dir = Path(parse_database_url(database_url)).parent
        on_disk = b"".join(p.read_bytes() for p in data_dir.iterdir())
        assert SECRET_QUESTION.encode() not in on_disk
        assert SECRET_ANSWER.encode() not in on_disk


async def test_message_text_is_stored_when_enabled(database_url: str) -> None:
    store = await open_store(database_url, store_text=True)
    await store.claim_turn(question("P2", text=SECRET_QUESTION), backend="wonderchat")
    await store.update_turn("slack", "P2", answer_text=SECRET_ANSWER)
    turn = await store.get_turn("slack", "P2")
    await store.close()
    assert turn is not None
    assert (turn.question_text, turn.answer_text) == (SECRET_QUESTION, SECRET_ANSWER)


# --- lifecycle ----------------------------------------------------------------------------


async def test_data_survives_close_and_reopen(database_url: str) -> None:
    store = await open_store(database_url)
    await store.save_conversation(THREAD, "wonderchat", "chatlog-42")
    await store.claim_turn(question("K1"), backend="wonderchat")
    await store.update_turn("slack", "K1", status="streaming", reply_message_ids=["9.9"])
    await store.close()

    reopened = await open_store(database_url)
    try:
        assert await reopened.get_conversation(THREAD) == Conversation("wonderchat", "chatlog-42")
        assert await reopened.claim_turn(question("K1"), backend="wonderchat") is False
        [(turn, _owner)] = await reopened.unfinished_turns("next-process")
        assert (turn.event_id, turn.reply_message_ids) == ("K1", ("9.9",))
    finally:
        await reopened.close()


async def test_database_work_never_blocks_the_event_loop(store: Store) -> None:
    """Each awaited write must suspend (it runs on the worker thread), so a ticker keeps
    running in between; a store doing SQLite work inline would starve it completely."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    ticks_before = ticks
    try:
        for i in range(500):
            await store.save_conversation(
                ThreadKey("slack", "T", "C", str(i)), "wonderchat", f"c{i}"
            )
    finally:
        task.cancel()
    assert ticks - ticks_before >= 100
    assert await store.get_conversation(ThreadKey("slack", "T", "C", "499")) == Conversation(
        "wonderchat", "c499"
    )


async def test_ping_and_close(database_url: str) -> None:
    store = await open_store(database_url)
    await store.ping()
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        await store.ping()
    with pytest.raises(BridgeError):
        await store.get_conversation(THREAD)


async def test_statements_submitted_before_close_still_complete(db_path: Path) -> None:
    store = await open_store(url_for(db_path))
    writes = [
        asyncio.ensure_future(store.claim_turn(question(f"Q{i}"), backend="widget"))
        for i in range(10)
    ]
    await asyncio.sleep(0)  # let them all be submitted to the worker
    await store.close()
    assert all(await asyncio.gather(*writes))
    assert raw(db_path, "SELECT COUNT(*) FROM turns") == [(10,)]


async def test_an_unopenable_database_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(StoreError, match="cannot open database"):
        await open_store(url_for(tmp_path / "a-file" / "bridge.db"))
    with pytest.raises(StoreError, match="database error"):
        await open_store(url_for(tmp_path))  # a directory, not a database file


async def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        await SQLiteStore.open(str(junk))
