"""Bad input on the command line: one line with its fix and a documented exit code."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.typos import unknown_variables

OUR_PREFIXES = ("WONDERCHAT_", "WIDGET_", "BRIDGE_", "SLACK_", "DISCORD_", "DATABASE_", "LOG_")


def bridge(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(OUR_PREFIXES)}
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        cwd=tmp_path,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["mock-backend", "--port", "99999"],
            "argument --port: 99999 is not a port: use 0 to 65535",
        ),
        (["serve", "--port", "http"], "argument --port: 'http' is not a port number"),
        (["serve", "--port", "0"], "argument --port: 0 is not a port: use 1 to 65535"),
        (["demo", "--delay", "-1"], "argument --delay: -1 is not a delay: use 0 or more seconds"),
    ],
)
def test_bad_arguments_are_a_usage_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = bridge(tmp_path, *args)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].endswith(message)
    assert "Traceback" not in result.stderr


def test_mock_backend_on_a_busy_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = bridge(tmp_path, "mock-backend", "--port", str(port))
    assert result.returncode == 2
    assert result.stderr == (
        f"bridge: cannot listen on 127.0.0.1:{port} (address already in use): "
        "stop the program using it or pick another with --port\n"
    )


def test_misspelled_variables_are_warned_about_with_the_closest_name(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SLACK_STREEMING=native\nLOG_LEVEL=info\n")
    result = bridge(tmp_path, "migrate", BRIDGE_MAX_CONCURENCY="4", SLACK_WEBHOOK_THING="x")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "bridge: warning: BRIDGE_MAX_CONCURENCY (in the environment) is not a bridge setting "
        "and is ignored: did you mean BRIDGE_MAX_CONCURRENCY?",
        "bridge: warning: SLACK_WEBHOOK_THING (in the environment) is not a bridge setting "
        "and is ignored: see README → Configuration",
        "bridge: warning: SLACK_STREEMING (in .env) is not a bridge setting and is ignored: "
        "did you mean SLACK_STREAMING?",
    ]


def test_variables_of_other_programs_are_not_typos(tmp_path: Path) -> None:
    environ = {"BRIDGE_TEST_STRICT": "1", "SLACK_CLIENT_ID": "x", "PATH": "/bin", "PORT": "1"}
    assert unknown_variables(environ, tmp_path / ".env") == []
    # A key variable a routes file names is no typo either.
    routed = {"WIDGET_SALES_KEY": "k"}
    assert unknown_variables(routed, tmp_path / ".env", frozenset({"WIDGET_SALES_KEY"})) == []
    assert [v.name for v in unknown_variables(routed, tmp_path / ".env")] == ["WIDGET_SALES_KEY"]


def test_an_unreachable_database_at_start_is_one_line_with_its_fix(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": "postgres://bridge:pw@127.0.0.1:9/bridge",  # discard port: refused
        "SLACK_BOT_TOKEN": "xoxb-1-2-never-used",
        "SLACK_APP_TOKEN": "xapp-1-never-used",
        "WONDERCHAT_CHATBOT_ID": "bot",
    }
    result = bridge(tmp_path, "run", **env)
    assert result.returncode == 2
    last = result.stderr.splitlines()[-1]
    assert last.startswith("bridge: could not start: cannot open database")
    assert last.endswith("; check DATABASE_URL and that the database is reachable (bridge check)")
    assert "Traceback" not in result.stderr and ":pw@" not in result.stderr


def test_migrate_on_an_unreachable_database_is_one_line_with_its_fix(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://bridge@127.0.0.1:{port}/postgres"
    result = bridge(tmp_path, "migrate", DATABASE_URL=url)
    assert result.returncode == 2
    assert result.stderr.startswith("bridge: cannot open database (postgres 127.0.0.1/postgres)")
    assert result.stderr.endswith(
        "; check DATABASE_URL and that the database is reachable (bridge check)\n"
    )
    assert len(result.stderr.splitlines()) == 1
