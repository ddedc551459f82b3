"""The routes file: parsing, most-specific matching, and errors that name their line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bridge.routes import BackendTarget, RoutesError, format_table, load_routes, parse_routes

ENV = {"SALES_WIDGET_KEY": "wk-123"}

ROUTES = """\
# two chatbots, one auto-answer channel
[[route]]
platform = "slack"
team = "T1"
backend = "wonderchat"
chatbot_id = "team-bot"

[[route]]
platform = "slack"
team = "T1"
channel = "C-SALES"
backend = "widget"
api_url = "http://127.0.0.1:9/"
model = "sales"
api_key_env = "SALES_WIDGET_KEY"
mode = "all"
context = "You answer the sales team."
allowed_users = ["U1", "U2"]

[[route]]
platform = "discord"
channel = 1234567
mode = "all"
"""


def parse(text: str, environ: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return parse_routes(text, source="routes.toml", environ=ENV if environ is None else environ)


def test_most_specific_route_wins_and_unmatched_uses_the_environment() -> None:
    table = parse(ROUTES)
    sales = table.match("slack", "T1", "C-SALES")
    assert sales is not None and sales.line == 8
    assert sales.target is not None
    assert sales.target.key == "widget:sales@http://127.0.0.1:9#SALES_WIDGET_KEY"
    assert sales.mode == "all" and sales.allowed_users == {"U1", "U2"}
    general = table.match("slack", "T1", "C-GENERAL")
    assert general is not None and general.target is not None
    assert general.target.key == "wonderchat:team-bot@" and general.mode == "mention"
    assert table.match("slack", "T2", "C-SALES") is None  # other workspace: environment
    discord = table.match("discord", "999", "1234567")
    assert discord is not None and discord.target is None and discord.mode == "all"
    targets = table.targets()
    assert [t.key for t in targets] == [
        "wonderchat:team-bot@",
        "widget:sales@http://127.0.0.1:9#SALES_WIDGET_KEY",
    ]
    # The stored name is enough to reach the chatbot again (routes may drop it later).
    assert [BackendTarget.from_key(t.key) for t in targets] == targets
    assert BackendTarget.from_key("wonderchat") is None  # the environment's own backend
    assert BackendTarget.from_key("widget:m@https://h") is None  # no key variable named


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('[[route]]\nplatform = "slack"\nchanel = "C1"\n', 3, "unknown key 'chanel'"),
        (
            '[[route]]\nplatform = "slack"\nchannel = "C1"\nbackend = "widget"\n'
            'api_url = "http://x"\napi_key_env = "NOT_SET_ANYWHERE"\n',
            6,
            "NOT_SET_ANYWHERE (named by api_key_env) is not set",
        ),
        (
            '[[route]]\nplatform = "slack"\nchannel = "C1"\n\n'
            '[[route]]\nplatform = "slack"\nchannel = "C1"\nmode = "all"\n',
            5,
            "duplicate match: slack channel C1 is already routed at line 1",
        ),
        ('[[route]]\nplatform = "slack"\nchannel = "C1"\napi_key = "sk-1"\n', 4, "never write"),
        ('[[route]]\nplatform = "slack"\nchannel = "C1"\nmode = "always"\n', 4, "mode must be"),
        ('[[route]]\nplatform = "slack"\n', 1, "matches nothing"),
        ('[[route]]\nplatform = "slack"\nchannel = "C1\n', 3, "not valid TOML"),
        ('[[route]]\nplatform = "slack"\nchannel = "C1"\nchatbot_id = "b"\n', 4, "needs backend"),
    ],
)
def test_bad_routes_name_the_line_and_the_fix(text: str, line: int, words: str) -> None:
    with pytest.raises(RoutesError) as error:
        parse(text)
    message = str(error.value)
    assert message.startswith(f"routes.toml:{line}: "), message
    assert words in message
    assert "\n" not in message and "sk-1" not in message


def test_unreadable_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(RoutesError, match="cannot read it"):
        load_routes(tmp_path / "missing.toml")


def test_table_lists_most_specific_first_and_the_default() -> None:
    text = format_table(parse(ROUTES), "wonderchat chatbot env-bot")
    lines = text.splitlines()
    assert lines[0].split() == ["where", "chatbot", "mode", "context", "users", "line"]
    assert lines[1].startswith("slack team T1 channel C-SALES")
    assert "U1, U2" in lines[1] and "wk-123" not in text
    assert lines[-1].startswith("everything else") and "env-bot" in lines[-1]


def run_bridge(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {"PATH": "/usr/bin:/bin", "WONDERCHAT_CHATBOT_ID": "env-bot", **ENV, **env}
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environ,
        timeout=60,
        check=False,
    )


def test_bridge_routes_and_check_report_the_file(tmp_path: Path) -> None:
    good = tmp_path / "routes.toml"
    good.write_text(ROUTES)
    shown = run_bridge(tmp_path, "routes", BRIDGE_ROUTES_FILE=str(good))
    assert shown.returncode == 0, shown.stderr
    assert "widget model sales" in shown.stdout and "env-bot" in shown.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[[route]]\nplatform = "slack"\nchanel = "C1"\n')
    refused = run_bridge(tmp_path, "routes", BRIDGE_ROUTES_FILE=str(bad))
    assert refused.returncode == 2
    assert refused.stderr.strip().startswith(f"bridge: {bad}:3: unknown key 'chanel'")
    assert "Traceback" not in refused.stderr
    checked = run_bridge(tmp_path, "check", BRIDGE_ROUTES_FILE=str(bad), DISCORD_TOKEN="x")
    assert f"✗ Routes: {bad}:3: unknown key 'chanel'" in checked.stdout
    assert checked.returncode == 1
