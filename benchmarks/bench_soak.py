"""Soak: N simultaneous answers through `bridge serve`'s Slack HTTP path, in one process.

Run from the repository root: `python benchmarks/bench_soak.py [--answers 1000 ...]`.
Each row starts `bridge serve` as a real process (`python -m bridge serve`) in Slack HTTP
mode against `FakeSlack` (Slack limits off: every answer is in its own workspace and
channel, so no Slack limit binds, on Slack's side or in the bridge's per-workspace
budgets) and `MockBackend` (Wonderchat, one text chunk every `--chunk-ms`). After one
warm-up answer it POSTs N signed `app_mention` events at once to `/slack/events` and waits
until every reply shows its final text. `BRIDGE_MAX_CONCURRENCY` is N, so every answer
streams at once; everything else is the production default (edit interval 1 s).

The bridge process's own figures: its event-loop lag, sampled every 10 ms by a task that
`benchmarks/loop_lag/sitecustomize.py` adds to its loop (put on PYTHONPATH, the bridge is
unchanged); its peak RSS (VmHWM) and its CPU time over the soak, from /proc (Linux). The
latencies come from the fake's and the mock's own records, as in bench_e2e.py, so a pause
of this process (where the fakes run) would count as the bridge's: the harness runs with
the bridge's collector thresholds (its call records would otherwise cost full collections
of 50-80 ms) and prints its own loop lag, to show it did not skew the latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bridge.backends.http import UNREACHABLE
from bridge.gc_tuning import tune_for_serving
from bridge.tasks import TaskOwner
from bridge.testing.fake_slack import FakeSlack, SlackCall, signed_headers
from bridge.testing.mock_backend import MockBackend
from bridge.testing.process import BridgeProcess, free_port

SIGNING_SECRET = "soak-signing-secret-0123456789abcdef"
DEFAULT_ANSWERS = (1, 100, 1000)
DEFAULT_CHUNK_MS = 300.0  # 65 chunks: each answer streams for about 20 s
DEFAULT_RAMP_SECONDS = 5.0  # all questions sent within this, so all stream at once
WAIT_SECONDS = 300.0  # bound on one row, far above what it takes
POLL_SECONDS = 0.25
SENDERS = 64  # connections the benchmark POSTs events over (Slack uses a few, not N)
LAG_PROBE = Path(__file__).resolve().parent / "loop_lag"
DONE_TEXT = "Is there anything else I can help you with?"  # the mock answer's last words
FIRST_WORD = "Here"  # the mock answer's first chunk
STREAMING_MARKER = "▌"
ENDED_MARK = "⚠️"  # opens every notice that ends an answer without its text
TEXT_METHODS = frozenset({"chat.update", "chat.appendStream", "chat.stopStream"})

COLUMNS = (
    "answers",
    "done",
    "wall s",
    "placeholder p50 ms",
    "p99",
    "added p50 ms",
    "p99",
    "loop lag p50 ms",
    "p99",
    "max",
    "peak RSS MB",
    "CPU ms/answer",
    "edits/answer",
    "harness lag p99 ms",
)


@dataclass(frozen=True)
class Row:
    answers: int
    done: int
    unreachable: int
    wall: float
    placeholder: list[float]  # seconds, one per answer that got one
    added: list[float]
    lag: list[float]
    peak_rss_mb: float
    cpu_seconds: float
    text_calls: int  # calls that carried answer text (edits), every answer together
    harness_lag: list[float]

    def cells(self) -> list[str]:
        return [
            str(self.answers),
            str(self.done),
            f"{self.wall:.1f}",
            ms(percentile(self.placeholder, 50)),
            ms(percentile(self.placeholder, 99)),
            ms(percentile(self.added, 50)),
            ms(percentile(self.added, 99)),
            ms(percentile(self.lag, 50)),
            ms(percentile(self.lag, 99)),
            ms(max(self.lag, default=math.nan)),
            f"{self.peak_rss_mb:.0f}",
            f"{self.cpu_seconds * 1000 / self.answers:.1f}",
            f"{self.text_calls / self.answers:.1f}",
            ms(percentile(self.harness_lag, 99)),
        ]


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))]


def ms(seconds: float) -> str:
    return "—" if math.isnan(seconds) else f"{seconds * 1000:.0f}"


def mention(slack: FakeSlack, row: int, n: int) -> tuple[bytes, str, str]:
    """The body of question `n` of row `row`: its own workspace, channel and user (the
    fake and the mock outlive a row, so every row uses names of its own).

    Returns (body, channel, question text)."""
    name = f"S{row}X{n}"
    channel, question = f"C{name}", f"soak question {name}"
    ts = f"1700000000.{n:06d}"
    event = {
        "type": "app_mention",
        "user": f"U{name}",
        "text": f"<@{slack.bot_user_id}> {question}",
        "channel": channel,
        "ts": ts,
        "event_ts": ts,
        "team": f"T{name}",
    }
    body = slack.event_body(event, team_id=f"T{name}")
    return json.dumps(body).encode(), channel, question


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


class Soak:
    """One row: a fresh `bridge serve` process, N answers at once."""

    def __init__(self, slack: FakeSlack, mock: MockBackend, workdir: Path, ramp: float) -> None:
        self.slack = slack
        self.mock = mock
        self.workdir = workdir
        self.ramp = ramp  # seconds over which the questions are sent, evenly spaced
        self.harness_lag: list[float] = []  # this process's loop lag over the soak

    def env(self, answers: int, lag_file: Path) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(LAG_PROBE), os.getenv("PYTHONPATH")])),
            "BRIDGE_LOOP_LAG_FILE": str(lag_file),
            "PORT": str(free_port()),
            "DATABASE_URL": f"sqlite:///{self.workdir / f'soak-{answers}.db'}",
            "SLACK_BOT_TOKEN": self.slack.bot_token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.slack.api_url,
            "SLACK_STREAMING": "update",
            "WONDERCHAT_CHATBOT_ID": self.mock.chatbot_id,
            "WONDERCHAT_API_URL": self.mock.url,
            "BRIDGE_MAX_CONCURRENCY": str(answers),
            "BRIDGE_USER_RATE_PER_MINUTE": "0",
            "LOG_LEVEL": "warning",
        }

    async def run(self, answers: int, session: aiohttp.ClientSession) -> Row:
        lag_file = self.workdir / f"lag-{answers}.json"
        process = BridgeProcess("serve", self.env(answers, lag_file), self.workdir)
        try:
            await process.start()
            await process.wait_for_status(session, "/readyz", 200)
            assert process.proc is not None
            pid = process.proc.pid
            warm_up = [mention(self.slack, answers, 0)]  # bolt's first-call set-up
            await self.ask_and_wait(session, process, warm_up)
            questions = [mention(self.slack, answers, n) for n in range(1, answers + 1)]
            cpu_before = proc_cpu_seconds(pid)
            calls_before = len(self.slack.calls)
            sampling = TaskOwner("soak harness")
            sampling.spawn(sample_lag(self.harness_lag), name="harness-loop-lag")
            started = time.monotonic()
            try:
                sent = await self.ask_and_wait(session, process, questions)
            finally:
                await sampling.stop()
            ended = time.monotonic()
            cpu = proc_cpu_seconds(pid) - cpu_before
            peak = proc_peak_rss_mb(pid)
            assert await process.terminate() == 0, process.text[-2000:]
        finally:
            await process.kill()
        lag = [lag for at, lag in json.loads(lag_file.read_text()) if started <= at <= ended]
        last = self.last_texts()
        finals = [last.get(channel, "") for _, channel, _ in questions]
        return Row(
            answers=answers,
            done=sum(1 for text in finals if is_final(text)),
            unreachable=sum(1 for text in finals if UNREACHABLE in text),
            wall=ended - started,
            placeholder=self.placeholder_latencies(sent),
            added=self.added_latencies(questions),
            lag=lag,
            peak_rss_mb=peak,
            cpu_seconds=cpu,
            text_calls=sum(
                1 for call in self.slack.calls[calls_before:] if call.method in TEXT_METHODS
            ),
            harness_lag=self.harness_lag,
        )

    async def ask_and_wait(
        self,
        session: aiohttp.ClientSession,
        process: BridgeProcess,
        questions: Sequence[tuple[bytes, str, str]],
    ) -> dict[str, float]:
        """POST every question at once; wait until each reply is final (or ends
        otherwise, or the bound passes). Returns channel → when its event was sent."""
        sent: dict[str, float] = {}

        start = time.monotonic()
        spacing = self.ramp / len(questions)

        async def ask(n: int, body: bytes, channel: str) -> None:
            await asyncio.sleep(max(start + n * spacing - time.monotonic(), 0))
            sent[channel] = time.monotonic()
            headers = signed_headers(SIGNING_SECRET, body)
            async with session.post(
                process.url + "/slack/events", data=body, headers=headers
            ) as response:
                response.raise_for_status()

        await asyncio.gather(
            *(ask(n, body, channel) for n, (body, channel, _) in enumerate(questions))
        )
        pending = {channel for _, channel, _ in questions}
        async with asyncio.timeout(WAIT_SECONDS):
            while pending:
                await asyncio.sleep(POLL_SECONDS)
                last = self.last_texts()
                pending = {c for c in pending if not has_ended(last.get(c, ""))}
        return sent

    def last_texts(self) -> dict[str, str]:
        """Channel → the text of its latest message (the bot's reply)."""
        return {message.channel: message.text for message in self.slack.messages.values()}

    def calls_by_channel(self) -> dict[str, list[SlackCall]]:
        by_channel: dict[str, list[SlackCall]] = {}
        for call in self.slack.calls:
            channel = call.params.get("channel")
            if isinstance(channel, str):
                by_channel.setdefault(channel, []).append(call)
        return by_channel

    def placeholder_latencies(self, sent: dict[str, float]) -> list[float]:
        """Event sent → the reply's first `chat.postMessage` arrives at the fake."""
        calls = self.calls_by_channel()
        latencies = []
        for channel, at in sent.items():
            posts = [c.at for c in calls.get(channel, []) if c.method == "chat.postMessage"]
            if posts:
                latencies.append(min(posts) - at)
        return latencies

    def added_latencies(self, questions: Sequence[tuple[bytes, str, str]]) -> list[float]:
        """The mock writes the answer's first text chunk → the first call carrying answer
        text arrives at the fake: the latency the bridge adds to the backend's."""
        calls = self.calls_by_channel()
        latencies = []
        for _, channel, question in questions:
            first_chunk = self.mock.first_chunk_at.get(question)
            texts = [
                c.at
                for c in calls.get(channel, [])
                if c.method in TEXT_METHODS and FIRST_WORD in json.dumps(c.params)
            ]
            if first_chunk is not None and texts:
                latencies.append(min(texts) - first_chunk)
        return latencies


async def sample_lag(samples: list[float], interval: float = 0.01) -> None:
    """This process's event-loop lag, sampled as the bridge's is (loop_lag/sitecustomize.py;
    that probe must load before anything else in the bridge's process, so it stands alone)."""
    while True:
        asked = time.monotonic() + interval
        await asyncio.sleep(interval)
        samples.append(max(time.monotonic() - asked, 0.0))


def is_final(text: str) -> bool:
    return DONE_TEXT in text and STREAMING_MARKER not in text


def has_ended(text: str) -> bool:
    """Final, or ended with a notice (an error, a refusal): nothing more will come."""
    return is_final(text) or (ENDED_MARK in text and STREAMING_MARKER not in text)


def format_table(rows: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * (len(COLUMNS) - 1)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


async def run(
    answer_counts: Sequence[int], chunk_ms: float, ramp: float, workdir: Path
) -> list[Row]:
    rows = []
    connector = aiohttp.TCPConnector(limit=SENDERS)
    async with (
        FakeSlack(enforce_limits=False) as slack,
        MockBackend(delay=chunk_ms / 1000) as mock,
        aiohttp.ClientSession(connector=connector) as session,
    ):
        for answers in answer_counts:
            rows.append(await Soak(slack, mock, workdir, ramp).run(answers, session))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, nargs="+", default=list(DEFAULT_ANSWERS))
    parser.add_argument("--chunk-ms", type=float, default=DEFAULT_CHUNK_MS)
    parser.add_argument("--ramp", type=float, default=DEFAULT_RAMP_SECONDS)
    args = parser.parse_args(argv)
    tune_for_serving()  # the fakes' call records must not cost this process long pauses
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as workdir:
        rows = asyncio.run(run(args.answers, args.chunk_ms, args.ramp, Path(workdir)))
    print(format_table(rows))
    for row in rows:
        if row.unreachable:
            print(f"{row.answers} answers: {row.unreachable} said the backend was unreachable")
    return 0 if all(row.done == row.answers for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
