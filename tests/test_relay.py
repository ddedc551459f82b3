"""The relay against the mock backends over real HTTP, with a real SQLite store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from bridge.backends import build_backend
from bridge.config import Settings
from bridge.errors import PlatformError
from bridge.model import Question, ThreadKey
from bridge.relay import Outcome, Relay
from bridge.relay.admission import PRUNE_MIN_USERS, RATE_WINDOW_SECONDS, RateLimiter
from bridge.relay.dispatch import CONVERSATION_LOST_NOTICE
from bridge.render import INTERRUPTED_NOTICE
from bridge.runtime import Runtime, open_runtime
from bridge.store import Store, Turn, TurnStatus, open_store
from bridge.surface import Draft, EditKind, SurfaceLimits
from bridge.testing.mock_backend import MockBackend
from bridge.testing.recording_surface import RecordingEditor, RecordingSurface

THREAD = ThreadKey(platform="slack", workspace="T1", channel="C1", thread="1700000000.000100")


def make_settings(mock: MockBackend, tmp_path: Path, backend: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "bridge_backend": backend,
        "wonderchat_chatbot_id": mock.chatbot_id,
        "wonderchat_api_url": mock.url,
        "widget_api_url": mock.url,
        "widget_api_key": mock.api_key,
        "database_url": f"sqlite:///{tmp_path / 'bridge.db'}",
        "bridge_edit_interval": 0.05,
        "bridge_first_event_timeout": 5,
        "bridge_idle_timeout": 5,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def question(text: str, event_id: str, *, thread: ThreadKey = THREAD, user: str = "U1") -> Question:
    return Question(thread=thread, user_id=user, text=text, event_id=event_id)


@pytest.fixture
async def mock() -> AsyncIterator[MockBackend]:
    async with MockBackend(delay=0.005) as server:
        yield server


@pytest.fixture(params=["wonderchat", "widget"])
async def runtime(request: pytest.FixtureRequest, mock: MockBackend, tmp_path: Path):
    async with open_runtime(make_settings(mock, tmp_path, request.param)) as rt:
        yield rt


async def wait_until(condition: Callable[[], object], within: float = 10.0) -> None:
    """Poll `condition` (a generous bound: only a hang reaches it)."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - polls state owned by other tasks
            await asyncio.sleep(0.01)


def sent_questions(mock: MockBackend) -> list[str]:
    """The question text of each backend request, in order (both APIs)."""
    return [
        (r.json or {}).get("question") or (r.json or {})["messages"][0]["content"]
        for r in mock.requests
    ]


def sent_conversation_ids(mock: MockBackend) -> list[str | None]:
    """The conversation id each backend request carried, in order."""
    ids = []
    for request in mock.requests:
        body = request.json or {}
        ids.append(body.get("chatlogId") or body.get("previous_response_id"))
    return ids


async def test_answer_streams_with_sources_and_records_turn(
    runtime: Runtime, mock: MockBackend
) -> None:
    surface = RecordingSurface()
    outcome = await runtime.relay.answer(question("How do refunds work?", "E1"), surface)

    assert outcome is Outcome.DONE
    assert surface.calls[0][0] == "post"  # placeholder first
    assert len(surface.calls) >= 3  # placeholder, at least one progressive edit, final
    assert "refunds" in surface.text.lower()
    if runtime.backend.name == "wonderchat":  # the Widget API defines no sources
        assert "https://docs.example.com" in surface.text
    assert "▌" not in surface.text  # streaming marker removed by the final edit
    assert surface.closed
    turn = await runtime.store.get_turn("slack", "E1")
    assert turn is not None and turn.status == TurnStatus.DONE
    assert turn.reply_message_ids == tuple(surface.messages)


@pytest.mark.parametrize("store_text", [False, True])
async def test_message_text_is_recorded_only_when_asked(
    mock: MockBackend, tmp_path: Path, store_text: bool
) -> None:
    settings = make_settings(mock, tmp_path, "wonderchat", bridge_store_text=store_text)
    async with open_runtime(settings) as rt:
        await rt.relay.answer(question("How do refunds work?", "E1"), RecordingSurface())
        turn = await rt.store.get_turn("slack", "E1")
    assert turn is not None and turn.status == TurnStatus.DONE
    if store_text:  # BRIDGE_STORE_TEXT: the question as claimed, the answer as shown
        assert turn.question_text == "How do refunds work?"
        assert turn.answer_text and "refund" in turn.answer_text.lower()
    else:
        assert turn.question_text is None and turn.answer_text is None


async def test_conversation_id_stored_on_turn_one_and_sent_on_turn_two(
    runtime: Runtime, mock: MockBackend
) -> None:
    await runtime.relay.answer(question("first", "E1"), RecordingSurface())
    stored = await runtime.store.get_conversation(THREAD)
    assert stored is not None and stored.conversation_id

    await runtime.relay.answer(question("second", "E2"), RecordingSurface())

    assert sent_conversation_ids(mock) == [None, stored.conversation_id]


async def test_conversation_survives_restart(mock: MockBackend, tmp_path: Path) -> None:
    settings = make_settings(mock, tmp_path, "wonderchat")
    async with open_runtime(settings) as rt:
        await rt.relay.answer(question("first", "E1"), RecordingSurface())
        stored = await rt.store.get_conversation(THREAD)
    assert stored is not None and stored.conversation_id
    surface = RecordingSurface()
    async with open_runtime(settings) as rt:
        await rt.relay.answer(question("second", "E2"), surface)

    assert sent_conversation_ids(mock) == [None, stored.conversation_id]
    assert "turn 2 of this conversation" in surface.text  # the backend continued it


async def test_a_conversation_the_backend_forgot_starts_over_and_says_so(
    runtime: Runtime, mock: MockBackend
) -> None:
    await runtime.relay.answer(question("first", "E1"), RecordingSurface())
    old = await runtime.store.get_conversation(THREAD)
    assert old is not None
    mock.forget_conversations()  # expired at the backend

    surface = RecordingSurface()
    assert await runtime.relay.answer(question("second", "E2"), surface) is Outcome.DONE
    new = await runtime.store.get_conversation(THREAD)
    await runtime.relay.answer(question("third", "E3"), RecordingSurface())

    assert surface.text.startswith(CONVERSATION_LOST_NOTICE)
    assert "turn 1 of this conversation" in surface.text
    assert new is not None and new.conversation_id != old.conversation_id
    # refused with the old id, asked again without, then continued with the new one
    assert sent_conversation_ids(mock) == [None, old.conversation_id, None, new.conversation_id]


async def test_duplicate_event_is_answered_once(runtime: Runtime, mock: MockBackend) -> None:
    surfaces = [RecordingSurface(), RecordingSurface()]
    outcomes = await asyncio.gather(
        *(runtime.relay.answer(question("hello", "SAME"), s) for s in surfaces)
    )
    assert sorted(outcomes) == sorted([Outcome.DONE, Outcome.DUPLICATE])
    assert len(mock.requests) == 1
    assert sum(1 for s in surfaces if s.calls) == 1


async def test_two_questions_in_one_thread_run_in_order(
    runtime: Runtime, mock: MockBackend
) -> None:
    first = runtime.relay.submit(question("first", "E1"), RecordingSurface())
    await wait_until(lambda: mock.requests)  # the first is with the backend
    second_surface = RecordingSurface()
    second = runtime.relay.submit(question("second", "E2"), second_surface)
    assert await first is Outcome.DONE
    assert await second is Outcome.DONE
    assert sent_questions(mock) == ["first", "second"]
    ids = sent_conversation_ids(mock)
    assert ids[0] is None and ids[1] is not None  # the second waited for the first's id
    assert "previous answer" in second_surface.calls[0][2].lower()


async def test_other_threads_run_concurrently(runtime: Runtime, mock: MockBackend) -> None:
    other = ThreadKey(platform="slack", workspace="T1", channel="C1", thread="other")
    stalled = runtime.relay.submit(question("stuck [mock:stall]", "E1"), RecordingSurface())
    await wait_until(lambda: mock.requests)  # the stalled answer holds its thread
    outcome = await asyncio.wait_for(
        runtime.relay.answer(question("quick", "E2", thread=other), RecordingSurface()), 10
    )
    assert outcome is Outcome.DONE
    stalled.cancel()
    await asyncio.gather(stalled, return_exceptions=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("   ", "ask me a question"), ("x" * 5000, "limit is 4,000")],
)
async def test_refusals_are_visible_and_do_not_reach_the_backend(
    runtime: Runtime, mock: MockBackend, text: str, expected: str
) -> None:
    surface = RecordingSurface()
    assert await runtime.relay.answer(question(text, "E1"), surface) is Outcome.REFUSED
    assert expected in surface.text.lower()
    assert mock.requests == []


async def test_per_user_rate_limit(mock: MockBackend, tmp_path: Path) -> None:
    settings = make_settings(mock, tmp_path, "wonderchat", bridge_user_rate_per_minute=1)
    async with open_runtime(settings) as rt:
        assert await rt.relay.answer(question("one", "E1"), RecordingSurface()) is Outcome.DONE
        surface = RecordingSurface()
        assert await rt.relay.answer(question("two", "E2"), surface) is Outcome.REFUSED
        assert "faster than i can answer" in surface.text.lower()
        other_user = question("three", "E3", user="U2")
        assert await rt.relay.answer(other_user, RecordingSurface()) is Outcome.DONE


async def test_allow_lists(mock: MockBackend, tmp_path: Path) -> None:
    settings = make_settings(
        mock, tmp_path, "wonderchat", bridge_allowed_channels=frozenset({"C-OK"})
    )
    async with open_runtime(settings) as rt:
        surface = RecordingSurface()
        assert await rt.relay.answer(question("hi", "E1"), surface) is Outcome.REFUSED
        assert "not enabled here" in surface.text
        allowed = ThreadKey(platform="slack", workspace="T1", channel="C-OK", thread="t")
        ok = await rt.relay.answer(question("hi", "E2", thread=allowed), RecordingSurface())
        assert ok is Outcome.DONE


async def test_backend_failure_is_shown_with_partial_text(
    runtime: Runtime, mock: MockBackend
) -> None:
    surface = RecordingSurface()
    outcome = await runtime.relay.answer(question("break [mock:premature-close]", "E1"), surface)
    assert outcome is Outcome.ERROR
    assert "⚠️" in surface.text
    turn = await runtime.store.get_turn("slack", "E1")
    assert turn is not None and turn.status == TurnStatus.ERROR and turn.error


async def test_credentials_rejected_is_a_clear_message(runtime: Runtime, mock: MockBackend) -> None:
    surface = RecordingSurface()
    assert await runtime.relay.answer(question("[mock:401]", "E1"), surface) is Outcome.ERROR
    assert "credentials" in surface.text


async def test_backend_pings_are_neutralized(runtime: Runtime, mock: MockBackend) -> None:
    surface = RecordingSurface()
    await runtime.relay.answer(question("[mock:hostile-sources]", "E1"), surface)
    assert "@everyone" not in surface.text
    assert "javascript:" not in surface.text


async def test_drain_interrupts_what_does_not_finish(runtime: Runtime, mock: MockBackend) -> None:
    surface = RecordingSurface()
    task = runtime.relay.submit(question("[mock:stall]", "E1"), surface)
    await wait_until(lambda: mock.requests)
    await runtime.relay.drain(0.1)
    assert task.done()
    assert "interrupted" in surface.text
    turn = await runtime.store.get_turn("slack", "E1")
    assert turn is not None and turn.status == TurnStatus.INTERRUPTED
    late = RecordingSurface()
    assert await runtime.relay.answer(question("late", "E2"), late) is Outcome.REFUSED
    assert "restarting" in late.text


async def test_drain_lets_answers_in_flight_finish(runtime: Runtime, mock: MockBackend) -> None:
    task = runtime.relay.submit(question("normal", "E1"), RecordingSurface())
    await asyncio.sleep(0)
    await runtime.relay.drain(10)
    assert task.result() is Outcome.DONE


async def test_crash_recovery_marks_and_edits_stale_turns(
    mock: MockBackend, tmp_path: Path
) -> None:
    settings = make_settings(mock, tmp_path, "wonderchat")
    store = await open_store(settings.database_url)
    stale = question("lost in a crash", "E-STALE")
    await store.claim_turn(stale, backend="wonderchat")
    await store.update_turn(
        "slack",
        "E-STALE",
        status=TurnStatus.STREAMING,
        reply_channel="C1",
        reply_message_ids=["111.1", "111.2"],
    )
    await store.close()

    async with open_runtime(settings) as rt:
        editor = RecordingEditor()
        assert await rt.relay.recover() == 0  # no Slack here yet: left for one that has it
        rt.relay.register_editor("slack", editor)
        assert await rt.relay.recover() == 1
        assert editor.edits == [("C1", "111.2", INTERRUPTED_NOTICE)]
        turn = await rt.store.get_turn("slack", "E-STALE")
        assert turn is not None and turn.status == TurnStatus.INTERRUPTED
        assert await rt.relay.recover() == 0


async def test_concurrency_cap_shows_a_queued_state(mock: MockBackend, tmp_path: Path) -> None:
    settings = make_settings(mock, tmp_path, "wonderchat", bridge_max_concurrency=1)
    other = ThreadKey(platform="slack", workspace="T1", channel="C1", thread="other")
    async with open_runtime(settings) as rt:
        busy = rt.relay.submit(question("[mock:stall]", "E1"), RecordingSurface())
        await wait_until(lambda: mock.requests)  # the only slot is taken
        waiting = RecordingSurface()
        queued = rt.relay.submit(question("me next", "E2", thread=other), waiting)
        await wait_until(lambda: waiting.calls)
        assert "queued" in waiting.text.lower()
        assert not queued.done() and len(mock.requests) == 1
        busy.cancel()
        assert await queued is Outcome.DONE
        assert "queued" not in waiting.text.lower()


class VanishingSurface(RecordingSurface):
    """A reply whose channel is deleted after the placeholder was posted."""

    async def edit(
        self, message_id: str, text: str, *, kind: EditKind, draft: Draft | None = None
    ) -> None:
        raise PlatformError("the channel no longer exists")


async def test_a_reply_the_platform_refuses_is_recorded_as_an_error(runtime: Runtime) -> None:
    outcome = await runtime.relay.answer(question("hello", "E1"), VanishingSurface())
    assert outcome is Outcome.ERROR
    turn = await runtime.store.get_turn("slack", "E1")
    assert turn is not None and turn.status == TurnStatus.ERROR
    assert turn.error is not None and "no longer exists" in turn.error


async def test_a_redelivered_reset_forgets_nothing(runtime: Runtime) -> None:
    await runtime.relay.answer(question("first", "E1"), RecordingSurface())
    assert await runtime.relay.reset(THREAD, event_id="R1", user_id="U1")
    await runtime.relay.answer(question("second", "E2"), RecordingSurface())

    assert not await runtime.relay.reset(THREAD, event_id="R1", user_id="U1")
    assert await runtime.relay.knows_thread(THREAD)  # the new conversation survives


@contextlib.asynccontextmanager
async def bridge_process(
    database_url: str, mock: MockBackend, tmp_path: Path, **timing: float
) -> AsyncIterator[tuple[Relay, Store]]:
    """One more bridge process on a shared database: its own store, backend client and
    relay, with a shortened liveness interval."""
    settings = make_settings(mock, tmp_path, "wonderchat", database_url=database_url)
    store = await open_store(database_url)
    try:
        async with aiohttp.ClientSession() as session:
            backend = build_backend(settings, session)
            relay = Relay(store=store, backend=backend, settings=settings, **timing)
            await relay.start()
            try:
                yield relay, store
            finally:
                await relay.drain(0)
                await relay.close()
    finally:
        await store.close()


async def test_processes_on_one_database_recover_only_the_turns_of_a_process_that_is_gone(
    database_url: str, mock: MockBackend, tmp_path: Path
) -> None:
    async with (
        bridge_process(database_url, mock, tmp_path, liveness_interval=0.05) as (a, a_store),
        bridge_process(database_url, mock, tmp_path, liveness_interval=0.05) as (b, b_store),
    ):
        editor = RecordingEditor()
        b.register_editor("slack", editor)
        surface = RecordingSurface()
        a.submit(question("[mock:stall]", "E-A"), surface)
        turn = await wait_for_turn(a_store, "E-A", TurnStatus.STREAMING)
        assert turn.owner == a.instance_id

        assert await b.recover() == 0  # A is alive: its answer is left alone
        assert await b_store.live_owners([a.instance_id]) == {a.instance_id}
        assert editor.edits == []

        await a_store.close()  # A loses its database, as when its dyno dies: its lock ends
        turn = await wait_for_turn(b_store, "E-A", TurnStatus.INTERRUPTED, within=10)
        assert turn.error == "interrupted by a restart"
        assert editor.edits == [("memory", turn.reply_message_ids[-1], INTERRUPTED_NOTICE)]
        assert await b.recover() == 0  # recovered once, edited once


async def wait_for_turn(
    store: Store, event_id: str, status: TurnStatus, *, within: float = 5.0
) -> Turn:
    """The turn once it reaches `status` (polled; fails after `within` seconds)."""
    async with asyncio.timeout(within):
        while True:
            turn = await store.get_turn("slack", event_id)
            if turn is not None and turn.status is status:
                return turn
            await asyncio.sleep(0.02)


def test_rate_limiter_forgets_idle_users() -> None:
    now = [0.0]
    limiter = RateLimiter(per_window=2, clock=lambda: now[0])
    for user in range(PRUNE_MIN_USERS - 1):
        assert limiter.allow("slack", f"U{user}")
    now[0] = RATE_WINDOW_SECONDS + 1
    assert limiter.allow("slack", "U-new")
    assert limiter.tracked_users == 1  # only the active user is remembered
    assert limiter.allow("slack", "U-new") and not limiter.allow("slack", "U-new")


class GatedSurface(RecordingSurface):
    """Edits hang once a second message exists, until `release` is set: the answer is
    held mid-stream with two parts posted."""

    def __init__(self) -> None:
        super().__init__(limits=SurfaceLimits(max_message_chars=300, min_edit_interval=0.01))
        self.release = asyncio.Event()

    async def edit(
        self, message_id: str, text: str, *, kind: EditKind, draft: Draft | None = None
    ) -> None:
        if len(self.messages) >= 2:
            await self.release.wait()
        await super().edit(message_id, text, kind=kind, draft=draft)


async def test_reply_parts_are_recorded_as_they_are_posted(runtime: Runtime) -> None:
    surface = GatedSurface()
    task = runtime.relay.submit(question("[mock:long]", "E1"), surface)
    await wait_until(lambda: len(surface.messages) >= 2)
    async with asyncio.timeout(10):
        while True:
            turn = await runtime.store.get_turn("slack", "E1")
            assert turn is not None
            if len(turn.reply_message_ids) >= 2:
                break
            await asyncio.sleep(0.01)
    assert not task.done() and turn.status == TurnStatus.STREAMING
    assert turn.reply_message_ids[:2] == ("m1", "m2")
    surface.release.set()
    assert await task is Outcome.DONE


async def test_drain_waits_for_questions_that_arrive_while_draining(
    runtime: Runtime, mock: MockBackend
) -> None:
    stalled = runtime.relay.submit(question("[mock:stall]", "E1"), RecordingSurface())
    await wait_until(lambda: mock.requests)
    draining = asyncio.create_task(runtime.relay.drain(0.5))
    await asyncio.sleep(0)
    late = runtime.relay.submit(question("hello?", "E2"), SlowSurface())
    await draining
    assert stalled.done()
    assert late.done()  # not left running after the platforms and store close


class SlowSurface(RecordingSurface):
    """A platform slower than the drain window."""

    async def post(self, text: str, *, kind: EditKind, draft: Draft | None = None) -> str:
        await asyncio.sleep(5)
        return await super().post(text, kind=kind, draft=draft)


async def test_an_unavailable_database_is_said_in_chat(runtime: Runtime) -> None:
    await runtime.store.close()
    surface = RecordingSurface()
    assert await runtime.relay.answer(question("hello", "E1"), surface) is Outcome.ERROR
    assert "database is unavailable" in surface.text
