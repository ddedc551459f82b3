"""End to end: how fast answers show up in Slack and Discord, and how many calls they cost.

Run from the repository root: `python benchmarks/bench_e2e.py [--quick] [--speedup N]`.
The real pieces run over real local HTTP, as in the e2e tests: the Slack adapter
(slack-bolt over Socket Mode) against `FakeSlack`, the Discord adapter (discord.py over
the gateway) against `FakeDiscord`, and the runtime (relay, SQLite store, renderer,
Wonderchat client) against `MockBackend`. Each row is one scenario on a fresh bridge: N
questions sent at once — Slack mentions in one workspace (each in its own channel, from
its own user), answered with SLACK_STREAMING=update or native, or Discord DMs from N
people.

Slack's per-workspace budgets (~45 chat.update/min) would make 50 answers take minutes,
so platform time runs `--speedup` times faster: the bridge's Slack budgets are multiplied
and its edit interval divided by it, and the fake Slack enforces Slack's limits (method
tiers, posts per channel) on a clock running as much faster. Chunk delay, latencies and
wall time are real milliseconds/seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from prometheus_client import REGISTRY

from bridge.config import load_settings
from bridge.discord import DiscordAdapter
from bridge.relay import Relay
from bridge.runtime import open_runtime
from bridge.slack import SlackAdapter
from bridge.slack.budget import SlackRates
from bridge.testing.fake_discord import FakeDiscord, RecordedRequest
from bridge.testing.fake_slack import FakeSlack, SlackCall
from bridge.testing.mock_backend import MockBackend

sys.path.insert(0, str(Path(__file__).resolve().parent))
import saturation  # a sibling module of this script

Platform = Literal["slack", "discord"]
Streaming = Literal["update", "native"]

DEFAULT_SPEEDUP = 10.0
CHUNK_DELAY = 0.01  # seconds between the mock's chunks (0.1 s of platform time at 10×)
SLACK_PLACEHOLDER_METHODS = frozenset({"chat.postMessage", "chat.startStream"})
SLACK_TEXT_METHODS = frozenset({"chat.update", "chat.appendStream", "chat.stopStream"})
# discord.py waits this long for more guilds before it is ready; the fake has one.
DISCORD_GUILD_READY_TIMEOUT = 0.05
ANSWER_OPENING = "Here is what I found"  # the mock's answer starts with these words
FIRST_WORD = ANSWER_OPENING.split()[0]  # the first chunk: the earliest text to look for
FINAL_MARK = "**Sources**"  # only the final edit carries the sources
WAIT_SECONDS = 180.0  # bound on one scenario, far above what it takes on 2 cores
NO_MODE = "—"  # the streaming column of Discord rows: Discord has only edits

COLUMNS = (
    "platform",
    "streaming",
    "answers",
    "chunk ms",
    "placeholder p50 ms",
    "p95",
    "added p50 ms",
    "p95",
    "calls/answer",
    "naive calls/answer",
    "429s",
    "wall s",
)


@dataclass(frozen=True)
class Scenario:
    answers: int
    platform: Platform = "slack"
    streaming: Streaming = "update"  # SLACK_STREAMING; Discord rows ignore it
    chunk_delay: float = CHUNK_DELAY

    @property
    def mode(self) -> str:
        return self.streaming if self.platform == "slack" else NO_MODE


@dataclass(frozen=True)
class Result:
    """What one scenario measured; latencies are per answer, in seconds."""

    scenario: Scenario
    placeholder: list[float]  # question sent → placeholder (or empty stream) at the fake
    added: list[float]  # mock's first chunk written → first answer text at the fake
    calls: int  # platform API calls after start-up and warm-up, 429s included
    chunks: int  # text chunks the mock streamed, all answers together
    rate_limited: int  # 429s the bridge received
    wall: float  # first question sent → every answer final

    @property
    def calls_per_answer(self) -> float:
        return self.calls / self.scenario.answers

    @property
    def naive_calls_per_answer(self) -> float:
        """One post plus one edit per backend chunk."""
        return 1 + self.chunks / self.scenario.answers


class _Arrival(Protocol):
    @property
    def at(self) -> float: ...


Call = TypeVar("Call", bound=_Arrival)


def first_at(calls: Sequence[Call], wanted: Callable[[Call], bool], what: str) -> float:
    """Arrival time of the first matching call; a missing one means the scenario broke."""
    found = next((call.at for call in calls if wanted(call)), None)
    if found is None:
        raise LookupError(f"the fake platform saw no {what}")
    return found


def is_answer_text(text: object) -> bool:
    """Whether a call's text is answer text rather than a placeholder or status line."""
    return isinstance(text, str) and text.lstrip("_").startswith(FIRST_WORD)


def question_text(number: int) -> str:
    return f"benchmark question {number}"


class Side(Protocol):
    """One platform's fake, as the measurement sees it: questions in, calls out."""

    platform: Platform

    def start_counting(self) -> None:
        """From now on calls count towards the answers."""

    def call_count(self) -> int: ...

    async def ask(self, number: int) -> None:
        """Send question `number` the way a person would."""

    def answered(self, number: int) -> bool:
        """Whether question `number`'s reply shows its final text with sources."""

    async def wait_until(self, condition: Callable[[], bool]) -> None: ...

    def placeholder_at(self, number: int) -> float: ...

    def text_at(self, number: int) -> float:
        """When the first call carrying answer text for question `number` arrived."""


class SlackSide:
    """Mentions in one workspace, each in its own channel from its own user (the per-user
    limit stays out)."""

    platform: Platform = "slack"

    def __init__(self, slack: FakeSlack) -> None:
        self.slack = slack
        self._since = 0

    def start_counting(self) -> None:
        self._since = len(self.slack.calls)

    def _calls(self) -> list[SlackCall]:
        return self.slack.calls[self._since :]

    def call_count(self) -> int:
        return len(self._calls())

    async def ask(self, number: int) -> None:
        event = {
            "type": "app_mention",
            "user": f"U{number}",
            "channel": f"C{number}",
            "ts": self._thread(number),
            "text": f"<@{self.slack.bot_user_id}> {question_text(number)}",
            "team": self.slack.team_id,
        }
        await self.slack.send_event(self.slack.event_body(event))

    @staticmethod
    def _thread(number: int) -> str:
        return f"1600000000.{number:06d}"

    def answered(self, number: int) -> bool:
        thread_ts = self._thread(number)
        return any(
            m.thread_ts == thread_ts and FINAL_MARK in m.text and not m.streaming
            for m in self.slack.messages.values()
        )

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        await self.slack.wait_until(condition, within=WAIT_SECONDS)

    def placeholder_at(self, number: int) -> float:
        thread_ts = self._thread(number)
        return first_at(
            self._calls(),
            lambda c: c.method in SLACK_PLACEHOLDER_METHODS and c.params["thread_ts"] == thread_ts,
            "placeholder",
        )

    def text_at(self, number: int) -> float:
        return first_at(self._calls(), lambda c: self._shows_answer(c, number), "answer text")

    def _shows_answer(self, call: SlackCall, number: int) -> bool:
        if call.method == "chat.postMessage":  # an ending posted anew (slack/swap.py)
            if call.params.get("thread_ts") != self._thread(number):
                return False
        elif call.method not in SLACK_TEXT_METHODS:
            return False
        else:
            message = self.slack.messages.get(str(call.params.get("ts")))
            if message is None or message.thread_ts != self._thread(number):
                return False
        return is_answer_text(call.params.get("text") or call.params.get("markdown_text"))

    async def warm_up(self) -> None:
        """Deliver one message the bot ignores: bolt checks the token with auth.test on
        its first event (all events at once when they arrive together) and caches it
        after, so a fresh bridge would otherwise charge that one-off call to the answers."""
        event = {
            "type": "message",
            "user": "UWARM",
            "channel": "CWARM",
            "channel_type": "channel",
            "ts": "1500000000.000001",
            "text": "not for the bot",
            "team": self.slack.team_id,
        }
        await self.slack.wait_for_ack(await self.slack.send_event(self.slack.event_body(event)))


class DiscordSide:
    """DMs, each from its own person in their own DM channel."""

    platform: Platform = "discord"

    def __init__(self, fake: FakeDiscord, answers: int) -> None:
        self.fake = fake
        self._people = [fake.make_user(f"person{number}") for number in range(answers)]
        self._channels = [fake.dm_channel(person) for person in self._people]
        self._since = 0

    def start_counting(self) -> None:
        self._since = len(self.fake.requests)

    def _calls(self) -> list[RecordedRequest]:
        return self.fake.requests[self._since :]

    def call_count(self) -> int:
        return len(self._calls())

    async def ask(self, number: int) -> None:
        await self.fake.user_message(
            self._channels[number], question_text(number), author=self._people[number]
        )

    def answered(self, number: int) -> bool:
        replies = self.fake.bot_messages_in(self._channels[number])
        return any(FINAL_MARK in m["content"] for m in replies)

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        await self.fake.wait_for(condition, within=WAIT_SECONDS)

    def _messages_path(self, number: int) -> str:
        return f"/channels/{self._channels[number]}/messages"

    def placeholder_at(self, number: int) -> float:
        path = self._messages_path(number)
        return first_at(
            self._calls(), lambda r: r.method == "POST" and r.path == path, "placeholder"
        )

    def text_at(self, number: int) -> float:
        path = self._messages_path(number)
        return first_at(
            self._calls(),
            lambda r: (
                r.method in ("POST", "PATCH")
                and r.path.startswith(path)
                and is_answer_text((r.json or {}).get("content"))
            ),
            "answer text",
        )


def rate_limited_total(platform: Platform) -> float:
    """The bridge's own count of 429s from a platform (a process-wide counter)."""
    value = REGISTRY.get_sample_value("bridge_platform_rate_limited_total", {"platform": platform})
    return value or 0.0


def backend_settings(mock: MockBackend, workdir: Path, speedup: float) -> dict[str, Any]:
    """What every scenario shares: the mock backend, a fresh database, the edit interval."""
    return {
        "wonderchat_chatbot_id": mock.chatbot_id,
        "wonderchat_api_url": mock.url,
        "database_url": f"sqlite:///{workdir / f'bench-{time.monotonic_ns()}.db'}",
        "bridge_edit_interval": 1.0 / speedup,
    }


@asynccontextmanager
async def slack_bridge(
    scenario: Scenario, speedup: float, mock: MockBackend, workdir: Path
) -> AsyncIterator[tuple[Side, Relay]]:
    """A fresh bridge on the fake Slack, warmed up."""
    async with FakeSlack(speed=speedup) as slack:  # Slack's production limits, faster
        settings = load_settings(
            slack_bot_token=slack.bot_token,
            slack_app_token=slack.app_token,
            slack_api_url=slack.api_url,
            slack_streaming=scenario.streaming,
            **backend_settings(mock, workdir, speedup),
        )
        async with open_runtime(settings) as runtime:
            adapter = SlackAdapter(
                settings,
                runtime.relay,
                session=runtime.pools.slack,
                rates=SlackRates().scaled(speedup),
            )
            await adapter.start()
            try:
                side = SlackSide(slack)
                await side.warm_up()
                yield side, runtime.relay
            finally:
                await runtime.relay.drain(5.0)
                await adapter.stop()


@asynccontextmanager
async def discord_bridge(
    scenario: Scenario, speedup: float, mock: MockBackend, workdir: Path
) -> AsyncIterator[tuple[Side, Relay]]:
    """A fresh bridge on the fake Discord, connected and ready."""
    async with FakeDiscord() as fake:
        settings = load_settings(
            discord_token="fake-token",
            discord_api_url=fake.api_url,
            **backend_settings(mock, workdir, speedup),
        )
        async with open_runtime(settings) as runtime:
            adapter = DiscordAdapter(
                settings, runtime.relay, guild_ready_timeout=DISCORD_GUILD_READY_TIMEOUT
            )
            await adapter.start()
            try:
                yield DiscordSide(fake, scenario.answers), runtime.relay
            finally:
                await runtime.relay.drain(5.0)
                await adapter.stop()


BRIDGES = {"slack": slack_bridge, "discord": discord_bridge}


async def run_scenario(scenario: Scenario, speedup: float, workdir: Path) -> Result:
    """Start a fresh bridge, send the questions at once, wait for every final answer."""
    async with MockBackend(scenario.chunk_delay) as mock:
        bridge = BRIDGES[scenario.platform](scenario, speedup, mock, workdir)
        async with bridge as (side, relay):
            return await _measure(side, mock, relay, scenario)


async def _measure(side: Side, mock: MockBackend, relay: Relay, scenario: Scenario) -> Result:
    numbers = range(scenario.answers)
    limited_before = rate_limited_total(side.platform)
    side.start_counting()
    sent: list[float] = []
    for number in numbers:
        sent.append(time.monotonic())
        await side.ask(number)
    await side.wait_until(lambda: all(side.answered(number) for number in numbers))
    wall = time.monotonic() - sent[0]
    await relay.drain(WAIT_SECONDS)  # the answers' last steps, before counting calls
    return Result(
        scenario=scenario,
        placeholder=[side.placeholder_at(number) - sent[number] for number in numbers],
        added=[
            side.text_at(number) - mock.first_chunk_at[question_text(number)] for number in numbers
        ],
        calls=side.call_count(),
        chunks=mock.text_chunks,
        rate_limited=round(rate_limited_total(side.platform) - limited_before),
        wall=wall,
    )


async def run(scenarios: Sequence[Scenario], speedup: float, workdir: Path) -> list[Result]:
    """One fresh bridge per scenario, one after the other (they would share 2 cores)."""
    return [await run_scenario(scenario, speedup, workdir) for scenario in scenarios]


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]


def row(result: Result) -> tuple[str, ...]:
    ms = [
        percentile(sample, p) * 1000
        for sample in (result.placeholder, result.added)
        for p in (50, 95)
    ]
    scenario = result.scenario
    return (
        scenario.platform,
        scenario.mode,
        str(scenario.answers),
        f"{scenario.chunk_delay * 1000:g}",
        *(f"{value:.0f}" for value in ms),
        f"{result.calls_per_answer:.1f}",
        f"{result.naive_calls_per_answer:.1f}",
        str(result.rate_limited),
        f"{result.wall:.1f}",
    )


def format_table(results: Sequence[Result]) -> str:
    """A Markdown table, so the figures can be pasted into benchmarks/README.md."""
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(COLUMNS))) + "|",
    ]
    lines += ["| " + " | ".join(row(result)) + " |" for result in results]
    return "\n".join(lines)


def scenarios(quick: bool) -> list[Scenario]:
    slack_sizes = (1, 10) if quick else (1, 10, 50)
    modes: tuple[Streaming, ...] = ("update", "native")
    slack = [Scenario(answers, "slack", mode) for mode in modes for answers in slack_sizes]
    return slack + [Scenario(answers, "discord") for answers in (1, 10)]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="Slack at 1 and 10 answers only (Discord always is)"
    )
    parser.add_argument(
        "--speedup",
        type=float,
        default=DEFAULT_SPEEDUP,
        help="how much faster than real platform time (1 = production budgets; default 10)",
    )
    parser.add_argument(
        "--saturation",
        action="store_true",
        help="50 answers at once, 5 per channel: the bridge beside reference strategies",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # 429 warnings are counted in the table
    if args.saturation:
        saturation.main(args.speedup)
        return
    with tempfile.TemporaryDirectory() as workdir:
        started = time.monotonic()
        results = asyncio.run(run(scenarios(args.quick), args.speedup, Path(workdir)))
    print(f"Platform time at {args.speedup:g}× speed; edit interval {1 / args.speedup:g} s\n")
    print(format_table(results))
    print(f"\nbenchmark took {time.monotonic() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
