"""`bridge serve` and `bridge run` as real subprocesses: endpoints, start-up, graceful
shutdown, every platform wired, clean logs.

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
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bridge.render import INTERRUPTED_NOTICE
from bridge.surface import SurfaceLimits
from bridge.testing.fake_discord import FakeDiscord
from bridge.testing.fake_slack import FakeSlack, signed_headers
from bridge.testing.mock_backend import MockBackend
from bridge.testing.process import WAIT_SECONDS, BridgeProcess, free_port
from bridge.testing.server import serve_app
from bridge.web import STARTING_RETRY_AFTER_SECONDS

BOT_TOKEN = "xoxb-4242-4343-ServeTestBotToken"
APP_TOKEN = "xapp-1-A42-4444-ServeTestAppToken"
SIGNING_SECRET = "0123456789abcdef0123456789abcdef"
DISCORD_TOKEN = "MTA4NzY1NDMyMTA5ODc2NTQzMg.GhIjKl.ServeTestDiscordTokenabcdefghijk"
SECRETS = (BOT_TOKEN, APP_TOKEN, SIGNING_SECRET, DISCORD_TOKEN)
CHANNEL = "C0GENERAL"


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


class SlackGate:
    """A gate in front of the fake Slack's Web API. `auth.test`, the bridge's first call
    when Slack starts, waits until the test opens the gate, so the bridge stays
    "connecting Slack" for exactly as long as the test needs (no sleeps); every call is
    then passed through to the fake unchanged."""

    def __init__(self, upstream: FakeSlack, session: aiohttp.ClientSession) -> None:
        self.upstream = upstream
        self.session = session
        self.reached = asyncio.Event()  # the bridge is waiting for auth.test
        self.opened = asyncio.Event()
        self.api_url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> SlackGate:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._forward)
        self._runner, port = await serve_app(app)
        self.api_url = f"http://127.0.0.1:{port}/api/"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.opened.set()  # a held call would keep the server's clean-up waiting
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if method == "auth.test":
            self.reached.set()
            await self.opened.wait()
        passed = {k: v for k, v in request.headers.items() if k in FORWARDED_HEADERS}
        async with self.session.request(
            request.method,
            self.upstream.api_url + method,
            params=request.query,
            data=await request.read(),
            headers=passed,
        ) as answer:
            kept = {k: v for k, v in answer.headers.items() if k in FORWARDED_HEADERS}
            return web.Response(status=answer.status, body=await answer.read(), headers=kept)


FORWARDED_HEADERS = frozenset({"Authorization", "Content-Type", "Retry-After"})


@pytest.fixture
async def gate(slack: FakeSlack, session: aiohttp.ClientSession) -> AsyncIterator[SlackGate]:
    async with SlackGate(slack, session) as held:
        yield held


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
        await process.wait_for_status(session, "/readyz", 200)
        yield process
    finally:
        await process.kill()
        for secret in SECRETS:  # every test's full debug log must be free of secrets
            assert secret not in process.text


def signed_mention(slack: FakeSlack, text: str, ts: str = "1700000100.000100") -> bytes:
    """The body of an app_mention event callback that starts the thread `ts`."""
    event = {
        "type": "app_mention",
        "user": "UALICE",
        "text": f"<@{slack.bot_user_id}> {text}",
        "channel": CHANNEL,
        "ts": ts,
        "event_ts": ts,
        "team": slack.team_id,
    }
    return json.dumps(slack.event_body(event)).encode()


async def post_event(
    session: aiohttp.ClientSession, process: BridgeProcess, body: bytes, secret: str
) -> aiohttp.ClientResponse:
    """POST `body` to /slack/events signed with `secret`, as Slack would."""
    headers = signed_headers(secret, body)
    async with session.post(process.url + "/slack/events", data=body, headers=headers) as response:
        await response.read()
        return response


async def post_mention(
    session: aiohttp.ClientSession, process: BridgeProcess, slack: FakeSlack, text: str
) -> str:
    """POST a signed app_mention to /slack/events; return the thread ts it starts."""
    ts = "1700000100.000100"
    response = await post_event(session, process, signed_mention(slack, text, ts), SIGNING_SECRET)
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
    assert (await post_event(session, running, forged, "f" * 32)).status == 401

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
async def test_sigterm_interrupts_what_cannot_finish_within_the_drain_and_a_second_is_ignored(
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
    # A second SIGTERM (an impatient operator, a platform repeating itself) is logged and
    # changes nothing: the drain runs its course and the exit is still clean.
    running.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    await running.wait_for_log("SIGTERM received again: already shutting down")

    assert await running.wait() == 0, running.text
    final = reply_texts(slack, thread_ts)[-1]
    assert "interrupted" in final, final
    for phase in ("SIGTERM received", "shutdown: drain finished", "shutdown: stopping slack"):
        assert phase in running.text
    assert running.text.index("received again") < running.text.index("drain finished")
    assert running.text.count("shutdown complete") == 1


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


async def test_port_answers_while_slack_connects_and_early_events_are_held(
    gate: SlackGate,
    slack: FakeSlack,
    mock: MockBackend,
    session: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    """The port is bound before the platforms connect (Heroku's R10 boot timeout): while
    Slack is still connecting, /healthz is 200 and /readyz names what is starting. A
    Slack event is held while the bridge starts and answered once, without a 503; only a
    start slower than Slack's acknowledgement window gets 503, so Slack sends it again."""
    env = serve_env(slack, mock, tmp_path, SLACK_API_URL=gate.api_url)
    process = BridgeProcess("serve", env, tmp_path)
    try:
        await process.start()
        await process.wait_for_event(gate.reached)

        async with session.get(process.url + "/healthz") as response:  # no retry needed
            assert (response.status, await response.text()) == (200, "ok")
        status, body = await get_json(session, process.url + "/readyz")
        assert (status, body) == (
            503,
            {"status": "starting", "not_ready": {"slack": "connecting", "relay": "starting"}},
        )
        slow = signed_mention(slack, "asked while the start is slow", ts="1700000050.000100")
        assert (await post_event(session, process, slow, "f" * 32)).status == 401
        check = json.dumps({"type": "url_verification", "challenge": "c-123"}).encode()
        verified = await post_event(session, process, check, SIGNING_SECRET)
        assert verified.status == 200  # Slack's Request URL check needs no platform
        assert await verified.json() == {"challenge": "c-123"}
        # The gate stays shut longer than the hold: this one gets 503 (Slack retries it).
        refused = await post_event(session, process, slow, SIGNING_SECRET)
        assert refused.status == 503
        assert refused.headers["Retry-After"] == str(STARTING_RETRY_AFTER_SECONDS)
        assert not slack.calls_to("chat.postMessage")  # nothing answered before the start

        mention = signed_mention(slack, "asked during start-up")
        held = asyncio.create_task(post_event(session, process, mention, SIGNING_SECRET))
        await process.wait_for_log(f"Slack event {json.loads(mention)['event_id']} held")
        gate.opened.set()  # the start completes within the hold
        answered = await held
        assert answered.status == 200, await answered.text()
        done = "Is there anything else I can help you with?"
        thread_ts = "1700000100.000100"
        await slack.wait_until(lambda: any(done in t for t in reply_texts(slack, thread_ts)))
        assert len(reply_texts(slack, thread_ts)) == 1  # answered once: one reply
        assert sum("asked during start-up" in q for q in sent_questions(mock)) == 1
        assert await process.terminate() == 0, process.text
    finally:
        await process.kill()
    assert "listening on 0.0.0.0:" in process.text
    assert "Traceback" not in process.text


def sent_questions(mock: MockBackend) -> list[str]:
    return [str((request.json or {}).get("question", "")) for request in mock.requests]


@pytest.mark.parametrize("command", ["serve", "run"])
async def test_sigterm_during_start_up_exits_0(
    command: str, gate: SlackGate, slack: FakeSlack, mock: MockBackend, tmp_path: Path
) -> None:
    env = serve_env(slack, mock, tmp_path, SLACK_API_URL=gate.api_url, SLACK_APP_TOKEN=APP_TOKEN)
    process = BridgeProcess(command, env, tmp_path)
    try:
        await process.start()
        await process.wait_for_event(gate.reached)  # Slack is connecting, and stays so
        assert await process.terminate() == 0, process.text
    finally:
        await process.kill()
    lines = process.text.splitlines()
    assert "shutdown: stopped during start-up" in process.text
    assert "shutdown: stopping slack" in process.text
    assert lines[-1].endswith("shutdown complete"), process.text
    assert "Traceback" not in process.text and "Slack connected" not in process.text


async def test_serve_start_failures_are_one_line_with_the_fix_and_exit_2(
    gate: SlackGate,
    slack: FakeSlack,
    mock: MockBackend,
    session: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    wrong_token = "xoxb-4242-0000-RevokedBotToken"
    env = serve_env(slack, mock, tmp_path, SLACK_BOT_TOKEN=wrong_token, SLACK_API_URL=gate.api_url)
    rejected = BridgeProcess("serve", env, tmp_path)
    await rejected.start()
    await rejected.wait_for_event(gate.reached)
    async with session.get(rejected.url + "/healthz") as response:  # listening already
        assert response.status == 200
    gate.opened.set()  # and now Slack rejects the token
    assert await rejected.wait() == 2, rejected.text
    last = rejected.text.splitlines()[-1]
    assert last == (
        "bridge: Slack rejected SLACK_BOT_TOKEN (invalid_auth): copy the Bot User OAuth Token "
        "(xoxb-…) from your Slack app's OAuth & Permissions page; reinstall the app if it "
        "was revoked"
    )
    # The one line is the news; the clean-up steps are only in the debug log.
    assert all(" DEBUG " in line for line in rejected.text.splitlines() if "shutdown:" in line)
    assert "Traceback" not in rejected.text and wrong_token not in rejected.text
    with pytest.raises(aiohttp.ClientConnectionError):  # the listener was closed
        await session.get(rejected.url + "/healthz")

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = serve_env(slack, mock, tmp_path, PORT=str(port))
        busy = BridgeProcess("serve", env, tmp_path)
        await busy.start()
        assert await busy.wait() == 2, busy.text
    assert busy.text.splitlines()[-1] == (
        f"bridge: cannot listen on port {port} (address already in use): "
        "stop the program using it, or set PORT (or --port) to another port"
    )
    assert "starting slack" not in busy.text  # the port is bound before anything starts


# --- crash recovery: SIGKILL mid-answer -------------------------------------------------

RECOVERED_LOG = "marked 1 answers from an earlier process as interrupted"
STREAMING_MARKER = SurfaceLimits.streaming_marker


async def ask_in_thread(
    session: aiohttp.ClientSession, process: BridgeProcess, slack: FakeSlack, text: str, ts: str
) -> str:
    """POST a signed app_mention starting thread `ts` to `process`; return `ts`."""
    response = await post_event(session, process, signed_mention(slack, text, ts), SIGNING_SECRET)
    assert response.status == 200, await response.text()
    return ts


def shows_interrupted(slack: FakeSlack, thread_ts: str) -> bool:
    texts = reply_texts(slack, thread_ts)
    return bool(texts) and INTERRUPTED_NOTICE in texts[-1]


async def test_a_killed_process_answer_is_marked_interrupted_when_the_bridge_restarts(
    slack: FakeSlack, mock: MockBackend, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    env = serve_env(slack, mock, tmp_path)
    killed = BridgeProcess("serve", env, tmp_path)
    restarted = BridgeProcess("serve", {**env, "PORT": str(free_port())}, tmp_path)
    try:
        await killed.start()
        await killed.wait_for_status(session, "/readyz", 200)
        thread_ts = await post_mention(session, killed, slack, "[mock:stall] still there?")
        await slack.wait_until(lambda: bool(mock.requests))  # streaming, reply recorded
        await killed.kill()  # SIGKILL: no drain, no sign-off; only the kernel's clean-up
        assert not shows_interrupted(slack, thread_ts)

        await restarted.start()
        await slack.wait_until(lambda: shows_interrupted(slack, thread_ts), within=WAIT_SECONDS)
        await restarted.wait_for_log(RECOVERED_LOG)
        assert "Traceback" not in restarted.text
    finally:
        await killed.kill()
        await restarted.kill()


async def test_two_processes_on_postgres_a_killed_one_answer_is_marked_the_other_untouched(
    slack: FakeSlack,
    mock: MockBackend,
    session: aiohttp.ClientSession,
    tmp_path: Path,
    postgres_url: str,
) -> None:
    """The survivor notices within its liveness check, while its own answer streams on;
    a process started afterwards (a restart, or a preboot overlap) touches neither."""
    env = serve_env(slack, mock, tmp_path, DATABASE_URL=postgres_url)
    killed = BridgeProcess("serve", env, tmp_path)
    survivor = BridgeProcess("serve", {**env, "PORT": str(free_port())}, tmp_path)
    later = BridgeProcess("serve", {**env, "PORT": str(free_port())}, tmp_path)
    try:
        await asyncio.gather(killed.start(), survivor.start())
        for process in (killed, survivor):
            await process.wait_for_status(session, "/readyz", 200)
        lost = await ask_in_thread(session, killed, slack, "[mock:stall] one", "1700000100.1")
        await slack.wait_until(lambda: len(mock.requests) == 1)
        live = await ask_in_thread(session, survivor, slack, "[mock:slow] two", "1700000100.2")
        await slack.wait_until(lambda: any("Here is what" in t for t in reply_texts(slack, live)))

        await killed.kill()
        await slack.wait_until(lambda: shows_interrupted(slack, lost), within=WAIT_SECONDS)
        await survivor.wait_for_log(RECOVERED_LOG)
        await later.start()
        await later.wait_for_status(session, "/readyz", 200)
        [answer] = slack.replies(CHANNEL, live)
        assert answer.text.endswith(STREAMING_MARKER)  # still streaming, through all of it

        await slack.wait_until(
            lambda: not answer.text.endswith(STREAMING_MARKER), within=WAIT_SECONDS
        )
        assert "Here is what" in answer.text
        assert not any(INTERRUPTED_NOTICE in text for text in answer.history)
        assert "interrupted" not in later.text and "Traceback" not in survivor.text
    finally:
        for process in (killed, survivor, later):
            await process.kill()
