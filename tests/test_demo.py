"""`bridge demo` end to end, as the README's first command runs it: a real subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
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


def test_demo_once_prints_no_prompt_help(tmp_path: Path) -> None:
    result = run_bridge(["demo", "--delay", "0", "--once", "hi"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Ctrl-D" not in result.stdout and "Type a question" not in result.stdout


async def _demo_until(args: list[str], tmp_path: Path, ready: str) -> asyncio.subprocess.Process:
    """Start `bridge demo ARGS` with stdin left open; return once stdout shows `ready`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "WIDGET_"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "demo", *args,
        cwd=tmp_path, env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    seen = b""
    async with asyncio.timeout(60):
        while ready.encode() not in seen:
            chunk = await process.stdout.read(1024)
            assert chunk, seen
            seen += chunk
    process.seen = seen  # type: ignore[attr-defined]
    return process


async def _interrupt(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    process.send_signal(signal.SIGINT)
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, (process.seen + out).decode(), err.decode()  # type: ignore[attr-defined]


async def test_ctrl_c_during_an_answer_says_it_was_stopped(tmp_path: Path) -> None:
    process = await _demo_until(["--once", "[mock:stall] hi"], tmp_path, "you> [mock:stall] hi\n")
    code, out, err = await _interrupt(process)
    assert code == 130
    assert out.endswith("(stopped by Ctrl-C; the answer was not finished)\n")
    assert "restart" not in out + err and "Traceback" not in err


async def test_ctrl_c_at_the_prompt_ends_the_line(tmp_path: Path) -> None:
    process = await _demo_until(["--delay", "0"], tmp_path, "edits)\n\nyou> ")
    code, out, err = await _interrupt(process)
    assert code == 130
    assert out.endswith("you> \n")
    assert "Traceback" not in err
