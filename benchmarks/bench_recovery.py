"""Crash recovery: how soon a reply cut off by SIGKILL says it was interrupted.

Run from the repository root:
`python benchmarks/bench_recovery.py [--runs N] [--postgres postgresql://…]`.

Real `bridge serve` subprocesses (Slack HTTP mode) against the in-process `FakeSlack`
and `MockBackend`. Each run asks a question whose answer stalls, waits until it streams,
SIGKILLs the process answering it, and measures until the reply's text is the
"interrupted" notice:

- **restart**: the killed process's replacement starts on the same database; seconds from
  launching it (`python -m bridge serve`, imports and start-up included) to the edit.
- **survivor**: a second process was running beside the killed one all along; seconds
  from the SIGKILL to the edit it makes after its next liveness check.

Target: 10 s for both. Postgres rows need `--postgres` (a server URL; each run works in
a fresh schema of it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from bridge.render import INTERRUPTED_NOTICE
from bridge.testing.fake_slack import FakeSlack, signed_headers
from bridge.testing.mock_backend import MockBackend
from bridge.testing.process import BridgeProcess, free_port

BOT_TOKEN = "xoxb-4242-4343-BenchRecoveryToken"
SIGNING_SECRET = "0123456789abcdef0123456789abcdef"
CHANNEL = "C0GENERAL"
TARGET_SECONDS = 10.0
WAIT_SECONDS = 60.0  # bound on one wait, far above the target


class Bench:
    """The fakes shared by every run, and how to start a bridge against them."""

    def __init__(self, slack: FakeSlack, mock: MockBackend, session: aiohttp.ClientSession):
        self.slack = slack
        self.mock = mock
        self.session = session
        self._threads = 0

    def process(self, database_url: str, cwd: Path) -> BridgeProcess:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PORT": str(free_port()),
            "DATABASE_URL": database_url,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.slack.api_url,
            "SLACK_STREAMING": "update",
            "WONDERCHAT_CHATBOT_ID": self.mock.chatbot_id,
            "WONDERCHAT_API_URL": self.mock.url,
        }
        return BridgeProcess("serve", env, cwd)

    async def ready(self, process: BridgeProcess) -> None:
        await process.start()
        await process.wait_for_status(self.session, "/readyz", 200)

    async def ask_stalling(self, process: BridgeProcess) -> str:
        """Ask `process` a question whose answer stalls; return its thread once the
        answer streams (the reply is recorded in the store by then)."""
        self._threads += 1
        ts = f"1700000100.{self._threads:06d}"
        asked = len(self.mock.requests)
        event = {
            "type": "app_mention",
            "user": "UALICE",
            "text": f"<@{self.slack.bot_user_id}> [mock:stall] run {self._threads}",
            "channel": CHANNEL,
            "ts": ts,
            "event_ts": ts,
            "team": self.slack.team_id,
        }
        body = json.dumps(self.slack.event_body(event)).encode()
        headers = signed_headers(SIGNING_SECRET, body)
        async with self.session.post(process.url + "/slack/events", data=body, headers=headers):
            pass
        await self.slack.wait_until(lambda: len(self.mock.requests) > asked, within=WAIT_SECONDS)
        return ts

    async def seconds_until_interrupted(self, thread_ts: str, since: float) -> float:
        def interrupted() -> bool:
            replies = self.slack.replies(CHANNEL, thread_ts)
            return bool(replies) and INTERRUPTED_NOTICE in replies[-1].text

        await self.slack.wait_until(interrupted, within=WAIT_SECONDS)
        return time.monotonic() - since


async def restart_run(bench: Bench, database_url: str, cwd: Path) -> float:
    killed, replacement = bench.process(database_url, cwd), bench.process(database_url, cwd)
    try:
        await bench.ready(killed)
        thread_ts = await bench.ask_stalling(killed)
        await killed.kill()
        launched = time.monotonic()
        await replacement.start()
        return await bench.seconds_until_interrupted(thread_ts, launched)
    finally:
        await killed.kill()
        await replacement.kill()


async def survivor_run(bench: Bench, database_url: str, cwd: Path) -> float:
    killed, survivor = bench.process(database_url, cwd), bench.process(database_url, cwd)
    try:
        await asyncio.gather(bench.ready(killed), bench.ready(survivor))
        thread_ts = await bench.ask_stalling(killed)
        await killed.kill()
        return await bench.seconds_until_interrupted(thread_ts, time.monotonic())
    finally:
        await killed.kill()
        await survivor.kill()


async def database_url(store: str, tmp: Path, postgres: str | None) -> str:
    if store == "sqlite" or postgres is None:
        return f"sqlite:///{tmp / 'bridge.db'}"
    from bridge.testing.postgres import fresh_schema_url  # asyncpg: Postgres rows only

    return await fresh_schema_url(postgres, prefix="bench")


@asynccontextmanager
async def bench_fakes() -> AsyncIterator[Bench]:
    async with (
        FakeSlack(bot_token=BOT_TOKEN) as slack,
        MockBackend(delay=0.01) as mock,
        aiohttp.ClientSession() as session,
    ):
        yield Bench(slack, mock, session)


async def measure(runs: int, postgres: str | None) -> list[tuple[str, str, list[float]]]:
    rows: list[tuple[str, str, list[float]]] = []
    scenarios = (("restart", restart_run), ("survivor", survivor_run))
    stores = ["sqlite", *(["postgres"] if postgres else [])]
    for store in stores:
        for name, run in scenarios:
            seconds = []
            for _ in range(runs):
                # Fresh fakes per run: Slack's rate limits, which the fake enforces, must
                # not carry over from one run's edits to the next run's recovery edit.
                async with bench_fakes() as bench:
                    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as tmp:
                        url = await database_url(store, Path(tmp), postgres)
                        seconds.append(await run(bench, url, Path(tmp)))
            rows.append((store, name, seconds))
    return rows


def table(rows: Sequence[tuple[str, str, list[float]]]) -> str:
    lines = [
        "| store | scenario | runs | median s | max s | target |",
        "|---|---|---|---|---|---|",
    ]
    for store, scenario, seconds in rows:
        worst = max(seconds)
        verdict = "met" if worst <= TARGET_SECONDS else "MISSED"
        lines.append(
            f"| {store} | {scenario} | {len(seconds)} | {statistics.median(seconds):.2f} "
            f"| {worst:.2f} | {TARGET_SECONDS:.0f} s {verdict} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per row (default 3)")
    parser.add_argument("--postgres", help="a Postgres server URL, for the Postgres rows")
    args = parser.parse_args(argv)
    rows = asyncio.run(measure(args.runs, args.postgres))
    print(table(rows))
    if not args.postgres:
        print("(no --postgres URL: Postgres rows skipped)", file=sys.stderr)
    return 0 if all(max(seconds) <= TARGET_SECONDS for _, _, seconds in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
