"""`bridge serve` and `bridge run` as real subprocesses: endpoints, graceful shutdown,
every platform wired, clean logs.

The processes talk to a fake Slack (Web API and Socket Mode), a fake Discord (REST and
gateway) and the mock backend, all running in the test process, over real HTTP and
websockets; Slack HTTP events are POSTed signed the way Slack signs them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.testing.fake_discord import FakeDiscord
from bridge.testing.fake_slack import FakeSlack, signed_headers
from bridge.testing.mock_backend import MockBackend

BOT_TOKEN = "xoxb-4242-4343-ServeTestBotToken"
APP_TOKEN = "xapp-1-A42-4444-ServeTestAppToken"
SIGNING_SECRET = "0123456789abcdef0123456789abcdef"
DISCORD_TOKEN = "MTA4NzY1NDMyMTA5ODc2NTQzMg.GhIjKl.ServeTestDiscordTokenabcdefghijk"
SECRETS = (BOT_TOKEN, APP_TOKEN, SIGNING_SECRET, DISCORD_TOKEN)
CHANNEL = "C0GENERAL"
# Generous: the subprocess imports slack_bolt and discord on a busy 2-core machine.
WAIT_SECONDS = 45.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BridgeProcess:
    """`python -m bridge COMMAND` with its output collected (drained continuously, so a
    chatty debug log can never fill the pipe and stall the process)."""

    def __init__(self, command: str, env: dict[str, str], cwd: Path) -> None:
        self.command = command
        self.env = env
        self.cwd = cwd
        self.url = f"http://127.0.0.1:{env.get('PORT', '')}"
        self.output = bytearray()
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bridge",
            self.command,
            env=self.env,
            cwd=self.cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read())

    async def wait_for_log(self, text: str) -> None:
        async with asyncio.timeout(WAIT_SECONDS):
            while text not in self.text:
                assert self._reader is not None and not self._reader.done(), self.text
                self._changed.clear()
                await self._changed.wait()

    async def wait_until_healthy(self, session: aiohttp.ClientSession) -> None:
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                assert self.proc is not None and self.proc.returncode is None, self.text
                try:
                    async with session.get(self.url + "/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while chunk := await self.proc.stdout.read(65536):
            self.output += chunk
            self._changed.set()
        self._changed.set()

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    async def terminate(self) -> int:
        """SIGTERM, then wait for a clean exit."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await self.wait()

    async def wait(self) -> int:
        assert self.proc is not None and self._reader is not None
        async with asyncio.timeout(WAIT_SECONDS):
            code = await self.proc.wait()
            await self._reader
        return code

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await self._reader


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN) as fake:
        yield fake


@pytest.fixture
async def mock() -> AsyncIterator[MockBackend]:
    # A small delay per chunk keeps an answer streaming for a few seconds.
    async with MockBackend(delay=0.05) as backend:
        yield backend


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def serve_env(slack: FakeSlack, mock: MockBackend, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PORT": str(free_port()),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bridge.db'}",
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "SLACK_STREAMING": "update",
        "WONDERCHAT_CHATBOT_ID": mock.chatbot_id,
        "WONDERCHAT_API_URL": mock.url,
        "LOG_LEVEL": "debug",
        "BRIDGE_EDIT_INTERVAL": "0.2",
    }
    env.update(extra)
    return env


@pytest.fixture
async def running(
    slack: FakeSlack,
    mock: MockBackend,
    session: aiohttp.ClientSession,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> AsyncIterator[BridgeProcess]:
    extra: dict[str, str] = getattr(request, "param", {})
    process = BridgeProcess("serve", serve_env(slack, mock, tmp_path, **extra), tmp_path)
    try:
        await process.start()
        await process.wait_until_healthy(session)
        yield process
    finally:
        await process.kill()
        for secret in SECRETS:  # every test's full debug log must be free of secrets
            assert secret not in process.text


async def post_mention(
    session: aiohttp.ClientSession, process: BridgeProcess, slack: FakeSlack, text: str
) -> str:
    """POST a signed app_mention to /slack/events; return the thread ts it starts."""
    ts = "1700000100.000100"
    event = {
        "type": "app_mention",
        "user": "UALICE",
        "text": f"<@{slack.bot_user_id}> {text}",
        "channel": CHANNEL,
        "ts": ts,
        "event_ts": ts,
        "team": slack.team_id,
    }
    body = json.dumps(slack.event_body(event)).encode()
    headers = signed_headers(SIGNING_SECRET, body)
    async with session.post(process.url + "/slack/events", data=body, headers=headers) as response:
        assert response.status == 200, await response.text()
    return ts


def reply_texts(slack: FakeSlack, thread_ts: str) -> list[str]:
    return [message.text for message in slack.replies(CHANNEL, thread_ts)]


async def get_json(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url) as response:
        return response.status, await response.json()


@pytest.mark.parametrize("running", [{"LOG_FORMAT": "json"}], indirect=True)
async def test_health_ready_metrics_and_signature_check(
    running: BridgeProcess, session: aiohttp.ClientSession
) -> None:
    async with session.get(running.url + "/healthz") as response:
        assert (response.status, await response.text()) == (200, "ok")

    status, body = await get_json(session, running.url + "/readyz")
    assert status == 200, body
    assert body == {
        "status": "ready",
        "checks": {"slack": "ok", "database": "ok", "relay": "ok"},
    }

    async with session.get(running.url + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        metrics = await response.text()
    for name in ("bridge_questions_total", "bridge_answers_total", "bridge_active_streams"):
        assert f"# TYPE {name.removesuffix('_total')}" in metrics

    forged = json.dumps({"type": "event_callback", "event": {}}).encode()
    headers = signed_headers("f" * 32, forged)
    async with session.post(running.url + "/slack/events", data=forged, headers=headers) as resp:
        assert resp.status == 401

    assert await running.terminate() == 0, running.text
    entries = [json.loads(line) for line in running.text.splitlines()]
    assert {"slack_sdk.web.async_base_client", "bridge.app"} <= {e["logger"] for e in entries}
    assert all(e["correlation_id"] == "-" for e in entries)  # no question was asked
    assert entries[-1]["message"] == "shutdown complete"


async def test_sigterm_lets_an_answer_in_flight_finish(
    running: BridgeProcess, slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    # The mock echoes the question, so the bot token travels through slack_sdk's debug
    # logs of the chat.update bodies: proof that third-party lines are redacted too.
    thread_ts = await post_mention(session, running, slack, f"threads and {BOT_TOKEN}?")
    # Wait until the answer is visibly streaming, then ask the process to stop.
    await slack.wait_until(lambda: any("Here is what" in t for t in reply_texts(slack, thread_ts)))
    running.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    assert await running.wait() == 0, running.text
    final = reply_texts(slack, thread_ts)[-1]
    assert "Is there anything else I can help you with?" in final, final
    assert "interrupted" not in final
    assert "docs.example.com/getting-started" in final  # sources appended by the final edit
    assert "shutdown: no new questions; draining 1 answers" in running.text
    assert "[redacted]" in running.text


@pytest.mark.parametrize("running", [{"BRIDGE_DRAIN_SECONDS": "3"}], indirect=True)
async def test_sigterm_interrupts_what_cannot_finish_within_the_drain(
    running: BridgeProcess, slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    thread_ts = await post_mention(session, running, slack, "[mock:stall] never ends")
    await slack.wait_until(lambda: bool(reply_texts(slack, thread_ts)))
    running.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]

    # While draining, the server still answers and says it is not ready.
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            status, body = await get_json(session, running.url + "/readyz")
            if status == 503:
                break
            await asyncio.sleep(0.05)
    assert body["not_ready"] == {"relay": "draining: not accepting questions"}

    assert await running.wait() == 0, running.text
    final = reply_texts(slack, thread_ts)[-1]
    assert "interrupted" in final, final
    for phase in ("SIGTERM received", "shutdown: drain finished", "shutdown: stopping slack"):
        assert phase in running.text


async def test_run_connects_socket_mode_and_discord_and_stops_cleanly(
    slack: FakeSlack, mock: MockBackend, tmp_path: Path
) -> None:
    """`bridge run` with both worker platforms: each answers, SIGTERM exits 0."""
    async with FakeDiscord() as discord:
        env = serve_env(
            slack,
            mock,
            tmp_path,
            SLACK_APP_TOKEN=APP_TOKEN,
            DISCORD_TOKEN=DISCORD_TOKEN,
            DISCORD_API_URL=discord.api_url,
        )
        del env["SLACK_SIGNING_SECRET"], env["PORT"]
        process = BridgeProcess("run", env, tmp_path)
        try:
            await process.start()
            await process.wait_for_log("bridge running: slack, discord")

            envelope = await slack.send_event(
                slack.event_body(
                    {
                        "type": "app_mention",
                        "user": "UALICE",
                        "text": f"<@{slack.bot_user_id}> from slack",
                        "channel": CHANNEL,
                        "ts": "1700000200.000100",
                        "team": slack.team_id,
                    }
                )
            )
            await slack.wait_for_ack(envelope)
            dm = discord.dm_channel(discord.alice)
            await discord.user_message(dm, "from discord")

            done = "Is there anything else I can help you with?"
            await slack.wait_until(
                lambda: any(done in t for t in reply_texts(slack, "1700000200.000100"))
            )
            await discord.wait_for(
                lambda: any(done in m["content"] for m in discord.bot_messages_in(dm)),
                within=WAIT_SECONDS,
            )
            assert await process.terminate() == 0, process.text
            assert "shutdown: stopping discord" in process.text
            assert "shutdown: stopping slack" in process.text
        finally:
            await process.kill()
        for secret in SECRETS:
            assert secret not in process.text


async def test_serve_start_failures_exit_1_without_traceback(
    slack: FakeSlack, mock: MockBackend, tmp_path: Path
) -> None:
    wrong_token = "xoxb-4242-0000-RevokedBotToken"
    env = serve_env(slack, mock, tmp_path, SLACK_BOT_TOKEN=wrong_token)
    rejected = BridgeProcess("serve", env, tmp_path)
    await rejected.start()
    assert await rejected.wait() == 1, rejected.text
    assert "bridge could not start: Slack rejected SLACK_BOT_TOKEN (invalid_auth)" in rejected.text
    assert "Traceback" not in rejected.text and wrong_token not in rejected.text

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        env = serve_env(slack, mock, tmp_path, PORT=str(taken.getsockname()[1]))
        busy = BridgeProcess("serve", env, tmp_path)
        await busy.start()
        assert await busy.wait() == 1, busy.text
    assert "cannot listen on port" in busy.text
    assert "shutdown: stopping slack" in busy.text  # what had started was stopped again
