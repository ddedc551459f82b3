"""Slack reply surfaces against the fake Slack, over real HTTP with slack_sdk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bridge.backends.events import Source
from bridge.errors import PlatformError, PlatformRateLimited
from bridge.metrics import PLATFORM_RATE_LIMITED
from bridge.pacing import Priority, priority_of
from bridge.slack.api import SlackApi
from bridge.slack.budget import SlackRates, WorkspaceBudgets
from bridge.slack.surface import (
    NativeStreaming,
    ReplyTarget,
    StreamSurface,
    UpdateSurface,
    build_surface,
    slack_sources_block,
)
from bridge.surface import EditKind
from bridge.testing.fake_slack import FakeSlack

THREAD = ReplyTarget(team_id="T0FAKE", channel="C1", thread_ts="100.1", user_id="U1")
DM_THREAD = ReplyTarget(team_id="T0FAKE", channel="D1", thread_ts="200.1", user_id="U1")
# Stream starts and stops refill at once, so a 429's pause is the only wait.
QUICK_EDGES = SlackRates(stream_edge_per_minute=6000, stream_edge_burst=20)
STATUS, FIRST_WORDS, PROGRESS = EditKind.STATUS, EditKind.FIRST_WORDS, EditKind.PROGRESS
FINAL, NOTICE = EditKind.FINAL, EditKind.NOTICE


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
def api(slack: FakeSlack) -> SlackApi:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    return SlackApi(client, WorkspaceBudgets())


def stream_surface(
    api: SlackApi, native: NativeStreaming | None = None, target: ReplyTarget = THREAD
) -> StreamSurface:
    return StreamSurface(api, target, edit_interval=0.05, native=native or NativeStreaming("auto"))


def budgeted_api(slack: FakeSlack, rates: SlackRates) -> SlackApi:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    return SlackApi(client, WorkspaceBudgets(rates))


async def test_update_surface_posts_markdown_without_unfurls_and_edits(
    slack: FakeSlack, api: SlackApi
) -> None:
    surface = UpdateSurface(api, THREAD, edit_interval=0.05)
    ts = await surface.post("_Thinking…_", kind=STATUS)
    await surface.edit(ts, "**Bold** answer", kind=FINAL)
    await surface.close()

    message = slack.messages[ts]
    assert (message.channel, message.thread_ts, message.text) == ("C1", "100.1", "**Bold** answer")
    assert message.history == ["_Thinking…_", "**Bold** answer"]
    post = slack.calls_to("chat.postMessage")[0].params
    assert post["unfurl_links"] is False and post["unfurl_media"] is False
    assert post["blocks"] == [{"type": "markdown", "text": "_Thinking…_"}]
    assert post["text"] == "_Thinking…_"
    assert surface.limits.max_message_chars == 12_000
    assert surface.limits.streaming_marker  # the renderer shows progress itself


async def test_stream_surface_holds_the_placeholder_and_streams_only_extensions(
    slack: FakeSlack, api: SlackApi
) -> None:
    surface = stream_surface(api)
    marker = surface.limits.streaming_marker
    ts = await surface.post("_Thinking…_", kind=STATUS)
    await surface.edit(ts, "_Searching…_", kind=STATUS)  # status replaces status: nothing shown
    await surface.edit(
        ts, "Hello world" + marker, kind=FIRST_WORDS
    )  # the first answer text streams at once
    await surface.edit(ts, "Hello world, and more." + marker, kind=PROGRESS)
    await surface.edit(ts, "Hello world, and more.", kind=FINAL)  # the final edit: nothing new
    await surface.close()

    start = slack.calls_to("chat.startStream")[0].params
    assert start["thread_ts"] == "100.1"
    assert (start["recipient_team_id"], start["recipient_user_id"]) == ("T0FAKE", "U1")
    assert "markdown_text" not in start
    appended = [c.params["markdown_text"] for c in slack.calls_to("chat.appendStream")]
    assert appended == ["Hello world", ", and more."]
    message = slack.messages[ts]
    assert not message.streaming
    assert message.text == "Hello world, and more."
    assert "_Thinking…_" not in "".join(message.history)
    assert marker.strip() not in "".join(message.history)  # Slack shows its own progress
    assert not slack.calls_to("chat.update")


async def test_rewriting_streamed_text_stops_the_stream_and_updates(
    slack: FakeSlack, api: SlackApi
) -> None:
    surface = stream_surface(api)
    ts = await surface.post("", kind=STATUS)
    await surface.edit(ts, "Draft text", kind=FIRST_WORDS)
    await surface.edit(ts, "Draft text that grows", kind=PROGRESS)
    await surface.edit(ts, "Authoritative final text", kind=FINAL)  # not an extension
    await surface.edit(ts, "Authoritative final text, edited again", kind=FINAL)
    await surface.close()

    message = slack.messages[ts]
    assert message.text == "Authoritative final text, edited again"
    assert not message.streaming
    assert len(slack.calls_to("chat.update")) == 2


async def test_text_only_posted_is_shown_when_the_surface_closes(
    slack: FakeSlack, api: SlackApi
) -> None:
    surface = stream_surface(api)
    ts = await surface.post("Sorry, I'm not enabled here.", kind=NOTICE)
    assert slack.messages[ts].text == ""
    await surface.close()
    await surface.close()  # idempotent
    assert slack.messages[ts].text == "Sorry, I'm not enabled here."
    assert len(slack.calls_to("chat.stopStream")) == 1


async def test_a_new_part_seals_the_previous_stream(slack: FakeSlack, api: SlackApi) -> None:
    surface = stream_surface(api)
    first = await surface.post("", kind=STATUS)
    await surface.edit(first, "Part one", kind=FIRST_WORDS)
    await surface.edit(first, "Part one, complete.", kind=FINAL)
    second = await surface.post("Part two", kind=FINAL)
    await surface.edit(second, "Part two, complete.", kind=FINAL)
    await surface.close()
    assert slack.messages[first].text == "Part one, complete."
    assert not slack.messages[first].streaming
    assert slack.messages[second].text == "Part two, complete."


async def test_auto_falls_back_to_update_and_remembers_the_workspace(
    slack: FakeSlack, api: SlackApi
) -> None:
    slack.streaming_supported = False
    native = NativeStreaming("auto")
    surface = stream_surface(api, native)
    ts = await surface.post("_Thinking…_", kind=STATUS)
    await surface.edit(ts, "Answer", kind=FINAL)
    await surface.close()
    assert slack.messages[ts].text == "Answer"
    assert len(slack.calls_to("chat.startStream")) == 1

    again = stream_surface(api, native)
    ts2 = await again.post("_Thinking…_", kind=STATUS)
    await again.edit(ts2, "Second answer", kind=FINAL)
    assert slack.messages[ts2].text == "Second answer"
    assert len(slack.calls_to("chat.startStream")) == 1  # not tried again


async def test_streaming_refused_in_channels_is_remembered_for_channels_only(
    slack: FakeSlack, api: SlackApi
) -> None:
    slack.stream_start_error = "channel_type_not_supported"
    native = NativeStreaming("auto")
    for text in ("one", "two"):
        ts = await stream_surface(api, native).post(text, kind=FINAL)
        assert slack.messages[ts].text == text
    assert len(slack.calls_to("chat.startStream")) == 1

    slack.stream_start_error = None
    dm_ts = await stream_surface(api, native, DM_THREAD).post("_Thinking…_", kind=STATUS)
    assert slack.messages[dm_ts].streaming
    assert len(slack.calls_to("chat.startStream")) == 2


async def test_a_refused_stream_start_falls_back_for_that_reply_only(
    slack: FakeSlack, api: SlackApi
) -> None:
    native = NativeStreaming("auto")
    unknown_user = ReplyTarget(team_id="T0FAKE", channel="C1", thread_ts="100.1", user_id="")
    for _ in range(2):
        surface = stream_surface(api, native, unknown_user)
        ts = await surface.post("Answer", kind=FINAL)
        await surface.close()
        assert slack.messages[ts].text == "Answer"
        assert not slack.messages[ts].streaming
    # Not a "streaming unavailable" answer: tried again, not remembered.
    assert slack.refused == [("chat.startStream", "missing_recipient_user_id")] * 2


async def test_when_stream_starts_run_out_replies_use_updates(slack: FakeSlack) -> None:
    api = budgeted_api(slack, SlackRates(stream_edge_per_minute=1, stream_edge_burst=1))
    streamed = await stream_surface(api).post("one", kind=STATUS)
    surface = stream_surface(api)
    posted = await surface.post("two", kind=STATUS)
    await surface.edit(posted, "two, edited", kind=FINAL)
    assert slack.messages[streamed].streaming
    assert not slack.messages[posted].streaming
    assert slack.messages[posted].text == "two, edited"
    assert len(slack.calls_to("chat.startStream")) == 1


async def test_a_rate_limited_stop_is_retried_after_retry_after(slack: FakeSlack) -> None:
    surface = stream_surface(budgeted_api(slack, QUICK_EDGES))
    ts = await surface.post("", kind=STATUS)
    await surface.edit(ts, "Final answer", kind=FINAL)
    slack.rate_limit("chat.stopStream", nth=1, retry_after=0.2)
    await surface.close()

    first, second = (call.at for call in slack.calls_to("chat.stopStream"))
    assert second - first >= 0.2
    assert slack.messages[ts].text == "Final answer"
    assert not slack.messages[ts].streaming
    assert not slack.calls_to("chat.update")


async def test_a_rewrite_waits_out_a_rate_limited_stop_before_updating(
    slack: FakeSlack,
) -> None:
    surface = stream_surface(budgeted_api(slack, QUICK_EDGES))
    ts = await surface.post("", kind=STATUS)
    await surface.edit(ts, "Draft", kind=FIRST_WORDS)
    slack.rate_limit("chat.stopStream", nth=1, retry_after=0.2)
    await surface.edit(ts, "Rewritten", kind=FINAL)
    await surface.close()

    assert slack.messages[ts].text == "Rewritten"
    assert not slack.messages[ts].streaming
    assert ("chat.update", "streaming_state_conflict") not in slack.refused


async def test_native_mode_keeps_trying_each_answer(slack: FakeSlack, api: SlackApi) -> None:
    slack.streaming_supported = False
    native = NativeStreaming("native")
    for _ in range(2):
        surface = stream_surface(api, native)
        ts = await surface.post("x", kind=STATUS)
        assert slack.messages[ts].text == "x"
    assert len(slack.calls_to("chat.startStream")) == 2


def test_update_mode_and_top_level_dms_never_stream(api: SlackApi) -> None:
    top_level = ReplyTarget(team_id="T", channel="D1", thread_ts=None, user_id="U1")
    auto = NativeStreaming("auto")
    assert type(build_surface(api, top_level, edit_interval=1, native=auto)) is UpdateSurface
    update = NativeStreaming("update")
    assert type(build_surface(api, THREAD, edit_interval=1, native=update)) is UpdateSurface
    assert type(build_surface(api, THREAD, edit_interval=1, native=auto)) is StreamSurface


async def test_429_becomes_platform_rate_limited(slack: FakeSlack, api: SlackApi) -> None:
    surface = UpdateSurface(api, THREAD, edit_interval=0.05)
    ts = await surface.post("one", kind=STATUS)
    slack.rate_limit("chat.update", nth=1, retry_after=3)
    before = PLATFORM_RATE_LIMITED.labels(platform="slack")._value.get()
    with pytest.raises(PlatformRateLimited) as caught:
        await surface.edit(ts, "two", kind=FINAL)
    assert caught.value.retry_after == 3.0
    assert PLATFORM_RATE_LIMITED.labels(platform="slack")._value.get() == before + 1
    assert slack.messages[ts].text == "one"


async def test_refusals_become_platform_errors(slack: FakeSlack, api: SlackApi) -> None:
    surface = UpdateSurface(api, THREAD, edit_interval=0.05)
    with pytest.raises(PlatformError, match="message_not_found"):
        await surface.edit("999.999", "text", kind=FINAL)


def test_sources_are_markdown_links_that_cannot_break_out() -> None:
    block = slack_sources_block(
        [
            Source("https://docs.example.com/a(b)", "Guide [v2]"),
            Source("https://example.com/x", None),
        ]
    )
    assert block.startswith("\n\n**Sources**\n")
    assert "1. [Guide \\[v2\\]](https://docs.example.com/a%28b%29)" in block
    assert "2. [example.com](https://example.com/x)" in block
    assert slack_sources_block([]) == ""


def test_source_titles_cannot_ping() -> None:
    block = slack_sources_block([Source("https://x.example/", "<!channel> @here <@U1>")])
    assert "<!channel>" not in block and "<@U1>" not in block and "@here" not in block


def test_edit_priority_comes_from_the_kind_the_renderer_gives() -> None:
    assert priority_of(EditKind.STATUS) is Priority.PROGRESS
    assert priority_of(EditKind.FIRST_WORDS) is Priority.FIRST_TEXT
    assert priority_of(EditKind.PROGRESS) is Priority.PROGRESS
    assert priority_of(EditKind.FINAL) is Priority.FINAL
    assert priority_of(EditKind.NOTICE) is Priority.FINAL


async def test_finals_then_first_words_then_progress_share_the_update_budget(
    slack: FakeSlack,
) -> None:
    # One token per 0.3 s and no burst to speak of: the three edits below all wait.
    api = budgeted_api(slack, SlackRates(update_per_minute=200, update_burst=1))
    surface = UpdateSurface(api, THREAD, edit_interval=5.0)
    marker = surface.limits.streaming_marker
    streaming, finishing, waiting = [
        await surface.post(text, kind=STATUS) for text in ("A", "B", "_Q…_")
    ]
    await surface.edit(streaming, "A1" + marker, kind=FIRST_WORDS)  # spends the only token

    await asyncio.gather(
        surface.edit(streaming, "A12" + marker, kind=PROGRESS),
        surface.edit(finishing, "B, final", kind=FINAL),
        surface.edit(waiting, "C" + marker, kind=FIRST_WORDS),
    )
    shown = [call.params["text"] for call in slack.calls_to("chat.update")]
    assert shown == ["A1" + marker, "B, final", "C" + marker, "A12" + marker]


@dataclass
class MovingDraft:
    """A renderer's draft in miniature: text and kind change while the call waits."""

    current: str
    kind: EditKind
    handed: list[str] = field(default_factory=list)

    def text(self) -> str:
        self.handed.append(self.current)
        return self.current


async def test_a_waiting_edit_sends_the_newest_text_and_rises_to_final(
    slack: FakeSlack,
) -> None:
    api = budgeted_api(slack, SlackRates(update_per_minute=120, update_burst=1))
    surface = UpdateSurface(api, THREAD, edit_interval=5.0)  # no ending posted anew
    first, second = await surface.post("one", kind=STATUS), await surface.post("two", kind=STATUS)
    await surface.edit(first, "one, more", kind=FIRST_WORDS)  # spends the only token
    draft = MovingDraft("two, first words", FIRST_WORDS)
    waiting = asyncio.create_task(surface.edit(second, draft.current, kind=draft.kind, draft=draft))
    progress = asyncio.create_task(surface.edit(first, "one, more and more", kind=PROGRESS))
    await asyncio.sleep(0.1)  # both wait for the token due at 0.5 s
    draft.current, draft.kind = "two, the whole answer", FINAL
    await asyncio.gather(waiting, progress)
    assert slack.messages[second].history == ["two", "two, the whole answer"]
    assert draft.handed == ["two, the whole answer"]  # read once, when it went out
    updates = [call.params["ts"] for call in slack.calls_to("chat.update")]
    assert updates == [first, second, first]  # the final overtook the progress edit


async def test_fallback_replies_show_the_marker_and_finals_overtake_progress(
    slack: FakeSlack,
) -> None:
    slack.streaming_supported = False
    api = budgeted_api(slack, SlackRates(update_per_minute=200, update_burst=2))
    streaming = StreamSurface(api, THREAD, edit_interval=5.0, native=NativeStreaming("auto"))
    finishing = stream_surface(api)
    marker = streaming.limits.streaming_marker
    first, second = (
        await streaming.post("one", kind=STATUS),
        await finishing.post("two", kind=STATUS),
    )
    await streaming.edit(
        first, "one, more" + marker, kind=FIRST_WORDS
    )  # fallback replies are marked
    await finishing.edit(second, "two, more" + marker, kind=FIRST_WORDS)  # the burst is spent

    await asyncio.gather(
        streaming.edit(first, "one, more and more" + marker, kind=PROGRESS),
        finishing.edit(second, "two, final", kind=FINAL),
    )
    shown = [call.params["text"] for call in slack.calls_to("chat.update")]
    assert shown[-2:] == ["two, final", "one, more and more" + marker]
    assert not slack.calls_to("chat.appendStream")
