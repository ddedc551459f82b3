"""ReplyRenderer on an in-memory surface, driven by a fake clock (no real waiting)."""

from __future__ import annotations

import asyncio

import pytest

from bridge.backends.events import Source
from bridge.errors import PlatformError, PlatformRateLimited
from bridge.render import (
    INTERRUPTED_NOTICE,
    ReplyRenderer,
    split_message,
    status_line,
)
from bridge.safety import markdown_sources_block, neutralize_discord, safe_sources
from bridge.surface import Draft, EditKind, SurfaceLimits
from bridge.testing.clock import FakeClock, settle
from bridge.testing.recording_surface import ScriptedSurface

GUARD = 10.0  # seconds: only a hang would reach it; never a speed assertion


def make(
    limit: int = 2000, interval: float = 1.0, marker: str = " ▌"
) -> tuple[FakeClock, ScriptedSurface, ReplyRenderer]:
    clock = FakeClock()
    surface = ScriptedSurface(
        limits=SurfaceLimits(limit, min_edit_interval=interval, streaming_marker=marker),
        clock=clock,
    )
    return clock, surface, ReplyRenderer(surface, clock=clock, sleep=clock.sleep)


async def stream(
    chunks: list[str], duration: float, **kwargs: float
) -> tuple[ScriptedSurface, ReplyRenderer]:
    clock, surface, renderer = make(**kwargs)
    await renderer.start()
    for number, chunk in enumerate(chunks, start=1):
        await clock.advance_to(number * duration / len(chunks))
        await renderer.append(chunk)
    await asyncio.wait_for(renderer.finish("".join(chunks), []), GUARD)
    return surface, renderer


async def test_placeholder_is_posted_at_once_and_shows_status() -> None:
    clock, surface, renderer = make()
    await renderer.start()
    assert surface.calls == [("post", "m1", "_Thinking…_")]
    await renderer.status("Searching @everyone docs")
    await clock.advance(1.0)
    assert surface.messages["m1"] == "_Searching @\u200beveryone docs_"
    await renderer.append("Hello")
    await clock.advance(1.0)
    await renderer.status("ignored once text flows")
    await clock.advance(1.0)
    assert surface.messages["m1"] == "Hello ▌"


async def test_many_small_deltas_cost_as_many_calls_as_few_big_ones() -> None:
    text = "lorem ipsum " * 450
    few = [text[i : i + 108] for i in range(0, len(text), 108)]
    many = [*text[:4999], text[4999:]]
    assert (len(few), len(many)) == (50, 5000)
    surface_few, _ = await stream(few, duration=10.0)
    surface_many, _ = await stream(many, duration=10.0)
    assert surface_few.messages == surface_many.messages
    assert len(surface_few.calls) == len(surface_many.calls)
    # One call per interval while streaming (+ placeholder, + final edit, + part posts).
    assert 10 <= len(surface_many.calls) <= 16


async def test_final_edit_does_not_wait_for_the_interval() -> None:
    clock, surface, renderer = make(interval=1000.0)
    await renderer.start()
    await renderer.append("partial")
    await clock.advance(0.5)
    assert surface.messages["m1"] == "partial ▌"  # the first words replace the placeholder
    await renderer.append(" and more")
    await clock.advance(0.5)
    assert surface.messages["m1"] == "partial ▌"  # later text is throttled
    await asyncio.wait_for(renderer.finish("partial and final", []), GUARD)
    assert clock.now == 1.0
    assert surface.messages == {"m1": "partial and final"}
    assert surface.closed


async def test_final_edit_waits_for_the_edit_in_flight() -> None:
    clock, surface, renderer = make()
    gate = asyncio.Event()
    plain_edit = surface.edit

    async def slow_edit(
        message_id: str, text: str, *, kind: EditKind, draft: Draft | None = None
    ) -> None:
        if not gate.is_set():
            await gate.wait()
        await plain_edit(message_id, text, kind=kind, draft=draft)

    surface.edit = slow_edit  # type: ignore[method-assign]
    await renderer.start()
    await renderer.append("first")
    await clock.advance(1.0)  # the flusher is now stuck inside edit
    finishing = asyncio.create_task(renderer.finish("first, then final", []))
    await settle()
    assert not finishing.done()
    gate.set()
    await asyncio.wait_for(finishing, GUARD)
    edits = [text for kind, _, text in surface.calls if kind == "edit"]
    assert edits == ["first ▌", "first, then final"]


async def test_rate_limit_waits_slows_down_and_keeps_the_final_text() -> None:
    clock, surface, renderer = make()
    await renderer.start()
    surface.failures.append(PlatformRateLimited(5.0, "discord"))
    await renderer.append("one ")
    await clock.advance(1.0)  # edit at t=1 → 429
    assert renderer.edit_interval == 5.0
    for word in ["two ", "three ", "four "]:
        await renderer.append(word)
        await clock.advance(1.0)
    assert surface.messages["m1"] == "_Thinking…_"  # nothing before Retry-After ran out
    await clock.advance(3.0)  # t=7: retried with the latest text
    assert surface.messages["m1"] == "one two three four  ▌"
    assert surface.times[-1] >= 6.0
    surface.failures.append(PlatformRateLimited(2.0, "discord"))
    finishing = asyncio.create_task(renderer.finish("one two three four five", []))
    await settle()
    assert surface.messages["m1"] == "one two three four  ▌"  # its own 429: waiting
    await clock.advance(2.0)
    await asyncio.wait_for(finishing, GUARD)
    assert surface.messages["m1"] == "one two three four five"
    assert renderer.edit_interval == 10.0


async def test_platform_error_stops_edits_without_raising() -> None:
    clock, surface, renderer = make()
    await renderer.start()
    surface.failures.append(PlatformError("channel deleted"))
    await renderer.append("text")
    await clock.advance(1.0)
    await renderer.append(" more")
    await clock.advance(5.0)
    await asyncio.wait_for(renderer.finish("text more", []), GUARD)
    assert isinstance(renderer.platform_error, PlatformError)
    assert [kind for kind, _, _ in surface.calls] == ["post"]
    assert surface.closed


async def test_failure_shows_partial_text_and_a_warning() -> None:
    clock, surface, renderer = make()
    await renderer.start()
    await renderer.append("The first half")
    await clock.advance(1.0)
    await renderer.fail("the backend timed out")
    assert surface.messages["m1"] == (
        "The first half\n\n⚠️ The answer could not be completed: the backend timed out"
    )
    _, bare_surface, bare = make()
    await bare.start()
    await bare.fail("nope", partial_text="")
    assert bare_surface.messages["m1"] == "⚠️ The answer could not be completed: nope"
    _, cut_surface, cut = make()
    await cut.start()
    await cut.interrupt("half")
    assert cut_surface.messages["m1"] == f"half\n\n{INTERRUPTED_NOTICE}"


async def test_sources_are_filtered_and_appended_and_pings_neutralized() -> None:
    clock, surface, renderer = make()
    await renderer.start()
    await renderer.append("Ask @everyone and <@&42>")
    await clock.advance(1.0)
    assert "@everyone" not in surface.messages["m1"]
    sources = [
        Source("https://docs.example.com/a", "Guide"),
        Source("javascript:alert(1)", "evil"),
        Source("https://docs.example.com/a#top", "dup"),
        Source("https://example.org/b"),
    ]
    await renderer.finish("Ask @everyone and <@&42>", sources)
    assert surface.messages["m1"] == (
        "Ask @\u200beveryone and <@\u200b&42>"
        "\n\n**Sources**\n1. [Guide](<https://docs.example.com/a>)\n2. [example.org](<https://example.org/b>)"
    )


async def test_long_answer_streams_into_stable_follow_up_messages() -> None:
    paragraphs = [
        f"Paragraph {n}: " + "words of the answer " * 8
        if n % 3
        else "```python\n" + "\n".join(f"value_{n}_{i} = {i}" for i in range(12)) + "\n```"
        for n in range(30)
    ]
    text = "\n\n".join(paragraphs)
    sources = [Source("https://example.com/doc", "Doc")]
    posted: list[str] = []
    clock, surface, renderer = make(limit=500)
    renderer = ReplyRenderer(surface, clock=clock, sleep=clock.sleep, on_message=posted.append)
    await renderer.start()
    for i in range(0, len(text), 7):
        await renderer.append(text[i : i + 7])
        await clock.advance(0.05)
    await renderer.finish(text, sources)

    final = neutralize_discord(text) + markdown_sources_block(safe_sources(sources))
    expected = split_message(final, 500)
    assert len(expected) > 5
    assert list(surface.messages.values()) == expected
    assert posted == renderer.message_ids == list(surface.messages)
    assert all(len(text) <= 500 for _, _, text in surface.calls)
    # Once a follow-up exists, the message before it is sealed: never edited again.
    for index, message_id in enumerate(renderer.message_ids[:-1]):
        next_post = surface.calls.index(("post", renderer.message_ids[index + 1], ANY))
        assert all(call[1] != message_id for call in surface.calls[next_post:])


class _Any:
    def __eq__(self, other: object) -> bool:
        return True


ANY = _Any()


async def test_a_second_ending_and_late_deltas_are_ignored() -> None:
    _, surface, renderer = make()
    await renderer.start()
    await renderer.finish("done", [])
    await renderer.append("late")
    await renderer.fail("late failure")
    assert surface.messages == {"m1": "done"}


async def test_empty_final_answer_says_so() -> None:
    _, surface, renderer = make()
    await renderer.start()
    await renderer.finish("   ", [])
    assert surface.messages["m1"] == "_The assistant returned an empty answer._"


@pytest.mark.parametrize("marker", ["", " ▌"])
async def test_marker_is_removed_by_final_edit(marker: str) -> None:
    clock, surface, renderer = make(marker=marker)
    await renderer.start()
    await renderer.append("abc")
    await clock.advance(1.0)
    assert surface.messages["m1"] == "abc" + marker
    await renderer.finish("abc", [])
    assert surface.messages["m1"] == "abc"


def test_status_lines_fold_onto_one_italic_line() -> None:
    assert status_line("Reading\n\nthe docs") == "_Reading the docs_"


async def test_every_call_says_what_it_is() -> None:
    """Surfaces pace by kind, never by text: an answer that looks like a status line
    (`_No._`) is still first words and then the final."""
    clock, surface, renderer = make(interval=1.0)
    await renderer.start()
    await renderer.status("Searching the docs")
    await clock.advance(1.0)
    await renderer.append("_No._")
    await clock.advance(1.0)
    await renderer.append(" Never.")
    await clock.advance(1.0)
    await renderer.finish("_No._")
    assert surface.kinds == [
        EditKind.STATUS,
        EditKind.STATUS,
        EditKind.FIRST_WORDS,
        EditKind.PROGRESS,
        EditKind.FINAL,
    ]


async def test_endings_with_a_warning_are_notices() -> None:
    _, surface, renderer = make()
    await renderer.start()
    await renderer.fail("the backend timed out")
    assert surface.kinds == [EditKind.STATUS, EditKind.NOTICE]


async def test_an_ending_cancelled_mid_call_can_still_be_drawn() -> None:
    """Shutdown cancels an answer while its final edit hangs: the interruption notice
    must still replace the streamed text (and its marker)."""
    clock, surface, renderer = make()
    await renderer.start()
    await renderer.append("partial answer")
    await clock.advance(0.1)
    entered = asyncio.Event()
    plain_edit = surface.edit

    async def hanging_edit(
        message_id: str, text: str, *, kind: EditKind, draft: Draft | None = None
    ) -> None:
        surface.edit = plain_edit  # type: ignore[method-assign]  # only the final edit hangs
        entered.set()
        await asyncio.Event().wait()

    surface.edit = hanging_edit  # type: ignore[method-assign]
    final = asyncio.create_task(renderer.finish("partial answer and the rest", []))
    await asyncio.wait_for(entered.wait(), GUARD)
    final.cancel()
    await asyncio.gather(final, return_exceptions=True)
    await asyncio.wait_for(renderer.interrupt(), GUARD)
    assert surface.messages["m1"] == f"partial answer\n\n{INTERRUPTED_NOTICE}"
    await renderer.fail("a second ending is ignored")
    assert surface.messages["m1"] == f"partial answer\n\n{INTERRUPTED_NOTICE}"


async def test_a_final_text_lost_to_rate_limits_is_reported() -> None:
    clock, surface, renderer = make()
    await renderer.start()
    surface.failures = [PlatformRateLimited(1.0, "test") for _ in range(10)]
    finishing = asyncio.create_task(renderer.finish("never shown", []))
    for _ in range(20):
        await clock.advance(1.0)
    await asyncio.wait_for(finishing, GUARD)
    assert renderer.platform_error is not None
    assert "never shown" not in surface.text


async def test_a_progress_edit_in_flight_cannot_land_after_the_interruption() -> None:
    _clock, surface, renderer = make()
    await renderer.start()
    entered = asyncio.Event()
    release = asyncio.Event()
    plain_edit = surface.edit

    async def slow_edit(
        message_id: str, text: str, *, kind: EditKind, draft: Draft | None = None
    ) -> None:
        if "▌" in text:  # the flusher's progress edit: held until released
            entered.set()
            await release.wait()
        await plain_edit(message_id, text, kind=kind, draft=draft)

    surface.edit = slow_edit  # type: ignore[method-assign]
    await renderer.append("partial answer")
    await asyncio.wait_for(entered.wait(), GUARD)  # progress edit in flight
    final = asyncio.create_task(renderer.finish("partial answer, done", []))
    await settle()
    final.cancel()  # shutdown cancels the answer while the final waits for the flusher
    await asyncio.gather(final, return_exceptions=True)
    await asyncio.wait_for(renderer.interrupt(), GUARD)
    release.set()
    await settle()
    assert surface.messages["m1"] == f"partial answer\n\n{INTERRUPTED_NOTICE}"


async def test_a_saturated_loop_stretches_progress_edits_but_not_first_words_or_final() -> None:
    clock = FakeClock()
    surface = ScriptedSurface(limits=SurfaceLimits(2000, min_edit_interval=1.0), clock=clock)
    stretch = 1.0
    renderer = ReplyRenderer(
        surface, clock=clock, sleep=clock.sleep, progress_stretch=lambda: stretch
    )
    await renderer.start()
    stretch = 3.0  # bridge.load says the loop is saturated
    await renderer.append("first")
    await settle()
    assert surface.times == [0.0, 0.0]  # placeholder, then the first words at once
    for step in range(1, 10):
        await renderer.append(f" {step}")
        await clock.advance(1.0)
    assert surface.times == [0.0, 0.0, 3.0, 6.0, 9.0]  # progress: every 3 s, not every 1 s
    stretch = 1.0
    await renderer.append(" calm again")
    await clock.advance(1.0)
    assert surface.times[-1] == 10.0  # 1 s after the last edit once the loop is calm
    await renderer.append(" end")
    await asyncio.wait_for(renderer.finish("the end", []), GUARD)
    assert surface.times[-1] == clock.now  # the final never waits
    assert surface.messages == {"m1": "the end"}
