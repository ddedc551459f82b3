"""Saturation on Slack: many answers at once in one workspace, the bridge beside the ways
other Slack bots pace their edits, each against the same fake Slack in the same run.

Run from the repository root: `python benchmarks/bench_e2e.py --saturation [--speedup N]`.
The scenario: `channels` × `per_channel` mentions at once (5 in each of 10 channels), each
answer streamed by the mock backend over ~`answer_seconds` of Slack time, against a fake
Slack enforcing Slack's production limits (chat.update 50/min per workspace,
chat.postMessage ~1/s per channel, …) on a clock `speedup` times faster. All times are
printed in Slack seconds (real seconds × speedup).

Strategies (each on a fresh fake Slack and mock backend):

* bridge — the real Slack adapter (slack-bolt over Socket Mode), SLACK_STREAMING=update,
  production budgets scaled by the speed-up, edit interval 1 Slack second.
* per-chunk+retry — one chat.update per backend chunk, slack_sdk's
  `AsyncRateLimitErrorRetryHandler` retrying 429s (a dropped progress edit is skipped).
* every-20 — an update every 20 deltas (ChatGPT-in-Slack's way), same retry handler.
* fixed-1s — an update at most once a Slack second per answer, no shared budget
  (llmcord's way), same retry handler.

Columns: 429s drawn (every method), Slack calls per answer (retries included), finals
delivered, final p50 and max (question → final text visible), and the longest time an
answer showed no visible change (placeholder included).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from bridge.backends import build_backend
from bridge.backends.base import ChatBackend
from bridge.backends.events import AnswerDone, TextDelta
from bridge.config import Settings, load_settings
from bridge.discord import DiscordAdapter
from bridge.runtime import open_runtime
from bridge.slack import SlackAdapter
from bridge.slack.budget import SlackRates
from bridge.slack.surface import message_fields, slack_sources_block
from bridge.testing.fake_discord import FakeDiscord
from bridge.testing.fake_slack import FakeSlack
from bridge.testing.mock_backend import MockBackend, answer_text

FINAL_MARK = "**Sources**"
POLL_SECONDS = 0.01  # how often the watcher looks at the fake's messages (real seconds)
RETRIES = 10  # AsyncRateLimitErrorRetryHandler's max_retry_count for the references
FINAL_ATTEMPTS = 20  # a reference's final edit is tried this often before it gives up
PLACEHOLDER = "_Thinking…_"
COLUMNS = (
    "strategy",
    "429s",
    "calls/answer",
    "finals",
    "final p50 s",
    "final max s",
    "longest unchanged s",
    "their max ÷ bridge's",
)


@dataclass(frozen=True)
class Saturation:
    channels: int = 10
    per_channel: int = 5
    answer_seconds: float = 10.0  # of Slack time
    speedup: float = 10.0
    limit_seconds: float = 600.0  # of Slack time: a strategy still running then is cut

    @property
    def answers(self) -> int:
        return self.channels * self.per_channel

    def where(self, number: int) -> tuple[str, str]:
        """(channel, thread ts) of question `number`."""
        return f"C{number % self.channels + 1}", f"1600000000.{number:06d}"

    def chunk_delay(self) -> float:
        """Real seconds between the mock's chunks, so an answer lasts `answer_seconds`."""
        chunks = len(answer_text(question(0), 1).split())
        return self.answer_seconds / chunks / self.speedup


@dataclass(frozen=True)
class Outcome:
    strategy: str
    rate_limited: int
    calls: int
    finals: list[float]  # Slack seconds, question → final visible, for answers that got one
    longest_unchanged: float
    answers: int

    def max_final(self) -> float:
        return max(self.finals) if len(self.finals) == self.answers else math.inf


def question(number: int) -> str:
    return f"saturation question {number}"


class Watch:
    """Notes when each answer's thread changes and when it first shows its final text."""

    def __init__(self, slack: FakeSlack, scenario: Saturation) -> None:
        self._slack = slack
        self._scenario = scenario
        self._shown: list[tuple[str, ...]] = [()] * scenario.answers
        self.changes: list[list[float]] = [[] for _ in range(scenario.answers)]
        self.final_at: list[float | None] = [None] * scenario.answers
        self.asked_at: list[float] = [0.0] * scenario.answers

    def all_final(self) -> bool:
        return all(at is not None for at in self.final_at)

    async def run(self) -> None:
        while True:
            now = time.monotonic()
            for number in range(self._scenario.answers):
                channel, thread_ts = self._scenario.where(number)
                replies = self._slack.replies(channel, thread_ts)
                shown = tuple(m.text for m in replies)
                if shown != self._shown[number]:
                    self._shown[number] = shown
                    self.changes[number].append(now)
                done = any(FINAL_MARK in m.text and not m.streaming for m in replies)
                if done and self.final_at[number] is None:
                    self.final_at[number] = now
            await asyncio.sleep(POLL_SECONDS)

    def outcome(self, strategy: str, rate_limited: int, calls: int) -> Outcome:
        speed = self._scenario.speedup
        finals = [
            (at - asked) * speed
            for at, asked in zip(self.final_at, self.asked_at, strict=True)
            if at is not None
        ]
        gaps = []
        for number, changes in enumerate(self.changes):
            end = self.final_at[number] or time.monotonic()
            stamps = [self.asked_at[number], *(t for t in changes if t <= end), end]
            gaps.append(max(b - a for a, b in itertools.pairwise(stamps)))
        return Outcome(
            strategy, rate_limited, calls, finals, max(gaps) * speed, self._scenario.answers
        )


Answerer = Callable[[int], Awaitable[None]]


async def measure(slack: FakeSlack, scenario: Saturation, strategy: str, ask: Answerer) -> Outcome:
    """Ask every question at once through `ask`; watch until all are final (or cut)."""
    watch = Watch(slack, scenario)
    since = len(slack.calls)
    refused_before = len(slack.refused)
    watcher = asyncio.create_task(watch.run())
    asks = []
    for number in range(scenario.answers):
        watch.asked_at[number] = time.monotonic()
        asks.append(asyncio.create_task(ask(number)))
    limit = scenario.limit_seconds / scenario.speedup
    with contextlib.suppress(TimeoutError):
        await slack.wait_until(watch.all_final, within=limit)
    watcher.cancel()
    for task in asks:
        task.cancel()
    await asyncio.gather(watcher, *asks, return_exceptions=True)
    calls = [c for c in slack.calls[since:] if c.method.startswith("chat.")]
    limited = sum(1 for _, error in slack.refused[refused_before:] if error == "ratelimited")
    return watch.outcome(strategy, limited, len(calls))


# The bridge --------------------------------------------------------------------------


def settings_for(slack: FakeSlack, mock: MockBackend, workdir: Path, speed: float) -> Settings:
    return load_settings(
        slack_bot_token=slack.bot_token,
        slack_app_token=slack.app_token,
        slack_api_url=slack.api_url,
        slack_streaming="update",
        wonderchat_chatbot_id=mock.chatbot_id,
        wonderchat_api_url=mock.url,
        database_url=f"sqlite:///{workdir / f'saturation-{time.monotonic_ns()}.db'}",
        bridge_edit_interval=1.0 / speed,
        bridge_max_concurrency=100,
        bridge_user_rate_per_minute=0,
    )


async def run_bridge(scenario: Saturation, workdir: Path) -> Outcome:
    async with (
        FakeSlack(speed=scenario.speedup) as slack,
        MockBackend(scenario.chunk_delay()) as mock,
    ):
        settings = settings_for(slack, mock, workdir, scenario.speedup)
        async with open_runtime(settings) as runtime:
            rates = SlackRates().scaled(scenario.speedup)
            adapter = SlackAdapter(
                settings, runtime.relay, session=runtime.pools.slack, rates=rates
            )
            await adapter.start()
            try:

                async def ask(number: int) -> None:
                    channel, thread_ts = scenario.where(number)
                    event = {
                        "type": "app_mention",
                        "user": f"U{number}",
                        "channel": channel,
                        "ts": thread_ts,
                        "text": f"<@{slack.bot_user_id}> {question(number)}",
                        "team": slack.team_id,
                    }
                    await slack.send_event(slack.event_body(event))

                return await measure(slack, scenario, "bridge", ask)
            finally:
                await runtime.relay.drain(1.0)
                await adapter.stop()


# Reference strategies -----------------------------------------------------------------

Pacer = Callable[[int, float], bool]  # (deltas so far, seconds since the last edit) → edit?


def per_chunk(_deltas: int, _since: float) -> bool:
    return True


def every_20(deltas: int, _since: float) -> bool:
    return deltas % 20 == 0


def every_slack_second(speed: float) -> Pacer:
    return lambda _deltas, since: since >= 1.0 / speed


class SlackTimeRetryHandler(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's rate-limit retry handler on the fake's faster clock: it sleeps
    Retry-After plus up to one second of jitter, both in Slack seconds (the stock handler
    reads whole real seconds and would wait `speedup` times too long)."""

    def __init__(self, speed: float) -> None:
        super().__init__(max_retry_count=RETRIES)
        self._speed = speed

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        if response is None:
            raise error or RuntimeError("no response to retry")
        state.next_attempt_requested = True
        headers = {key.lower(): values for key, values in response.headers.items()}
        retry_after = float(headers.get("retry-after", ["1"])[0])
        await asyncio.sleep(retry_after + random.random() / self._speed)
        state.increment_current_attempt()


@asynccontextmanager
async def reference_client(slack: FakeSlack, speed: float) -> AsyncIterator[AsyncWebClient]:
    handler = SlackTimeRetryHandler(speed)
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url, retry_handlers=[handler])
    try:
        yield client
    finally:
        await client.session.close() if client.session else None


async def answer_with(
    client: AsyncWebClient, backend: ChatBackend, pacer: Pacer, channel: str, thread: str, text: str
) -> None:
    """How a simple bot answers: placeholder, edits when `pacer` says, then the final."""
    posted = await client.chat_postMessage(channel=channel, thread_ts=thread, text=PLACEHOLDER)
    ts = posted["ts"]
    shown, deltas, last = "", 0, time.monotonic()
    async for event in backend.stream_answer(text):
        if isinstance(event, TextDelta):
            shown += event.text
            deltas += 1
            if pacer(deltas, time.monotonic() - last):
                last = time.monotonic()
                with contextlib.suppress(SlackApiError):  # a lost progress edit is skipped
                    await client.chat_update(channel=channel, ts=ts, **message_fields(shown))
        elif isinstance(event, AnswerDone):
            final = event.text + slack_sources_block(event.sources)
            for _ in range(FINAL_ATTEMPTS):
                with contextlib.suppress(SlackApiError):
                    await client.chat_update(channel=channel, ts=ts, **message_fields(final))
                    return
            return


async def run_reference(scenario: Saturation, name: str, pacer: Pacer, workdir: Path) -> Outcome:
    async with (
        FakeSlack(speed=scenario.speedup, channels=channel_names(scenario)) as slack,
        MockBackend(scenario.chunk_delay()) as mock,
        aiohttp.ClientSession() as session,
        reference_client(slack, scenario.speedup) as client,
    ):
        backend = build_backend(settings_for(slack, mock, workdir, scenario.speedup), session)

        async def ask(number: int) -> None:
            channel, thread_ts = scenario.where(number)
            await answer_with(client, backend, pacer, channel, thread_ts, question(number))

        return await measure(slack, scenario, name, ask)


def channel_names(scenario: Saturation) -> list[str]:
    return [scenario.where(number)[0] for number in range(scenario.channels)]


async def run_all(scenario: Saturation, workdir: Path) -> list[Outcome]:
    outcomes = [await run_bridge(scenario, workdir)]
    references: Sequence[tuple[str, Pacer]] = (
        ("per-chunk+retry", per_chunk),
        ("every-20", every_20),
        ("fixed-1s", every_slack_second(scenario.speedup)),
    )
    for name, pacer in references:
        outcomes.append(await run_reference(scenario, name, pacer, workdir))
    return outcomes


def format_table(outcomes: Sequence[Outcome]) -> str:
    bridge = outcomes[0]
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|---|" + "---:|" * (len(COLUMNS) - 1),
    ]
    for outcome in outcomes:
        ratio = "—" if outcome is bridge else _ratio(outcome.max_final(), bridge.max_final())
        cells: list[Any] = [
            outcome.strategy,
            outcome.rate_limited,
            f"{outcome.calls / outcome.answers:.1f}",
            f"{len(outcome.finals)}/{outcome.answers}",
            f"{statistics.median(outcome.finals):.0f}" if outcome.finals else "—",
            _seconds(outcome.max_final()),
            f"{outcome.longest_unchanged:.0f}",
            ratio,
        ]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines)


def _seconds(value: float) -> str:
    return "cut" if math.isinf(value) else f"{value:.0f}"


def _ratio(theirs: float, bridge: float) -> str:
    if math.isinf(theirs):
        return "> limit"
    return f"{theirs / bridge:.1f}×"


# Discord: a burst of mentions in one server ------------------------------------------

DISCORD_MENTIONS = 40
DISCORD_COLUMNS = ("mentions", "429s", "calls/answer", "finals", "final p50 s", "final max s")


async def run_discord_burst(answer_seconds: float, workdir: Path) -> tuple[str, ...]:
    """40 mentions at once in one channel against a fake Discord enforcing its real
    limits in real time (50 requests/s per bot, per-channel buckets); each answer gets
    its own thread and streams for `answer_seconds`."""
    chunks = len(answer_text(question(0), 1).split())
    async with FakeDiscord() as fake, MockBackend(answer_seconds / chunks) as mock:
        settings = load_settings(
            discord_token="fake-token",
            discord_api_url=fake.api_url,
            wonderchat_chatbot_id=mock.chatbot_id,
            wonderchat_api_url=mock.url,
            database_url=f"sqlite:///{workdir / f'discord-{time.monotonic_ns()}.db'}",
            bridge_max_concurrency=100,
            bridge_user_rate_per_minute=0,
        )
        async with open_runtime(settings) as runtime:
            adapter = DiscordAdapter(settings, runtime.relay, guild_ready_timeout=0.05)
            await adapter.start()
            try:
                since = len(fake.requests)
                asked = time.monotonic()
                questions = await asyncio.gather(
                    *(
                        fake.user_message(fake.channel_id, question(n), mention_bot=True)
                        for n in range(DISCORD_MENTIONS)
                    )
                )
                final_at: dict[str, float] = {}

                def note_finals() -> bool:
                    for q in questions:
                        thread = fake.threads.get(q["id"])
                        if thread is None or q["id"] in final_at:
                            continue
                        if any(
                            FINAL_MARK in m["content"] for m in fake.bot_messages_in(thread["id"])
                        ):
                            final_at[q["id"]] = time.monotonic()
                    return len(final_at) == len(questions)

                with contextlib.suppress(TimeoutError):
                    await fake.wait_for(note_finals, within=120.0)
                calls = len(fake.requests) - since
            finally:
                await runtime.relay.drain(1.0)
                await adapter.stop()
    assert fake.limits is not None
    finals = sorted(at - asked for at in final_at.values())
    return (
        str(DISCORD_MENTIONS),
        str(fake.limits.global_hits + fake.limits.route_hits),
        f"{calls / DISCORD_MENTIONS:.1f}",
        f"{len(finals)}/{DISCORD_MENTIONS}",
        f"{statistics.median(finals):.1f}" if finals else "—",
        f"{finals[-1]:.1f}" if len(finals) == DISCORD_MENTIONS else "cut",
    )


def discord_table(cells: tuple[str, ...]) -> str:
    return "\n".join(
        [
            "| " + " | ".join(DISCORD_COLUMNS) + " |",
            "|" + "---:|" * len(DISCORD_COLUMNS),
            "| " + " | ".join(cells) + " |",
        ]
    )


def main(speedup: float) -> None:
    scenario = Saturation(speedup=speedup)
    with tempfile.TemporaryDirectory() as workdir:
        outcomes = asyncio.run(run_all(scenario, Path(workdir)))
        discord = asyncio.run(run_discord_burst(scenario.answer_seconds, Path(workdir)))
    print(
        f"Saturation: {scenario.answers} mentions at once, {scenario.per_channel} in each of "
        f"{scenario.channels} channels, answers ~{scenario.answer_seconds:g} s; Slack's "
        f"production limits at {speedup:g}× speed; times in Slack seconds\n"
    )
    print(format_table(outcomes))
    print(
        f"\nDiscord: {DISCORD_MENTIONS} mentions at once in one server, answers "
        f"~{scenario.answer_seconds:g} s, Discord's limits in real time; times in seconds\n"
    )
    print(discord_table(discord))
