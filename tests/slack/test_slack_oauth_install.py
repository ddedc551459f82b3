"""Slack OAuth distribution end to end: a real headless Chromium installs the app from
`bridge serve`'s /slack/install through the fake Slack's consent page, then the
workspace's events are answered with its own token, until it uninstalls.

The whole `bridge serve` web app runs (Services + build_web_app) with the real bolt
OAuth flow, our stores on SQLite, and the mock backend.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.fernet import Fernet

from bridge.app import Services, plan_platforms
from bridge.config import Settings, load_settings
from bridge.model import Question, ThreadKey
from bridge.render import INTERRUPTED_NOTICE
from bridge.store import open_store
from bridge.testing.browser import Chromium, Page
from bridge.testing.fake_slack import FakeSlack, signed_headers
from bridge.testing.mock_backend import MockBackend

SECRET = "oauth-mode-signing-secret"
TEAM, TEAM_NAME = "TONE", "Team One"


@pytest.fixture
def chromium(request: pytest.FixtureRequest) -> Path:
    """The system Chromium; skipped (or failed under BRIDGE_TEST_STRICT=1) without it."""
    find = request.getfixturevalue("require_program")
    return Path(
        find(
            "chromium",
            needed_for="the Slack install browser tests",
            install="apt-get install chromium",
        )
    )


@dataclass
class Deployment:
    """A running `bridge serve` in OAuth mode, with its fakes."""

    url: str
    slack: FakeSlack
    mock: MockBackend
    settings: Settings
    services: Services
    db_path: Path

    def rows(self) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db_path) as conn:
            return conn.execute(
                "SELECT enterprise_id, team_id, bot_user_id, sealed FROM slack_installations"
            ).fetchall()

    async def post_event(self, event: dict[str, Any], team_id: str = TEAM) -> int:
        body = json.dumps(self.slack.event_body(event, team_id=team_id)).encode()
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{self.url}/slack/events", data=body, headers=signed_headers(SECRET, body)
            ) as response,
        ):
            return response.status

    async def install(self, page: Page, *, choice: str = "#allow") -> str:
        """Walk through the install as a person would; the final page's text."""
        await page.goto(f"{self.url}/slack/install")
        assert "Add the bot to Slack" in await page.text("h1")
        await page.click("#add-to-slack")
        assert (await page.url()).startswith(self.slack.url + "/oauth/v2/authorize")
        assert self.slack.oauth.installing[1] in await page.text("h1")
        await page.click(choice)
        assert (await page.url()).startswith(f"{self.url}/slack/oauth_redirect")
        return await page.text("body")


@asynccontextmanager
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    async with FakeSlack() as slack, MockBackend(delay=0.005) as mock:
        db_path = tmp_path / "bridge.db"
        settings = load_settings(
            slack_client_id=slack.oauth.client_id,
            slack_client_secret=slack.oauth.client_secret,
            slack_signing_secret=SECRET,
            slack_api_url=slack.api_url,
            slack_authorize_url=f"{slack.url}/oauth/v2/authorize",
            bridge_secret_key=Fernet.generate_key().decode(),
            database_url=f"sqlite:///{db_path}",
            wonderchat_chatbot_id=mock.chatbot_id,
            wonderchat_api_url=mock.url,
            bridge_edit_interval=0.05,
            bridge_user_rate_per_minute=0,
        )
        from bridge.web import STARTED, build_web_app

        plan = plan_platforms(settings, http=True)
        services = Services(settings, plan)
        app = build_web_app(services, slack_signing_secret=SECRET, slack_oauth=True)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}"
        slack.oauth.redirect_url = f"{url}/slack/oauth_redirect"
        slack.oauth.installing = (TEAM, TEAM_NAME)
        try:
            await app[STARTED]
            yield Deployment(url, slack, mock, settings, services, db_path)
        finally:
            await runner.cleanup()


async def leave_stale_turn(bridge: Deployment, reply_ts: str) -> None:
    """A turn of a process that stopped mid-answer, whose reply is `reply_ts` in TEAM."""
    store = await open_store(bridge.settings.database_url)
    try:
        thread = ThreadKey("slack", TEAM, "C1", "1.000001")
        question = Question(thread=thread, user_id="U1", text="cut off", event_id="EvDEAD")
        await store.claim_turn(question, backend="wonderchat", owner="a-process-that-died")
        await store.update_turn(
            "slack", "EvDEAD", status="streaming", reply_channel="C1", reply_message_ids=[reply_ts]
        )
        await store.sign_off("a-process-that-died")  # gone: its turns are orphans at once
    finally:
        await store.close()


def mention(slack: FakeSlack, text: str, ts: str, team: str = TEAM) -> dict[str, Any]:
    return {
        "type": "app_mention",
        "user": "U1",
        "channel": "C1",
        "ts": ts,
        "text": f"<@{slack.bot_user_id}> {text}",
        "team": team,
    }


def answered(slack: FakeSlack, ts: str) -> Callable[[], bool]:
    return lambda: (
        any(
            m.thread_ts == ts and not m.streaming and "▌" not in m.text
            for m in slack.messages.values()
        )
        and bool(slack.replies("C1", ts))
    )


async def test_install_in_a_browser_then_answer_with_the_workspace_token_until_uninstalled(
    tmp_path: Path, chromium: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with deployment(tmp_path) as bridge, Chromium.launch(chromium) as page:
        result = await bridge.install(page)
        assert "Installed" in result and TEAM_NAME in result

        [token] = bridge.slack.oauth.tokens
        [(enterprise, team, bot_user, sealed)] = bridge.rows()
        assert (enterprise, team, bot_user) == ("", TEAM, bridge.slack.bot_user_id)
        assert token not in sealed and "xoxb" not in sealed  # encrypted at rest
        assert token not in caplog.text

        status = await bridge.post_event(mention(bridge.slack, "hello from team one", "1.000001"))
        assert status == 200
        await bridge.slack.wait_until(answered(bridge.slack, "1.000001"))
        replies = [call for call in bridge.slack.calls if call.method.startswith("chat.")]
        assert replies and all(call in bridge.slack.calls_with_token(token) for call in replies)
        assert [r.json["question"] for r in bridge.mock.requests] == ["hello from team one"]

        # A second workspace installs too; each is answered with its own token.
        bridge.slack.oauth.installing = ("TTWO", "Team Two")
        assert "Team Two" in await bridge.install(page)
        [second] = [t for t, team in bridge.slack.oauth.tokens.items() if team == "TTWO"]
        before = len(bridge.slack.calls)
        assert (
            await bridge.post_event(mention(bridge.slack, "hi", "2.000001", "TTWO"), "TTWO") == 200
        )
        await bridge.slack.wait_until(answered(bridge.slack, "2.000001"))
        replies = [c for c in bridge.slack.calls[before:] if c.method.startswith("chat.")]
        assert replies and all(call in bridge.slack.calls_with_token(second) for call in replies)
        assert {team for _, team, _, _ in bridge.rows()} == {TEAM, "TTWO"}

        # An answer cut off in this workspace is marked interrupted with its own token.
        [reply] = bridge.slack.replies("C1", "1.000001")
        await leave_stale_turn(bridge, reply.ts)
        await bridge.slack.wait_until(lambda: INTERRUPTED_NOTICE in reply.text, within=30)
        [edit] = [c for c in bridge.slack.calls_to("chat.update") if c.params["ts"] == reply.ts][
            -1:
        ]
        assert edit in bridge.slack.calls_with_token(token)

        # Uninstall: Slack revokes the token and says so; the installation is deleted.
        bridge.slack.oauth.revoke(TEAM)
        uninstalled = {"type": "app_uninstalled"}
        assert await bridge.post_event(uninstalled) == 200
        await bridge.slack.wait_until(lambda: {team for _, team, _, _ in bridge.rows()} == {"TTWO"})
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert await bridge.post_event(mention(bridge.slack, "still there?", "1.000002")) == 200
        assert not bridge.slack.replies("C1", "1.000002")
        assert len(bridge.mock.requests) == 2
        assert f"Slack event from team {TEAM} not answered" in caplog.text
        assert token not in caplog.text


async def test_a_denied_install_and_a_replayed_state_get_readable_pages(
    tmp_path: Path, chromium: Path
) -> None:
    async with deployment(tmp_path) as bridge, Chromium.launch(chromium) as page:
        denied = await bridge.install(page, choice="#cancel")
        assert "Installation failed" in denied and "cancelled" in denied
        assert not bridge.rows()

        await bridge.install(page)
        redirect = await page.url()  # code and state, both already used
        await page.goto(redirect)
        replayed = await page.text("body")
        assert "Installation failed" in replayed and "expired or was already used" in replayed
        assert len(bridge.rows()) == 1


async def test_a_failing_oauth_access_is_explained(tmp_path: Path, chromium: Path) -> None:
    async with deployment(tmp_path) as bridge, Chromium.launch(chromium) as page:
        bridge.slack.oauth.access_error = "invalid_client"
        text = await bridge.install(page)
        assert "Slack refused to complete the installation" in text
        assert "SLACK_CLIENT_ID" in text and not bridge.rows()
