"""Helpers for the backend tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from bridge.backends.base import ChatBackend
from bridge.backends.events import AnswerEvent
from bridge.config import Settings
from bridge.testing.mock_backend import MockBackend

# Small timeouts keep failure tests quick; generous enough for a loaded 2-core machine.
FAST = {
    "bridge_connect_timeout": 5.0,
    "bridge_first_event_timeout": 5.0,
    "bridge_idle_timeout": 5.0,
    "bridge_backend_retries": 2,
}
COLLECT_TIMEOUT = 30.0  # waiting for a whole answer; never a speed assertion

ClientFactory = Callable[..., ChatBackend]


def mock_settings(mock: MockBackend, backend: str, **overrides: Any) -> Settings:
    """Settings pointing `backend` at the mock, ignoring any `.env` file."""
    values: dict[str, Any] = {
        "bridge_backend": backend,
        "wonderchat_chatbot_id": mock.chatbot_id,
        "wonderchat_api_url": mock.url,
        "widget_api_url": mock.url,
        "widget_api_key": mock.api_key,
        **FAST,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def collect(events: AsyncIterator[AnswerEvent]) -> list[AnswerEvent]:
    async with asyncio.timeout(COLLECT_TIMEOUT):
        return [event async for event in events]


async def wait_until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Poll a condition another task or server changes; `within` is a generous bound."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - the condition lives in other code
            await asyncio.sleep(0.02)
