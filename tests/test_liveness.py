"""Which unfinished turns are orphans: `bridge.relay.liveness` on real SQLite and
Postgres stores, with other "processes" played by stores of their own (each holds its
lock on its own file handle or connection, as a separate process would)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from bridge.model import Question, ThreadKey
from bridge.relay.liveness import LEGACY_OWNER_TIMEOUT_SECONDS, Liveness
from bridge.store import (
    LOCK_HELD_LAST_SEEN,
    Store,
    TurnStatus,
    is_postgres_url,
    open_store,
    parse_database_url,
)
from bridge.store.process_lock import OWNERS_DIRECTORY_SUFFIX, FileLocks

THREAD = ThreadKey("slack", "T1", "C1", "1700000000.000100")


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await open_store(database_url)
    yield opened
    await opened.close()


async def claim(store: Store, event_id: str, owner: str | None, status: TurnStatus) -> None:
    question = Question(thread=THREAD, user_id="U1", text="q", event_id=event_id)
    await store.claim_turn(question, backend="widget", owner=owner)
    await store.update_turn("slack", event_id, status=status)


async def test_orphans_are_the_turns_of_processes_that_are_gone(
    store: Store, database_url: str
) -> None:
    ids = {name: f"{name}-{uuid.uuid4().hex}" for name in ("me", "alive", "crashed", "stopped")}
    liveness = Liveness(store, instance_id=ids["me"], interval=60)
    await liveness.start()
    alive_store = await open_store(database_url)  # a live process
    crashed_store = await open_store(database_url)  # a process about to be killed
    try:
        for name, other in (("alive", alive_store), ("crashed", crashed_store)):
            await other.hold_process_lock(ids[name])
            await other.register_owner(ids[name])
        await store.register_owner(ids["stopped"])
        await store.sign_off(ids["stopped"])
        await claim(store, "mine", ids["me"], TurnStatus.STREAMING)
        await claim(store, "live", ids["alive"], TurnStatus.STREAMING)
        await claim(store, "killed", ids["crashed"], TurnStatus.STREAMING)
        await claim(store, "left", ids["stopped"], TurnStatus.QUEUED)
        await claim(store, "legacy", None, TurnStatus.QUEUED)  # from before schema v3

        async def orphans() -> list[str]:
            return [turn.event_id for turn in await liveness.orphans()]

        assert await orphans() == ["left", "legacy"]
        await crashed_store.close()  # its lock ends with it, as at SIGKILL
        assert await orphans() == ["killed", "left", "legacy"]
        [(_, crashed)] = [
            (turn, owner)
            for turn, owner in await store.unfinished_turns(ids["me"])
            if turn.event_id == "killed"
        ]
        assert crashed is not None and crashed.stopped  # signed off on its behalf
    finally:
        await liveness.close()
        await alive_store.close()
        await crashed_store.close()


async def old_bridge_beat(database_url: str, owner: str, last_seen: float) -> None:
    """Write the owners row as a bridge from before process locks did, every 15 s."""
    sql = f"INSERT INTO owners (id, last_seen, stopped) VALUES ('{owner}', {last_seen}, FALSE)"
    if is_postgres_url(database_url):
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()
    else:
        with sqlite3.connect(parse_database_url(database_url)) as conn:
            conn.execute(sql)


async def test_bridges_from_before_process_locks_are_judged_by_their_heartbeats(
    store: Store, database_url: str
) -> None:
    """While a deploy upgrades a bridge that only beats, its answers are left alone
    until it has been silent as long as it used to take."""
    me = f"me-{uuid.uuid4().hex}"
    liveness = Liveness(store, instance_id=me, interval=60)
    await liveness.start()
    try:
        now = time.time()
        await old_bridge_beat(database_url, "beating", now)
        await old_bridge_beat(database_url, "silent", now - LEGACY_OWNER_TIMEOUT_SECONDS - 1)
        await claim(store, "old-live", "beating", TurnStatus.STREAMING)
        await claim(store, "old-lost", "silent", TurnStatus.STREAMING)
        await claim(store, "not-yet-beaten", "no-row", TurnStatus.STREAMING)
        assert [turn.event_id for turn in await liveness.orphans()] == ["old-lost"]
    finally:
        await liveness.close()


async def test_a_running_process_looks_alive_to_bridges_from_before_process_locks(
    store: Store,
) -> None:
    """Those judge by `owners.last_seen`: ours never grows old while we run."""
    me = f"me-{uuid.uuid4().hex}"
    liveness = Liveness(store, instance_id=me, interval=60)
    await liveness.start()
    await claim(store, "E1", me, TurnStatus.STREAMING)
    [(_, owner)] = await store.unfinished_turns("someone-else")
    assert owner is not None and owner.last_seen == LOCK_HELD_LAST_SEEN
    await liveness.close()
    [(_, owner)] = await store.unfinished_turns("someone-else")
    assert owner is not None and owner.stopped and owner.last_seen <= time.time()


def test_a_killed_process_lock_file_is_free_and_cleaned_up(tmp_path: Path) -> None:
    """The kernel frees a SIGKILLed process's flock; the file it leaves behind is removed
    by the next check, or by the next process that starts."""
    database = str(tmp_path / "bridge.db")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_AND_WAIT, database],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        locks = FileLocks(database)
        assert locks.live(["killed", "other"]) == {"killed"}
        holder.kill()
        holder.wait(timeout=WAIT_SECONDS)
    finally:
        holder.kill()
    lock_files = sorted(p.name for p in Path(database + OWNERS_DIRECTORY_SUFFIX).iterdir())
    assert lock_files == ["killed.lock"]  # left behind: no clean stop
    locks.hold("next")  # a new process: tidies up what the killed one left
    assert sorted(p.name for p in Path(database + OWNERS_DIRECTORY_SUFFIX).iterdir()) == [
        "next.lock"
    ]
    assert locks.live(["killed", "next"]) == {"next"}
    locks.close()


WAIT_SECONDS = 30.0
HOLD_AND_WAIT = """
import sys, time
from bridge.store.process_lock import FileLocks
FileLocks(sys.argv[1]).hold("killed")
print("held", flush=True)
time.sleep(60)
"""
