"""The error types say what they are: attributes set by their own constructors."""

from __future__ import annotations

import aiohttp
import pytest

from bridge.backends.widget import WidgetClient
from bridge.backends.wonderchat import WonderchatClient
from bridge.config import load_settings
from bridge.errors import ConfigError, PlatformRateLimited, PlatformUnreachable


def test_unreachable_is_a_rate_limit_to_wait_out_with_its_own_message() -> None:
    error = PlatformUnreachable(2.0, "slack", "ClientConnectorError")
    assert isinstance(error, PlatformRateLimited)  # callers wait and retry either way
    assert (error.retry_after, error.platform) == (2.0, "slack")
    assert str(error) == "slack unreachable (ClientConnectorError); retry after 2.0s"
    assert str(PlatformRateLimited(1.5, "discord")) == "discord rate limited; retry after 1.5s"


async def test_a_client_without_its_settings_is_a_config_error() -> None:
    settings = load_settings(_env_file=None)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ConfigError, match="WONDERCHAT_CHATBOT_ID"):
            WonderchatClient.from_settings(settings, session)
        with pytest.raises(ConfigError, match="WIDGET_API_URL and WIDGET_API_KEY"):
            WidgetClient.from_settings(settings, session)
