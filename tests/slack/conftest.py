"""A whole bridge for Slack end-to-end tests: fake Slack + mock backend + real runtime.

The real slack-bolt app, relay, store (SQLite in tmp_path), renderer and backend client
run against local servers; tests push events and read what the fake Slack shows.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import pytest

from bridge.config import Settings, load_settings
from bridge.runtime import open_runtime
from bridge.slack import SlackAdapter
from bridge.slack.budget import SlackRates
from bridge.testing.fake_slack import FakeMessage, FakeSlack
from bridge.testing.mock_backend import MockBackend
from bridge.testing.slack_limits import SlackLimits

MOCK_DELAY = 0.005  # seconds between mock chunks: several visible edits, still quick
# The fake Slack enforces Slack's production limits with its clock running this much
# faster, and the bridge's budgets are scaled alike: production proportions, test speed.
TEST_SPEED = 100.0
FAST_RATES = SlackRates().scaled(TEST_SPEED)


@dataclass
class Bridge:
    """Handles on one running bridge, plus helpers to build events."""

    slack: FakeSlack
    mock: MockBackend
    adapter: SlackAdapter
    settings: Settings
    relay: Any
    runtime: Any = None  # the Runtime: its store, feedback and hand-off services
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def next_ts(self) -> str:
        return f"1600000000.{next(self._ts):06d}"

    def mention(
        self, text: str, *, channel: str = "C1", thread_ts: str | None = None, user: str = "U1"
    ) -> dict[str, Any]:
        event = {
            "type": "app_mention",
            "user": user,
            "channel": channel,
            "ts": self.next_ts(),
            "text": f"<@{self.slack.bot_user_id}> {text}",
            "team": self.slack.team_id,
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        return self.slack.event_body(event)

    def message(
        self,
        text: str,
        *,
        channel: str = "C1",
        channel_type: str = "channel",
        thread_ts: str | None = None,
        user: str = "U1",
        **extra: Any,
    ) -> dict[str, Any]:
        event = {
            "type": "message",
            "user": user,
            "channel": channel,
            "channel_type": channel_type,
            "ts": self.next_ts(),
            "text": text,
            "team": self.slack.team_id,
            **extra,
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        return self.slack.event_body(event)

    async def deliver(self, body: dict[str, Any], *, retry_attempt: int = 0) -> None:
        """Send over Socket Mode and wait for bolt's acknowledgement."""
        envelope = await self.slack.send_event(body, retry_attempt=retry_attempt)
        await self.slack.wait_for_ack(envelope)

    async def answered(
        self, channel: str, thread_ts: str | None, *, count: int = 1
    ) -> list[FakeMessage]:
        """Wait until the thread holds `count` bot messages and no answer is running."""
        await self.slack.wait_until(
            lambda: (
                len(self.slack.replies(channel, thread_ts)) >= count
                and self.relay.active_count == 0
                and not any(m.streaming for m in self.slack.replies(channel, thread_ts))
            )
        )
        return self.slack.replies(channel, thread_ts)


def bridge_settings(
    slack: FakeSlack, mock: MockBackend, tmp_path: Path, backend: str, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": slack.bot_token,
        "slack_app_token": slack.app_token,
        "slack_api_url": slack.api_url,
        "database_url": f"sqlite:///{tmp_path / 'bridge.db'}",
        "bridge_edit_interval": 0.05,
        "bridge_user_rate_per_minute": 0,
        "bridge_backend": backend,
    }
    if backend == "widget":
        values |= {"widget_api_url": mock.url, "widget_api_key": mock.api_key}
    else:
        values |= {"wonderchat_chatbot_id": mock.chatbot_id, "wonderchat_api_url": mock.url}
    return load_settings(**(values | overrides))


@asynccontextmanager
async def _running_bridge(
    tmp_path: Path,
    *,
    backend: str = "wonderchat",
    rates: SlackRates | None = None,
    session: aiohttp.ClientSession | None = None,
    limits: SlackLimits | None = None,
    feedback: bool = False,
    slack: FakeSlack | None = None,
    mock: MockBackend | None = None,
    **overrides: Any,
) -> AsyncIterator[Bridge]:
    """Start fake Slack (`limits`: Slack's production limits at TEST_SPEED by default),
    mock backend, runtime and the Slack adapter; stop them after.

    `session` replaces the runtime's for Slack calls (a test that traces them). A test
    that passes checks that bolt acknowledged every envelope within Slack's 3 s (the
    fake re-delivers late ones, as Slack does) and that the bridge met no 429 but those
    the test asked for: the fake enforces Slack's limits, the bridge claims to pace.
    `feedback` turns on the answer buttons (as `bridge run` does); `slack` and `mock`
    reuse running fakes (a restart).
    """
    async with contextlib.AsyncExitStack() as fakes:
        if slack is None:
            fake = FakeSlack(limits=limits or SlackLimits(speed=TEST_SPEED))
            slack = await fakes.enter_async_context(fake)
        if mock is None:
            mock = await fakes.enter_async_context(MockBackend(delay=MOCK_DELAY))
        settings = bridge_settings(slack, mock, tmp_path, backend, **overrides)
        async with open_runtime(settings) as runtime:
            quality = (
                {"feedback": runtime.feedback, "handoffs": runtime.handoffs} if feedback else {}
            )
            adapter = SlackAdapter(
                settings,
                runtime.relay,
                session=session or runtime.pools.slack,
                rates=rates or FAST_RATES,
                **quality,
            )
            await adapter.start()
            try:
                yield Bridge(slack, mock, adapter, settings, runtime.relay, runtime)
                assert not slack.socket_mode.late_acks, "an envelope was acknowledged late"
                assert not slack.redeliveries, "an envelope went unacknowledged"
                limited = sum(1 for _method, error in slack.refused if error == "ratelimited")
                assert limited <= slack.asked_429s, "the bridge broke a Slack rate limit"
            finally:
                await runtime.relay.drain(5.0)
                await adapter.stop()


class StartBridge(Protocol):
    def __call__(
        self,
        *,
        backend: str = ...,
        rates: SlackRates | None = ...,
        session: aiohttp.ClientSession | None = ...,
        limits: SlackLimits | None = ...,
        **overrides: Any,
    ) -> AbstractAsyncContextManager[Bridge]: ...


@pytest.fixture
def running_bridge(tmp_path: Path) -> StartBridge:
    """`async with running_bridge(**settings_overrides) as bridge:` — a bridge on Socket Mode."""

    def start(**options: Any) -> AbstractAsyncContextManager[Bridge]:
        return _running_bridge(tmp_path, **options)

    return start
