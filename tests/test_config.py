"""The configuration contract: names, parsing, readable errors, secrets kept secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.config import Settings, load_settings
from bridge.errors import ConfigError

CONTRACT_VARIABLES = [
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "SLACK_SIGNING_SECRET",
    "DISCORD_TOKEN",
    "BRIDGE_BACKEND",
    "WONDERCHAT_CHATBOT_ID",
    "WONDERCHAT_API_URL",
    "WIDGET_API_URL",
    "WIDGET_API_KEY",
    "WIDGET_MODEL",
    "DATABASE_URL",
    "PORT",
    "SLACK_API_URL",
    "DISCORD_API_URL",
    "DISCORD_GATEWAY_URL",
    "BRIDGE_EDIT_INTERVAL",
    "BRIDGE_ALLOWED_CHANNELS",
    "BRIDGE_ALLOWED_GUILDS",
    "BRIDGE_ALLOWED_USERS",
    "LOG_LEVEL",
    "LOG_FORMAT",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No stray variable or .env of the machine running the tests leaks in."""
    for name in list(os.environ):
        if name.startswith(("SLACK_", "DISCORD_", "BRIDGE_", "WIDGET_", "WONDERCHAT_", "LOG_")):
            monkeypatch.delenv(name)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.chdir(tmp_path)


def test_every_design_variable_is_a_setting() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    assert set(CONTRACT_VARIABLES) <= fields


def test_defaults_need_nothing() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite:///bridge.db"
    assert settings.wonderchat_api_url == "https://app.wonderchat.io"
    assert not settings.slack_configured and not settings.discord_configured


def test_bad_value_is_one_readable_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_EDIT_INTERVAL", "soon")
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "BRIDGE_EDIT_INTERVAL" in message and "'soon'" in message
    assert "LOG_FORMAT" in message
    assert "Traceback" not in message


def test_bad_value_on_the_command_line_exits_2_without_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "PORT": "eighty"}
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "migrate"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "PORT" in result.stderr and "Traceback" not in result.stderr


def test_lists_accept_commas_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_ALLOWED_USERS", " U1, U2 ,,")
    monkeypatch.setenv("BRIDGE_ALLOWED_CHANNELS", '["C1", "C2"]')
    monkeypatch.setenv("SLACK_SUGGESTED_PROMPTS", "What's new?|Summarize, briefly, the docs")
    settings = load_settings()
    assert settings.bridge_allowed_users == {"U1", "U2"}
    assert settings.bridge_allowed_channels == {"C1", "C2"}
    assert settings.slack_suggested_prompts == ("What's new?", "Summarize, briefly, the docs")


def test_empty_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLACK_BOT_TOKEN", "BRIDGE_BACKEND", "DISCORD_GUILD_ID", "PORT"):
        monkeypatch.setenv(name, "")
    settings = load_settings()
    assert settings.slack_bot_token is None and settings.bridge_backend is None
    assert settings.discord_guild_id is None and settings.port == 8080


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WONDERCHAT_CHATBOT_ID=bot-from-file\nLOG_LEVEL=DEBUG\n")
    settings = load_settings()
    assert settings.wonderchat_chatbot_id == "bot-from-file"
    assert settings.log_level == "debug"


def test_secrets_never_show_in_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-very-secret-value")
    monkeypatch.setenv("WIDGET_API_KEY", "wk-very-secret-value")
    settings = load_settings()
    shown = f"{settings!r} {settings} {settings.model_dump()}"
    assert "very-secret" not in shown
    assert sorted(settings.secret_values()) == ["wk-very-secret-value", "xoxb-very-secret-value"]


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"WONDERCHAT_CHATBOT_ID": "b"}, "wonderchat"),
        ({"WIDGET_API_URL": "http://h", "WIDGET_API_KEY": "k"}, "widget"),
        (
            {
                "WONDERCHAT_CHATBOT_ID": "b",
                "WIDGET_API_URL": "http://h",
                "WIDGET_API_KEY": "k",
                "BRIDGE_BACKEND": "Widget",
            },
            "widget",
        ),
    ],
)
def test_backend_choice(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], expected: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert load_settings().backend_name() == expected


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({}, "WONDERCHAT_CHATBOT_ID"),
        ({"BRIDGE_BACKEND": "widget", "WIDGET_API_URL": "http://h"}, "WIDGET_API_KEY"),
        ({"BRIDGE_BACKEND": "wonderchat"}, "WONDERCHAT_CHATBOT_ID"),
    ],
)
def test_missing_backend_names_the_variables(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=named):
        load_settings().backend_name()


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("WIDGET_API_URL", "nonsense", "http:// or https://"),
        ("WONDERCHAT_API_URL", "app.wonderchat.io", "http:// or https://"),
        ("SLACK_API_URL", "http://127.0.0.1:99999/api/", "http:// or https://"),
        ("DISCORD_API_URL", "ftp://discord.com/api", "http:// or https://"),
        ("DISCORD_GATEWAY_URL", "https://gateway.discord.gg", "ws:// or wss://"),
    ],
)
def test_urls_are_checked_at_start_and_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == (
        f"invalid configuration: {variable}: must be a URL starting with {expected} (got {value!r})"
    )


def test_a_half_configured_widget_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIDGET_API_KEY", "key")
    with pytest.raises(ConfigError, match=r"^the Widget API needs WIDGET_API_URL too"):
        load_settings().backend_name()
    monkeypatch.setenv("BRIDGE_BACKEND", "widget")
    with pytest.raises(ConfigError, match=r"^BRIDGE_BACKEND=widget needs WIDGET_API_URL to be"):
        load_settings().backend_name()


def test_with_both_backends_wonderchat_wins_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WONDERCHAT_CHATBOT_ID", "bot")
    assert load_settings().backend_rule() is None
    monkeypatch.setenv("WIDGET_API_URL", "https://widget.example.com")
    monkeypatch.setenv("WIDGET_API_KEY", "key")
    settings = load_settings()
    assert settings.backend_name() == "wonderchat"
    assert settings.backend_rule() == (
        "both backends are configured and BRIDGE_BACKEND is unset, so Wonderchat is used "
        "(set BRIDGE_BACKEND=widget for the Widget API)"
    )
    monkeypatch.setenv("BRIDGE_BACKEND", "widget")
    assert load_settings().backend_rule() is None
