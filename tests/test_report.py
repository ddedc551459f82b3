"""`bridge report` on a seeded database, in all three formats, through the real CLI."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.model import Question, ThreadKey
from bridge.report import parse_since, percentile
from bridge.store import TurnStatus, VoteValue, open_store

SLACK = ThreadKey("slack", "T1", "C1", "1700000000.000100")
SLACK_OTHER = ThreadKey("slack", "T1", "C2", "1700000000.000900")
DISCORD = ThreadKey("discord", "G1", "555", "777")


async def seed(url: str) -> None:
    """Slack C1: 4 answered (one without sources), 1 error, 1 refused, 1 interrupted, 1
    reset; Slack C2: one answer; Discord: one answer; votes, hand-offs and an old turn."""
    store = await open_store(url)
    try:
        number = 0

        async def turn(thread: ThreadKey, status: str, *, replied: bool = True, **fields) -> str:
            nonlocal number
            number += 1
            event_id = f"Ev{number}"
            question = Question(thread=thread, user_id="U1", text="q", event_id=event_id)
            await store.claim_turn(question, backend="wonderchat")
            replies = ["m" + event_id] if replied else []
            await store.update_turn(
                thread.platform, event_id, status=status, reply_message_ids=replies, **fields
            )
            return event_id

        for first, total, sources in ((100, 1000, ["u"]), (200, 2000, []), (300, 3000, ["u"])):
            await turn(SLACK, TurnStatus.DONE, first_text_ms=first, total_ms=total, sources=sources)
        voted = await turn(SLACK, TurnStatus.DONE, first_text_ms=400, total_ms=4000, sources=["u"])
        await turn(SLACK, TurnStatus.ERROR, error="backend failed")
        await turn(SLACK, TurnStatus.ERROR, replied=False, error="not allowed")
        await turn(SLACK, TurnStatus.INTERRUPTED)
        await turn(SLACK, TurnStatus.DONE, replied=False)  # a reset
        await turn(SLACK_OTHER, TurnStatus.DONE, first_text_ms=50, total_ms=500, sources=["u"])
        discord = await turn(DISCORD, TurnStatus.DONE, first_text_ms=70, total_ms=700, sources=[])
        for event_id, user, vote in (
            (voted, "U1", VoteValue.UP),
            (voted, "U2", VoteValue.UP),
            (voted, "U3", VoteValue.DOWN),
            (discord, "U1", VoteValue.DOWN),
        ):
            recorded = await store.get_turn("slack" if event_id == voted else "discord", event_id)
            assert recorded is not None
            await store.record_vote(recorded, user, vote, message_id=None)
        await store.start_handoff(SLACK, "U3", voted)
        old = await turn(SLACK, TurnStatus.DONE, first_text_ms=9, total_ms=9, sources=[])
    finally:
        await store.close()
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:  # a question from a month ago is outside 7d
        conn.execute(
            "UPDATE turns SET created_at = ? WHERE event_id = ?", (time.time() - 30 * 86400, old)
        )


@pytest.fixture
async def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'bridge.db'}"
    await seed(url)
    monkeypatch.setenv("DATABASE_URL", url)
    return url


def report(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["report", *args]) == 0
    return capsys.readouterr().out


async def test_json_report_counts_everything_per_channel(
    seeded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    document = json.loads(await _in_thread(report, capsys, "--since", "7d", "--format", "json"))
    rows = {(row["platform"], row["channel"]): row for row in document["rows"]}
    assert list(rows) == [
        ("discord", "555"),
        ("discord", "(all)"),
        ("slack", "C1"),
        ("slack", "C2"),
        ("slack", "(all)"),
    ]
    c1 = rows[("slack", "C1")]
    assert c1["questions"] == 7  # the reset and the month-old question are not counted
    assert (c1["done"], c1["error"], c1["refused"], c1["interrupted"]) == (4, 1, 1, 1)
    assert (c1["first_text_p50_ms"], c1["first_text_p95_ms"]) == (200, 400)
    assert (c1["total_p50_ms"], c1["total_p95_ms"]) == (2000, 4000)
    assert (c1["up"], c1["down"], c1["up_rate"]) == (2, 1, 0.667)
    assert (c1["no_sources"], c1["handoffs"]) == (1, 1)
    slack = rows[("slack", "(all)")]
    assert (slack["questions"], slack["done"], slack["total_p50_ms"]) == (8, 5, 2000)
    discord = rows[("discord", "555")]
    assert (discord["up"], discord["down"], discord["up_rate"], discord["no_sources"]) == (
        0,
        1,
        0.0,
        1,
    )
    assert rows[("slack", "C2")]["up_rate"] is None  # no votes: no rate


async def test_csv_report_has_a_header_and_one_line_per_row(
    seeded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = await _in_thread(report, capsys, "--format", "csv")
    lines = list(csv.DictReader(io.StringIO(text)))
    assert len(lines) == 5
    c1 = next(line for line in lines if line["channel"] == "C1")
    assert c1["questions"] == "7" and c1["up"] == "2" and c1["handoffs"] == "1"
    assert next(line for line in lines if line["channel"] == "C2")["up_rate"] == ""


async def test_table_report_is_aligned_for_a_terminal(
    seeded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = await _in_thread(report, capsys, "--since", "31d")
    title, header, rule, *rows = text.splitlines()
    assert title.startswith("bridge report: ")
    assert "questions" in header and "first p50" in header and "up %" in header
    assert len(rows) == 5
    c1 = next(row for row in rows if row.split()[1] == "C1")
    assert c1.split()[:4] == ["slack", "C1", "8", "5"]  # 31 days include the old question
    assert "0.2s" in c1 and "67%" in c1
    assert len({len(line) for line in (header, rule)}) == 1


async def test_an_empty_period_says_so(seeded: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = await _in_thread(report, capsys, "--since", "2999-01-01")
    assert "no questions, votes or hand-offs in this period" in text


async def test_a_bad_since_is_one_line_with_the_forms_that_work(
    seeded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _in_thread(main, ["report", "--since", "last tuesday"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "--since 'last tuesday'" in err and "7d" in err and "2026-12-01" in err


def test_since_forms() -> None:
    now = 1_000_000.0
    assert parse_since("30m", now=now) == now - 1800
    assert parse_since("24h", now=now) == now - 86400
    assert parse_since("2w", now=now) == now - 14 * 86400
    assert parse_since("1970-01-02", now=now) == 86400


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([5], 0.95) == 5
    assert percentile(list(range(1, 101)), 0.95) == 95
    assert percentile([1, 2, 3, 4], 0.5) == 2


async def _in_thread(function, *args):
    """The CLI runs its own event loop (asyncio.run): call it off this test's loop."""
    import asyncio

    return await asyncio.to_thread(function, *args)
