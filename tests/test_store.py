"""The SQLite store against real database files in tmp_path."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

import bridge.store as store_module
from bridge.errors import BridgeError, ConfigError
from bridge.model import Question, ThreadKey
from bridge.store import (
    Conversation,
    SQLiteStore,
    Store,
    StoreError,
    TurnStatus,
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
async def store(db_path: Path):
    opened = await open_store(url_for(db_path))
    yield opened
    await opened.close()


def raw(db_path: Path, sql: str) -> list[tuple]:
    """Read the file with a separate plain connection, as an operator would."""
    with sqlite3.connect(db_path) as conn:
        return conn.execute(sql).fetchall()


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


async def test_postgres_url_is_refused_readably_without_echoing_the_password() -> None:
    with pytest.raises(ConfigError) as caught:
        await open_store("postgres://bridge:hunter2@db.example.com:5432/bridge")
    message = str(caught.value)
    assert "DATABASE_URL: only sqlite:/// is supported in this version" in message
    assert "postgres support is planned" in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://localhost/bridge", "only sqlite:/// is supported"),
        ("bridge.db", "only sqlite:/// is supported"),
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
    latest = len(store_module.MIGRATIONS)
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

    monkeypatch.setattr(store_module, "MIGRATIONS", [*store_module.MIGRATIONS, add_note_column])
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

    monkeypatch.setattr(store_module, "MIGRATIONS", [*store_module.MIGRATIONS, broken])
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
        patch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:1])
        assert await migrate_database(url) == 1
    insert_v1_turn(db_path, "E1", DISCORD_PLAIN, '["901", "902"]')
    insert_v1_turn(db_path, "E2", OTHER_THREAD, "[]")
    insert_v1_turn(db_path, "E3", THREAD, "not json")  # hand-edited: skipped, not fatal

    assert await migrate_database(url) == 2
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
            store_module.MIGRATIONS[1](db)
    assert raw(db_path, "SELECT message_id, thread FROM reply_messages") == [("901", "Q1")]


async def test_wal_mode_is_active(store: Store, db_path: Path) -> None:
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


async def test_upsert_keeps_created_at_and_moves_updated_at(store: Store, db_path: Path) -> None:
    await store.save_conversation(THREAD, "wonderchat", "a")
    [(created, updated)] = raw(db_path, "SELECT created_at, updated_at FROM conversations")
    await asyncio.sleep(0.01)
    await store.save_conversation(THREAD, "wonderchat", "b")
    [(created_after, updated_after)] = raw(
        db_path, "SELECT created_at, updated_at FROM conversations"
    )
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
    store: Store, db_path: Path
) -> None:
    results = await asyncio.gather(
        *(store.claim_turn(question("Dup"), backend="wonderchat") for _ in range(20))
    )
    assert results.count(True) == 1
    assert raw(db_path, "SELECT COUNT(*) FROM turns WHERE event_id = 'Dup'") == [(1,)]


async def test_two_stores_on_one_file_also_have_exactly_one_winner(db_path: Path) -> None:
    """Like `bridge run` and `bridge serve` sharing one file: two connections, two threads."""
    first = await open_store(url_for(db_path))
    second = await open_store(url_for(db_path))
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
    assert final.error == "x" * store_module.MAX_ERROR_CHARS


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


async def test_unfinished_turns_are_queued_or_streaming_oldest_first(store: Store) -> None:
    for event_id, status in [
        ("A", TurnStatus.STREAMING),
        ("B", TurnStatus.DONE),
        ("C", TurnStatus.QUEUED),
        ("D", TurnStatus.ERROR),
        ("E", TurnStatus.INTERRUPTED),
    ]:
        await store.claim_turn(question(event_id), backend="wonderchat")
        await store.update_turn("slack", event_id, status=status)
    unfinished = await store.unfinished_turns()
    assert [(t.event_id, t.status) for t in unfinished] == [
        ("A", TurnStatus.STREAMING),
        ("C", TurnStatus.QUEUED),
    ]


async def test_recent_turn_count_per_user(store: Store, db_path: Path) -> None:
    for i in range(3):
        await store.claim_turn(question(f"R{i}", user="U7"), backend="widget")
    await store.claim_turn(question("R9", user="U8"), backend="widget")
    with sqlite3.connect(db_path) as conn:  # one of U7's turns is from an hour ago
        conn.execute("UPDATE turns SET created_at = created_at - 3600 WHERE event_id = 'R0'")
    latest = raw(db_path, "SELECT MAX(created_at) FROM turns")[0][0]
    assert await store.recent_turn_count("slack", "U7", latest - 60) == 2
    assert await store.recent_turn_count("slack", "U7", 0) == 3
    assert await store.recent_turn_count("discord", "U7", 0) == 0


# --- privacy ------------------------------------------------------------------------------


SECRET_QUESTION = "my-private-question-5b7e1c"
SECRET_ANSWER = "the-private-answer-9d2f4a"


async def test_message_text_is_not_stored_by_default(db_path: Path) -> None:
    store = await open_store(url_for(db_path))
    await store.claim_turn(question("P1", text=SECRET_QUESTION), backend="wonderchat")
    await store.update_turn(
        "slack", "P1", status="done", question_text=SECRET_QUESTION, answer_text=SECRET_ANSWER
    )
    turn = await store.get_turn("slack", "P1")
    await store.close()

    assert turn is not None and turn.status is TurnStatus.DONE
    assert turn.question_text is None and turn.answer_text is None
    on_disk = b"".join(p.read_bytes() for p in db_path.parent.iterdir())
    assert SECRET_QUESTION.encode() not in on_disk
    assert SECRET_ANSWER.encode() not in on_disk


async def test_message_text_is_stored_when_enabled(db_path: Path) -> None:
    store = await open_store(url_for(db_path), store_text=True)
    await store.claim_turn(question("P2", text=SECRET_QUESTION), backend="wonderchat")
    await store.update_turn("slack", "P2", answer_text=SECRET_ANSWER)
    turn = await store.get_turn("slack", "P2")
    await store.close()
    assert turn is not None
    assert (turn.question_text, turn.answer_text) == (SECRET_QUESTION, SECRET_ANSWER)


# --- lifecycle ----------------------------------------------------------------------------


async def test_data_survives_close_and_reopen(db_path: Path) -> None:
    store = await open_store(url_for(db_path))
    await store.save_conversation(THREAD, "wonderchat", "chatlog-42")
    await store.claim_turn(question("K1"), backend="wonderchat")
    await store.update_turn("slack", "K1", status="streaming", reply_message_ids=["9.9"])
    await store.close()

    reopened = await open_store(url_for(db_path))
    try:
        assert await reopened.get_conversation(THREAD) == Conversation("wonderchat", "chatlog-42")
        assert await reopened.claim_turn(question("K1"), backend="wonderchat") is False
        [turn] = await reopened.unfinished_turns()
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


async def test_ping_and_close(db_path: Path) -> None:
    store = await open_store(url_for(db_path))
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
