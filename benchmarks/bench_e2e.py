"""End to end: how fast answers show up in Slack and how many Web API calls they cost.

Run from the repository root: `python benchmarks/bench_e2e.py [--quick] [--speedup N]`.
The real pieces run over real local HTTP, as in tests/slack/conftest.py: the Slack adapter
(slack-bolt over Socket Mode) against `FakeSlack`, and the runtime (relay, SQLite store,
renderer, Wonderchat client) against `MockBackend`. Each row is one scenario on a fresh
bridge: N mentions sent at once in one workspace (each in its own channel, from its own
user), answered with SLACK_STREAMING=update or native.

Slack's per-workspace budgets (~45 chat.update/min) would make 50 answers take minutes,
so Slack time runs `--speedup` times faster: the bridge's budgets are multiplied and its
edit interval divided by it, and the fake enforces Slack's method tiers over a minute
divided by it. Chunk delay, latencies and wall time are real milliseconds/seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import math
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from prometheus_client import REGISTRY

from bridge.config import load_settings
from bridge.runtime import open_runtime
from bridge.slack import SlackAdapter
from bridge.slack.budget import SlackRates
from bridge.testing.fake_slack import FakeSlack, SlackCall, _Refusal
from bridge.testing.mock_backend import MockBackend

Streaming = Literal["update", "native"]

DEFAULT_SPEEDUP = 10.0
CHUNK_DELAY = 0.01  # seconds between the mock's chunks (0.1 s of Slack time at 10×)
SLACK_MINUTE = 60.0
# Slack's published per-method tiers (calls per minute per workspace): chat.update is
# Tier 3, chat.appendStream Tier 4, chat.startStream and chat.stopStream Tier 2.
SLACK_TIERS = {
    "chat.update": 50,
    "chat.startStream": 20,
    "chat.appendStream": 100,
    "chat.stopStream": 20,
}
PLACEHOLDER_METHODS = frozenset({"chat.postMessage", "chat.startStream"})
TEXT_METHODS = frozenset({"chat.update", "chat.appendStream", "chat.stopStream"})
ANSWER_OPENING = "Here is what I found"  # the mock's answer starts with these words
FIRST_WORD = ANSWER_OPENING.split()[0]  # the first chunk: the earliest text to look for
FINAL_MARK = "**Sources**"  # only the final edit carries the sources
WAIT_SECONDS = 180.0  # bound on one scenario, far above what it takes on 2 cores

COLUMNS = (
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
    streaming: Streaming
    chunk_delay: float = CHUNK_DELAY


@dataclass(frozen=True)
class Result:
    """What one scenario measured; latencies are per answer, in seconds."""

    scenario: Scenario
    placeholder: list[float]  # event sent → placeholder (or empty stream) at the fake
    added: list[float]  # mock's first chunk sent → first answer text at the fake
    calls: int  # Web API calls after start-up and warm-up, 429s included
    chunks: int  # text chunks the mock streamed, all answers together
    rate_limited: int  # 429s the bridge received
    wall: float  # first event sent → every answer final

    @property
    def calls_per_answer(self) -> float:
        return self.calls / self.scenario.answers

    @property
    def naive_calls_per_answer(self) -> float:
        """One chat.postMessage plus one chat.update per backend chunk."""
        return 1 + self.chunks / self.scenario.answers


class TimedMock(MockBackend):
    """The mock backend, noting when it sends each question's first text chunk."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay)
        self.first_chunk_at: dict[str, float] = {}
        self.chunks = 0

    async def _play(self, request: web.Request, plan: Any, frames: Any) -> web.StreamResponse:
        question = str((await request.json())["question"])
        return await super()._play(request, plan, _CountedFrames(frames, self, question))

    def chunk_sent(self, question: str) -> None:
        self.chunks += 1
        self.first_chunk_at.setdefault(question, time.monotonic())


class _CountedFrames:
    """Wraps one answer's frames; a text frame is written right after it is built."""

    def __init__(self, frames: Any, mock: TimedMock, question: str) -> None:
        self._frames = frames
        self._mock = mock
        self._question = question

    def opening(self) -> list[bytes]:
        return list(self._frames.opening())

    def text(self, piece: str) -> bytes:
        self._mock.chunk_sent(self._question)
        return bytes(self._frames.text(piece))

    def garbage(self) -> bytes:
        return bytes(self._frames.garbage())

    def error(self) -> bytes:
        return bytes(self._frames.error())

    def closing(self) -> list[bytes]:
        return list(self._frames.closing())


class TieredSlack(FakeSlack):
    """The fake Slack, answering 429 when a method exceeds its tier in a sliding minute,
    so the "429s" column shows whether the bridge's shared budget really keeps within
    Slack's limits."""

    def __init__(self, speedup: float) -> None:
        super().__init__()
        self._window = SLACK_MINUTE / speedup
        self._recent: dict[str, deque[float]] = {method: deque() for method in SLACK_TIERS}

    def _check_rate_limit(self, method: str) -> None:
        super()._check_rate_limit(method)
        recent = self._recent.get(method)
        if recent is None:
            return
        now = time.monotonic()
        while recent and recent[0] <= now - self._window:
            recent.popleft()
        if len(recent) >= SLACK_TIERS[method]:
            retry_after = recent[0] + self._window - now
            raise _Refusal("ratelimited", 429, {"Retry-After": f"{retry_after:.3f}"})
        recent.append(now)


def scaled_rates(speedup: float) -> SlackRates:
    """The production budgets, running `speedup` times faster."""
    base = SlackRates()
    faster = {
        rate.name: getattr(base, rate.name) * speedup
        for rate in dataclasses.fields(base)
        if rate.name.endswith("_per_minute")
    }
    return dataclasses.replace(base, **faster)


def rate_limited_total() -> float:
    """The bridge's own count of 429s from Slack (a process-wide counter)."""
    value = REGISTRY.get_sample_value("bridge_platform_rate_limited_total", {"platform": "slack"})
    return value or 0.0


def question_text(number: int) -> str:
    return f"benchmark question {number}"


def mention(slack: FakeSlack, number: int) -> dict[str, Any]:
    """A mention in its own channel from its own user (the per-user limit stays out)."""
    return slack.event_body(
        {
            "type": "app_mention",
            "user": f"U{number}",
            "channel": f"C{number}",
            "ts": f"1600000000.{number:06d}",
            "text": f"<@{slack.bot_user_id}> {question_text(number)}",
            "team": slack.team_id,
        }
    )


async def warm_up(slack: FakeSlack) -> None:
    """Deliver one message the bot ignores: bolt checks the token with auth.test on its
    first event (all events at once when they arrive together) and caches it after, so a
    fresh bridge would otherwise charge that one-off call to the answers."""
    event = {
        "type": "message",
        "user": "UWARM",
        "channel": "CWARM",
        "channel_type": "channel",
        "ts": "1500000000.000001",
        "text": "not for the bot",
        "team": slack.team_id,
    }
    await slack.wait_for_ack(await slack.send_event(slack.event_body(event)))


def answered(slack: FakeSlack, thread_ts: str) -> bool:
    return any(
        m.thread_ts == thread_ts and FINAL_MARK in m.text and not m.streaming
        for m in slack.messages.values()
    )


def first_call_at(
    calls: Sequence[SlackCall], wanted: Callable[[SlackCall], bool], what: str
) -> float:
    """Arrival time of the first matching call; a missing one means the scenario broke."""
    found = next((call.at for call in calls if wanted(call)), None)
    if found is None:
        raise LookupError(f"the fake Slack saw no {what}")
    return found


def shows_answer(slack: FakeSlack, call: SlackCall, thread_ts: str) -> bool:
    """Whether `call` put answer text (not a placeholder or status) on the reply."""
    if call.method not in TEXT_METHODS:
        return False
    message = slack.messages.get(str(call.params.get("ts")))
    if message is None or message.thread_ts != thread_ts:
        return False
    text = call.params.get("text") or call.params.get("markdown_text") or ""
    return str(text).lstrip("_").startswith(FIRST_WORD)


async def run_scenario(scenario: Scenario, speedup: float, workdir: Path) -> Result:
    """Start a fresh bridge, send the mentions at once, wait for every final answer."""
    async with TieredSlack(speedup) as slack, TimedMock(scenario.chunk_delay) as mock:
        settings = load_settings(
            slack_bot_token=slack.bot_token,
            slack_app_token=slack.app_token,
            slack_api_url=slack.api_url,
            slack_streaming=scenario.streaming,
            wonderchat_chatbot_id=mock.chatbot_id,
            wonderchat_api_url=mock.url,
            database_url=f"sqlite:///{workdir / f'bench-{time.monotonic_ns()}.db'}",
            bridge_edit_interval=1.0 / speedup,
        )
        async with open_runtime(settings) as runtime:
            adapter = SlackAdapter(
                settings, runtime.relay, session=runtime.session, rates=scaled_rates(speedup)
            )
            await adapter.start()
            try:
                return await _measure(slack, mock, runtime.relay, scenario)
            finally:
                await runtime.relay.drain(5.0)
                await adapter.stop()


async def _measure(slack: FakeSlack, mock: TimedMock, relay: Any, scenario: Scenario) -> Result:
    await warm_up(slack)
    bodies = [mention(slack, number) for number in range(scenario.answers)]
    threads = [str(body["event"]["ts"]) for body in bodies]
    limited_before = rate_limited_total()
    calls_before = len(slack.calls)
    sent: list[float] = []
    for body in bodies:
        sent.append(time.monotonic())
        await slack.send_event(body)
    await slack.wait_until(
        lambda: relay.active_count == 0 and all(answered(slack, ts) for ts in threads),
        within=WAIT_SECONDS,
    )
    wall = time.monotonic() - sent[0]
    calls = slack.calls[calls_before:]
    placeholder, added = [], []
    for number, (ts, sent_at) in enumerate(zip(threads, sent, strict=True)):
        shown_at = first_call_at(
            calls,
            lambda c, ts=ts: c.method in PLACEHOLDER_METHODS and c.params["thread_ts"] == ts,
            "placeholder",
        )
        text_at = first_call_at(calls, lambda c, ts=ts: shows_answer(slack, c, ts), "answer text")
        placeholder.append(shown_at - sent_at)
        added.append(text_at - mock.first_chunk_at[question_text(number)])
    return Result(
        scenario=scenario,
        placeholder=placeholder,
        added=added,
        calls=len(calls),
        chunks=mock.chunks,
        rate_limited=round(rate_limited_total() - limited_before),
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
    return (
        result.scenario.streaming,
        str(result.scenario.answers),
        f"{result.scenario.chunk_delay * 1000:g}",
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
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(COLUMNS))) + "|",
    ]
    lines += ["| " + " | ".join(row(result)) + " |" for result in results]
    return "\n".join(lines)


def scenarios(quick: bool) -> list[Scenario]:
    sizes = (1, 10) if quick else (1, 10, 50)
    modes: tuple[Streaming, ...] = ("update", "native")
    return [Scenario(answers, mode) for mode in modes for answers in sizes]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 and 10 answers only")
    parser.add_argument(
        "--speedup",
        type=float,
        default=DEFAULT_SPEEDUP,
        help="how much faster than real Slack time (1 = production budgets; default 10)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # 429 warnings are counted in the table
    with tempfile.TemporaryDirectory() as workdir:
        started = time.monotonic()
        results = asyncio.run(run(scenarios(args.quick), args.speedup, Path(workdir)))
    print(f"Slack time at {args.speedup:g}× speed; edit interval {1 / args.speedup:g} s\n")
    print(format_table(results))
    print(f"\nbenchmark took {time.monotonic() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
