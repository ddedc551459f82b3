"""Deployment files (Procfile, app.json, Dockerfile) and the start-up configuration rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bridge.app import PlatformPlan, plan_platforms
from bridge.config import Settings, load_settings
from bridge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def test_procfile_declares_web_and_worker() -> None:
    assert procfile() == {"web": "bridge serve", "worker": "bridge run"}


def test_procfile_commands_exist_in_the_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["bridge"] == "bridge.cli:main"
    from bridge.cli import build_parser

    for command in procfile().values():
        args = build_parser().parse_args(command.split()[1:])
        assert callable(args.handler)


def test_app_json_describes_real_settings() -> None:
    manifest = json.loads((ROOT / "app.json").read_text())
    assert manifest["buildpacks"] == [{"url": "heroku/python"}]
    assert set(manifest["formation"]) == set(procfile())
    assert (
        manifest["formation"]["web"]["quantity"] + manifest["formation"]["worker"]["quantity"] == 1
    ), "exactly one process: two would answer Discord messages twice"
    fields = {name.upper() for name in Settings.model_fields}
    env = manifest["env"]
    # Every setting a Heroku user would set; test hooks and platform-set values excluded.
    omitted = {
        "PORT",
        "DATABASE_URL",
        "SLACK_API_URL",
        "SLACK_AUTHORIZE_URL",
        "DISCORD_API_URL",
        "DISCORD_GATEWAY_URL",
    }
    assert set(env) == fields - omitted, (fields - omitted) ^ set(env)
    secrets = {"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "DISCORD_TOKEN"}
    backends = {"WONDERCHAT_CHATBOT_ID", "WIDGET_API_URL", "WIDGET_API_KEY", "BRIDGE_BACKEND"}
    assert secrets | backends <= set(env)
    for name, spec in env.items():
        assert spec["description"].strip(), name
        # Only the platforms you use need their variables: none is required on its own.
        assert spec["required"] is False, name
        if "value" in spec:  # defaults offered in the form must be valid settings
            load_settings(**{name.lower(): spec["value"]})


def test_app_json_provisions_postgres_so_heroku_keeps_conversations() -> None:
    """A dyno's disk is wiped on every restart; the add-on sets DATABASE_URL instead."""
    manifest = json.loads((ROOT / "app.json").read_text())
    plans = [addon["plan"] for addon in manifest["addons"]]
    assert plans == ["heroku-postgresql:essential-0"]
    assert manifest["addons"][0]["as"] == "DATABASE"  # the add-on then sets DATABASE_URL
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    assert "heroku-postgresql:essential-0" in deploy and "addons:destroy" in deploy


def test_dockerfile_runs_unprivileged_with_both_processes_documented() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in dockerfile.splitlines()]
    assert next(line for line in lines if line.startswith("FROM")) == "FROM python:3.11-slim"
    assert "RUN pip install '.[postgres]' \\" in lines
    user_lines = [line for line in lines if line.startswith("USER ")]
    assert user_lines and user_lines[-1] not in ("USER root", "USER 0")
    assert lines[-1] == 'CMD ["bridge", "serve"]'
    assert "bridge run" in dockerfile
    for line in lines:
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {".env", ".git", "*.db"} <= set(ignored)


def test_docs_exist_and_name_the_commands() -> None:
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    for text in ("heroku config:set", "git push heroku main", "heroku ps:scale", "bridge check"):
        assert text in deploy
    operations = (ROOT / "docs" / "operations.md").read_text()
    for text in ("/healthz", "/readyz", "/metrics", "BRIDGE_DRAIN_SECONDS", "LOG_FORMAT"):
        assert text in operations


@pytest.mark.parametrize(
    ("overrides", "http", "expected"),
    [
        ({"slack_bot_token": "xoxb-1", "slack_app_token": "xapp-1"}, False, (True, False, False)),
        ({"slack_bot_token": "xoxb-1", "slack_signing_secret": "s"}, True, (True, True, False)),
        ({"discord_token": "d"}, False, (False, False, True)),
        (
            {"slack_bot_token": "xoxb-1", "slack_signing_secret": "s", "discord_token": "d"},
            False,  # `run` cannot receive HTTP events: Slack is left out, Discord runs
            (False, False, True),
        ),
        (
            {
                "slack_bot_token": "xoxb-1",
                "slack_app_token": "xapp-1",
                "slack_signing_secret": "s",
                "discord_token": "d",
            },
            True,
            (True, True, True),
        ),
    ],
)
def test_platform_plan(overrides: dict[str, str], http: bool, expected: tuple[bool, ...]) -> None:
    assert plan_platforms(load_settings(**overrides), http=http) == PlatformPlan(*expected)


@pytest.mark.parametrize(
    ("overrides", "http", "message"),
    [
        ({}, False, "SLACK_APP_TOKEN"),
        ({}, True, "DISCORD_TOKEN"),
        ({"slack_bot_token": "xoxb-1", "slack_signing_secret": "s"}, False, "bridge serve"),
        ({"slack_app_token": "xapp-1", "discord_token": "d"}, False, "SLACK_BOT_TOKEN is missing"),
    ],
)
def test_platform_plan_refuses(overrides: dict[str, str], http: bool, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        plan_platforms(load_settings(**overrides), http=http)


@pytest.mark.parametrize("command", ["run", "serve"])
def test_cli_without_platforms_exits_2_naming_variables(command: str, tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "WONDERCHAT_CHATBOT_ID": "bot", "PORT": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "bridge", command],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "SLACK_BOT_TOKEN" in result.stderr and "DISCORD_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "bridge.db").exists(), "refused before opening anything"
