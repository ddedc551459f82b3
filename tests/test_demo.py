"""`bridge demo` end to end, as the README's first command runs it: a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_bridge(args: list[str], cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("SLACK_", "DISCORD_", "WIDGET_", "WONDERCHAT_", "BRIDGE_", "DATABASE_")
        )
    }
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("backend", ["wonderchat", "widget"])
def test_demo_once_streams_an_answer_with_sources(tmp_path: Path, backend: str) -> None:
    result = run_bridge(["demo", "--backend", backend, "--once", "How do refunds work?"], tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "refunds" in out.lower()
    if backend == "wonderchat":  # the Widget API defines no sources
        assert "Sources:" in out and "https://docs.example.com" in out
    assert "conversation id:" in out
    edits = int(out.split("(streamed with ")[1].split(" edits)")[0])
    assert edits >= 2  # progressive: several edits before the final one
    assert not list(tmp_path.iterdir())  # no database or other file left behind


def test_demo_continues_the_conversation_across_questions(tmp_path: Path) -> None:
    result = run_bridge(["demo", "--delay", "0"], tmp_path, stdin="and then?\nreset\nagain\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("Sources:") == 3
    assert "turn 2" in out  # the mock numbers turns within one conversation
    assert "conversation reset" in out
    assert out.rsplit("conversation reset", 1)[1].count("turn 2") == 0
