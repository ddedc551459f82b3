"""Votes, hand-offs and report rows in the store, on SQLite and Postgres alike."""

from __future__ import annotations

import pytest

from bridge.model import Question, ThreadKey
from bridge.store import Store, TurnStatus, VoteValue, open_store

THREAD = ThreadKey("slack", "T1", "C1", "1700000000.000100")


@pytest.fixture(params=[False, True], ids=["no-text", "store-text"])
async def store(request: pytest.FixtureRequest, database_url: str):
    opened = await open_store(database_url, store_text=request.param)
    yield opened
    await opened.close()


async def answered_turn(store: Store, event_id: str = "Ev1", *, sources: list[str] | None = None):
    question = Question(
        thread=THREAD, user_id="U1", text="what is the refund policy?", event_id=event_id
    )
    assert await store.claim_turn(question, backend="wonderchat")
    await store.save_conversation(THREAD, "wonderchat", "chatlog-7")
    await store.update_turn(
        "slack",
        event_id,
        status=TurnStatus.DONE,
        reply_channel="C1",
        reply_message_ids=["1700000000.000200"],
        backend_message_id="msg-9",
        answer_text="Refunds take 5 days.",
        first_text_ms=300,
        total_ms=1200,
        sources=sources if sources is not None else ["https://docs.example.com/refunds"],
    )
    turn = await store.get_turn("slack", event_id)
    assert turn is not None
    return turn


async def test_a_vote_is_stored_with_what_it_judged(store: Store) -> None:
    turn = await answered_turn(store)
    vote = await store.record_vote(turn, "U2", VoteValue.UP, message_id="1700000000.000200")
    assert vote.vote is VoteValue.UP and vote.thread == THREAD and vote.user_id == "U2"
    assert vote.conversation_id == "chatlog-7"
    assert vote.backend_message_id == "msg-9"
    assert vote.sources == ("https://docs.example.com/refunds",)
    assert vote.message_id == "1700000000.000200"
    if store.store_text:  # type: ignore[attr-defined]
        assert vote.question_text == "what is the refund policy?"
        assert vote.answer_text == "Refunds take 5 days."
    else:
        assert vote.question_text is None and vote.answer_text is None


async def test_one_vote_per_person_changing_it_drops_the_old_reason(store: Store) -> None:
    turn = await answered_turn(store)
    await store.record_vote(turn, "U2", VoteValue.DOWN, message_id=None)
    with_reason = await store.set_vote_reason("slack", "Ev1", "U2", "outdated link")
    assert with_reason is not None and with_reason.reason == "outdated link"
    same = await store.record_vote(turn, "U2", VoteValue.DOWN, message_id=None)
    assert same.reason == "outdated link"  # pressing 👎 again keeps the reason
    changed = await store.record_vote(turn, "U2", VoteValue.UP, message_id=None)
    assert changed.vote is VoteValue.UP and changed.reason is None
    assert changed.created_at == with_reason.created_at
    other = await store.record_vote(turn, "U3", VoteValue.DOWN, message_id=None)
    assert other.vote is VoteValue.DOWN
    assert (await store.get_vote("slack", "Ev1", "U2")).vote is VoteValue.UP  # type: ignore[union-attr]


async def test_a_reason_without_a_vote_is_refused(store: Store) -> None:
    await answered_turn(store)
    assert await store.set_vote_reason("slack", "Ev1", "U9", "no vote first") is None


async def test_one_open_handoff_per_thread(store: Store) -> None:
    assert not await store.handoff_open(THREAD)
    assert await store.start_handoff(THREAD, "U1", "Ev1")
    assert not await store.start_handoff(THREAD, "U2", "Ev1")  # already with a person
    assert await store.handoff_open(THREAD)
    assert await store.end_handoff(THREAD, "U3")
    assert not await store.end_handoff(THREAD, "U3")
    assert not await store.handoff_open(THREAD)
    assert await store.start_handoff(THREAD, "U1", None)  # a second hand-off later


async def test_report_rows_cover_the_period(store: Store) -> None:
    turn = await answered_turn(store, sources=[])
    await store.record_vote(turn, "U2", VoteValue.DOWN, message_id=None)
    await store.start_handoff(THREAD, "U2", "Ev1")
    data = await store.report_data(0.0)
    [row] = data.turns
    assert (row.platform, row.channel, row.status, row.replied) == ("slack", "C1", "done", True)
    assert (row.first_text_ms, row.total_ms, row.source_count) == (300, 1200, 0)
    assert data.votes == [("slack", "C1", "down")]
    assert data.handoffs == [("slack", "C1")]
    later = await store.report_data(turn.created_at + 3600)
    assert later.turns == [] and later.votes == [] and later.handoffs == []
