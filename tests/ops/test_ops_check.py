"""`bridge check` against the fake Discord, the mock backend and real SQLite files."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bridge.check import run_check
from bridge.config import Settings, load_settings
from bridge.testing.fake_discord import FakeDiscord
from bridge.testing.fake_slack import FakeSlack
from bridge.testing.mock_backend import MockBackend

DISCORD_TOKEN = "MTA4NzY1NDMyMTA5ODc2NTQzMg.GhIjKl.abcdefghijklmnopqrstuvwxyz0123456789"
WIDGET_KEY = "wk_live_0123456789secret"
BOT_TOKEN = "xoxb-777-888-CheckTestBotToken"
APP_TOKEN = "xapp-1-A777-999-CheckTestAppToken"
SIGNING_SECRET = "fedcba9876543210fedcba9876543210"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """`run_check` configures logging for the whole process, as the CLI needs; undo it so
    later tests see pytest's logging set-up."""
    root = logging.getLogger()
    handlers, level, excepthook = list(root.handlers), root.level, sys.excepthook
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.excepthook = excepthook


@pytest.fixture
async def discord() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN) as fake:
        yield fake


@pytest.fixture
async def mock() -> AsyncIterator[MockBackend]:
    async with MockBackend(api_key=WIDGET_KEY) as backend:
        yield backend


def discord_settings(
    discord: FakeDiscord, mock: MockBackend, tmp_path: Path, **overrides: object
) -> Settings:
    values: dict[str, object] = {
        "discord_token": DISCORD_TOKEN,
        "discord_api_url": discord.api_url,
        "widget_api_url": mock.url,
        "widget_api_key": WIDGET_KEY,
        "database_url": f"sqlite:///{tmp_path / 'bridge.db'}",
    }
    values.update(overrides)
    return load_settings(**values)


async def check(settings: Settings) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = await run_check(settings, output=lines.append)
    return code, lines


def files_in(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def line_for(lines: list[str], item: str) -> str:
    matches = [line for line in lines if line[2:].startswith(item + ":")]
    assert len(matches) == 1, (item, lines)
    return matches[0]


async def test_everything_configured_passes(
    discord: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    code, lines = await check(discord_settings(discord, mock, tmp_path))
    assert code == 0, lines
    assert line_for(lines, "Discord bot token").startswith("✓")
    assert "bridge-bot" in line_for(lines, "Discord bot token")
    assert line_for(lines, "Backend (widget)").startswith("✓")
    assert line_for(lines, "Database").startswith("✓")
    assert line_for(lines, "Platforms").startswith("✓")
    assert line_for(lines, "Slack").startswith("– Slack: skipped (not configured)")
    assert lines[-1] == "all configured checks passed"
    assert [r.path for r in mock.requests] == ["/api/v1/chat/completions"]
    assert files_in(tmp_path) == []  # a check creates no file
    assert "does not exist yet; the first start creates it" in line_for(lines, "Database")
    output = "\n".join(lines)
    assert DISCORD_TOKEN not in output and WIDGET_KEY not in output


async def test_bad_discord_token_fails_with_fix(
    discord: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    discord.fail_next("GET", r"^/users/@me$", status=401, message="401: Unauthorized")
    code, lines = await check(discord_settings(discord, mock, tmp_path))
    assert code == 1
    failure = line_for(lines, "Discord bot token")
    assert failure.startswith("✗") and "HTTP 401" in failure
    fix = lines[lines.index(failure) + 1]
    assert fix.strip().startswith("fix:") and "DISCORD_TOKEN" in fix
    assert lines[-1] == "1 problem found"
    assert DISCORD_TOKEN not in "\n".join(lines)


@pytest.mark.parametrize("enabled_in_portal", [True, False])
async def test_message_content_intent_matches_the_portal(
    mock: MockBackend, tmp_path: Path, enabled_in_portal: bool
) -> None:
    async with FakeDiscord(message_content_enabled=enabled_in_portal) as discord:
        settings = discord_settings(discord, mock, tmp_path, discord_message_content=True)
        code, lines = await check(settings)
        assert discord.requests_to("GET", r"^/oauth2/applications/@me$")
    assert code == (0 if enabled_in_portal else 1)
    mark = "✓" if enabled_in_portal else "✗"
    assert line_for(lines, "Discord message content intent").startswith(mark)


async def test_wrong_backend_key_and_unusable_database(
    discord: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    wrong_key = "wk_live_wrong_key_987654"
    settings = discord_settings(
        discord, mock, tmp_path, widget_api_key=wrong_key, database_url="postgres://u:p@h/db"
    )
    code, lines = await check(settings)
    assert code == 1
    backend = line_for(lines, "Backend (widget)")
    assert backend.startswith("✗")
    assert "WIDGET_API_KEY" in lines[lines.index(backend) + 1]
    assert line_for(lines, "Database").startswith("✗")
    assert lines[-1] == "2 problems found"
    assert wrong_key not in "\n".join(lines)


async def test_nothing_configured(tmp_path: Path) -> None:
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'b.db'}")
    code, lines = await check(settings)
    assert code == 1
    assert line_for(lines, "Platforms").startswith("✗")
    assert "DISCORD_TOKEN" in line_for(lines, "Platforms")
    assert line_for(lines, "Backend").startswith("✗")
    assert line_for(lines, "Discord").startswith("–")


async def test_cli_check_exit_code_and_output(
    discord: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    """The real `bridge check` command, as a deploy script would run it."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DISCORD_TOKEN": DISCORD_TOKEN,
        "DISCORD_API_URL": discord.api_url,
        "WIDGET_API_URL": mock.url,
        "WIDGET_API_KEY": WIDGET_KEY,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "LOG_LEVEL": "debug",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        "check",
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    output = stdout.decode() + stderr.decode()
    assert proc.returncode == 0, output
    assert "✓ Discord bot token" in output
    assert DISCORD_TOKEN not in output and WIDGET_KEY not in output


def slack_settings(
    slack: FakeSlack, mock: MockBackend, tmp_path: Path, **overrides: object
) -> Settings:
    values: dict[str, object] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_app_token": APP_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": slack.api_url,
        "wonderchat_chatbot_id": mock.chatbot_id,
        "wonderchat_api_url": mock.url,
        "database_url": f"sqlite:///{tmp_path / 'bridge.db'}",
    }
    values.update(overrides)
    return load_settings(**values)


async def test_slack_all_credentials_pass(
    slack: FakeSlack, mock: MockBackend, tmp_path: Path
) -> None:
    code, lines = await check(slack_settings(slack, mock, tmp_path))
    assert code == 0, lines
    assert "@bridge in Fake Team" in line_for(lines, "Slack bot token")
    assert line_for(lines, "Slack app token (Socket Mode)").startswith("✓")
    assert line_for(lines, "Slack signing secret (HTTP events)").startswith("✓")
    assert line_for(lines, "Backend (wonderchat)").startswith("✓")
    assert line_for(lines, "Discord").startswith("– Discord: skipped (not configured)")
    assert [call.method for call in slack.calls] == ["auth.test", "apps.connections.open"]
    # The Socket Mode check asks for a URL but never connects the websocket.
    assert slack.calls_to("apps.connections.open")[0].headers["Authorization"].endswith(APP_TOKEN)
    output = "\n".join(lines)
    assert BOT_TOKEN not in output and APP_TOKEN not in output and SIGNING_SECRET not in output


async def test_slack_wrong_tokens_and_malformed_secret(
    slack: FakeSlack, mock: MockBackend, tmp_path: Path
) -> None:
    wrong_bot = "xoxb-000-000-NotTheRightToken"
    malformed_secret = "Not-A-Signing-Secret-123"
    settings = slack_settings(
        slack,
        mock,
        tmp_path,
        slack_bot_token=wrong_bot,
        slack_app_token=BOT_TOKEN,  # a bot token where the app-level token belongs
        slack_signing_secret=malformed_secret,
    )
    code, lines = await check(settings)
    assert code == 1
    bot = line_for(lines, "Slack bot token")
    assert bot.startswith("✗") and "invalid_auth" in bot
    assert "SLACK_BOT_TOKEN" in lines[lines.index(bot) + 1]
    app = line_for(lines, "Slack app token (Socket Mode)")
    assert app.startswith("✗") and "not_allowed_token_type" in app
    assert "connections:write" in lines[lines.index(app) + 1]
    assert line_for(lines, "Slack signing secret (HTTP events)").startswith("✗")
    assert lines[-1] == "3 problems found"
    output = "\n".join(lines)
    for secret in (wrong_bot, BOT_TOKEN, malformed_secret):
        assert secret not in output


async def test_unreachable_slack_api(mock: MockBackend, tmp_path: Path) -> None:
    closed_port = "http://127.0.0.1:9/api/"  # discard port: nothing listens there
    settings = slack_settings(
        FakeSlack(), mock, tmp_path, slack_api_url=closed_port, slack_app_token=None
    )
    code, lines = await check(settings)
    assert code == 1
    bot = line_for(lines, "Slack bot token")
    assert bot.startswith("✗") and "cannot reach the Slack API" in bot
    assert "SLACK_API_URL" in lines[lines.index(bot) + 1]
    assert line_for(lines, "Slack app token (Socket Mode)").startswith("–")


async def test_slack_without_any_event_mode(
    slack: FakeSlack, mock: MockBackend, tmp_path: Path
) -> None:
    settings = slack_settings(
        slack, mock, tmp_path, slack_app_token=None, slack_signing_secret=None
    )
    code, lines = await check(settings)
    assert code == 1
    events = line_for(lines, "Slack events")
    assert events.startswith("✗")
    assert "SLACK_APP_TOKEN" in lines[lines.index(events) + 1]


async def test_check_prints_the_list_only_and_changes_no_file(
    discord: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    """An unreachable backend and a typo, as a new user's first `bridge check` shows them."""
    (tmp_path / ".env").write_text("SLACK_STREEMING=native\n")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DISCORD_TOKEN": DISCORD_TOKEN,
        "DISCORD_API_URL": discord.api_url,
        "WIDGET_API_URL": "http://127.0.0.1:9",  # discard port: nothing listens there
        "WIDGET_API_KEY": WIDGET_KEY,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "check",
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 1
    assert stderr.decode() == ""
    lines = stdout.decode().splitlines()
    # The ✓/✗/–/! list, fix lines and the summary: nothing else (no log lines).
    assert all(line[:2] in ("✓ ", "✗ ", "– ", "! ", "  ") for line in lines[:-1]), lines
    assert lines[0] == (
        "! Variable: SLACK_STREEMING (in .env) is not a bridge setting and is ignored: "
        "did you mean SLACK_STREAMING?"
    )
    backend = "✗ Backend (widget): could not reach the backend, please try again in a minute"
    assert [line for line in lines if line.startswith("✗")] == [backend]  # one message
    assert lines[lines.index(backend) + 1] == (
        "    fix: check WIDGET_API_URL, WIDGET_API_KEY and WIDGET_MODEL"
    )
    assert line_for(lines, "Database") == (
        "✓ Database: bridge.db does not exist yet; the first start creates it (SQLite: keep "
        "the file on a persistent disk, see docs/deploy.md)"
    )
    assert lines[-1] == "1 problem found"
    assert files_in(tmp_path) == [".env"]


async def test_one_missing_slack_app_token_is_one_message(
    slack: FakeSlack, mock: MockBackend, tmp_path: Path
) -> None:
    settings = slack_settings(
        slack, mock, tmp_path, slack_app_token=None, slack_signing_secret=None
    )
    _code, lines = await check(settings)
    assert [line for line in lines if line.startswith("✗")] == [
        "✗ Slack events: neither Socket Mode nor HTTP events is configured, so no event can arrive"
    ]


async def test_the_database_url_example_is_shown_whole(tmp_path: Path) -> None:
    settings = load_settings(database_url="mysql://somewhere/db")
    _code, lines = await check(settings)
    fix = lines[lines.index(line_for(lines, "Database")) + 1]
    assert fix.endswith("or postgres://user:password@host:5432/dbname")


async def test_an_existing_sqlite_file_is_read_not_migrated(tmp_path: Path) -> None:
    database = tmp_path / "old.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at)")
        conn.execute("INSERT INTO schema_migrations VALUES (1, 0)")
    conn.close()
    before = database.read_bytes()
    _code, lines = await check(load_settings(database_url=f"sqlite:///{database}"))
    assert line_for(lines, "Database").startswith(
        f"✓ Database: {database} is at schema version 1; the next start (or `bridge migrate`)"
    )
    assert database.read_bytes() == before
    assert files_in(tmp_path) == ["old.db"]


async def test_with_both_backends_check_says_which_and_why(
    mock: MockBackend, tmp_path: Path
) -> None:
    settings = load_settings(
        wonderchat_chatbot_id=mock.chatbot_id,
        wonderchat_api_url=mock.url,
        widget_api_url=mock.url,
        widget_api_key=WIDGET_KEY,
        database_url=f"sqlite:///{tmp_path / 'b.db'}",
    )
    _code, lines = await check(settings)
    assert line_for(lines, "Backend (wonderchat)").endswith(
        "; both backends are configured and BRIDGE_BACKEND is unset, so Wonderchat is used "
        "(set BRIDGE_BACKEND=widget for the Widget API)"
    )
