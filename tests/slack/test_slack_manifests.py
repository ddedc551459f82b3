"""The Slack app manifests parse and ask for exactly what the adapter uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.slack.private import ASK_COMMAND
from bridge.slack.shortcuts import SHORTCUT_CALLBACK_ID

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"

# Each event subscription and the scope Slack requires for it.
EVENT_SCOPES = {
    "app_mention": "app_mentions:read",
    "message.im": "im:history",
    "message.channels": "channels:history",
    "message.groups": "groups:history",
    "message.mpim": "mpim:history",
    "assistant_thread_started": "assistant:write",
}
# Web API methods the bridge calls need these (chat.* streaming included); shortcuts and
# slash commands need `commands`.
METHOD_SCOPES = {"chat:write", "assistant:write", "commands"}


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((MANIFESTS / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", ["slack.yaml", "slack-http.yaml"])
def test_manifest_subscribes_to_every_event_with_its_scope_and_nothing_more(name: str) -> None:
    manifest = load(name)
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert events == set(EVENT_SCOPES)
    assert scopes == set(EVENT_SCOPES.values()) | METHOD_SCOPES
    features = manifest["features"]
    assert features["app_home"]["messages_tab_enabled"] is True
    assert features["bot_user"]["display_name"]
    assert "assistant_view" in features


def test_socket_mode_manifest_needs_no_request_url() -> None:
    settings = load("slack.yaml")["settings"]
    assert settings["socket_mode_enabled"] is True
    assert "request_url" not in settings["event_subscriptions"]


def test_http_manifest_points_at_the_events_route() -> None:
    settings = load("slack-http.yaml")["settings"]
    assert settings["socket_mode_enabled"] is False
    url = settings["event_subscriptions"]["request_url"]
    assert url.startswith("https://") and url.endswith("/slack/events")


# Keys Slack's app manifest schema defines at these levels (a typo would be rejected).
TOP_LEVEL_KEYS = {"_metadata", "display_information", "features", "oauth_config", "settings"}
SETTINGS_KEYS = {
    "allowed_ip_address_ranges",
    "event_subscriptions",
    "incoming_webhooks",
    "interactivity",
    "org_deploy_enabled",
    "socket_mode_enabled",
    "token_rotation_enabled",
    "function_runtime",
}


@pytest.mark.parametrize("name", ["slack.yaml", "slack-http.yaml"])
def test_manifest_uses_only_schema_keys(name: str) -> None:
    manifest = load(name)
    assert set(manifest) <= TOP_LEVEL_KEYS
    assert set(manifest["settings"]) <= SETTINGS_KEYS
    assert set(manifest["settings"]["event_subscriptions"]) <= {"request_url", "bot_events"}
    assert len(manifest["display_information"]["name"]) <= 35
    assert len(manifest["display_information"]["description"]) <= 140


@pytest.mark.parametrize("name", ["slack.yaml", "slack-http.yaml"])
def test_manifest_carries_the_ask_about_this_shortcut(name: str) -> None:
    manifest = load(name)
    [shortcut] = manifest["features"]["shortcuts"]
    assert shortcut["type"] == "message" and shortcut["callback_id"] == SHORTCUT_CALLBACK_ID
    assert shortcut["name"].startswith("Ask ") and len(shortcut["name"]) <= 25
    assert 0 < len(shortcut["description"]) <= 150
    interactivity = manifest["settings"]["interactivity"]
    assert interactivity["is_enabled"] is True
    if name == "slack-http.yaml":
        assert interactivity["request_url"].endswith("/slack/events")


def test_http_manifest_has_the_oauth_redirect_and_the_scopes_the_install_asks_for() -> None:
    from bridge.slack.oauth import BOT_SCOPES, REDIRECT_PATH

    manifest = load("slack-http.yaml")
    [redirect] = manifest["oauth_config"]["redirect_urls"]
    assert redirect.startswith("https://") and redirect.endswith(REDIRECT_PATH)
    assert set(BOT_SCOPES) == set(manifest["oauth_config"]["scopes"]["bot"])


@pytest.mark.parametrize("name", ["slack.yaml", "slack-http.yaml"])
def test_manifest_carries_the_private_ask_command(name: str) -> None:
    [command] = load(name)["features"]["slash_commands"]
    assert command["command"] == ASK_COMMAND and command["should_escape"] is False
    assert command["description"] and command["usage_hint"]
    if name == "slack-http.yaml":
        assert command["url"].endswith("/slack/events")
    else:
        assert "url" not in command
