"""Fixtures: a running MockBackend, one aiohttp session, a client of each backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from backend_helpers import ClientFactory, mock_settings

from bridge.backends import build_backend
from bridge.backends.base import ChatBackend
from bridge.testing.mock_backend import MockBackend


@pytest.fixture
async def mock() -> AsyncIterator[MockBackend]:
    async with MockBackend(retry_after="0") as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture(params=["wonderchat", "widget"])
def make_client(
    request: pytest.FixtureRequest, mock: MockBackend, session: aiohttp.ClientSession
) -> ClientFactory:
    """Builds the parametrized backend's client against the mock, with setting overrides."""

    def factory(**overrides: Any) -> ChatBackend:
        return build_backend(mock_settings(mock, request.param, **overrides), session)

    return factory
