"""`bridge ask` in a real subprocess against the mock backend running in the test."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from bridge.testing.mock_backend import MockBackend

SUBPROCESS_TIMEOUT = 60.0  # interpreter start-up on a busy machine; not a speed check
OUR_PREFIXES = ("WONDERCHAT_", "WIDGET_", "BRIDGE_", "SLACK_", "DISCORD_", "DATABASE_", "LOG_")


async def ask(tmp_path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    """Run `python -m bridge ask ARGS` in `tmp_path` (no stray .env) with only `env` set."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(OUR_PREFIXES)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "ask", *args,
        cwd=tmp_path, env={**clean, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(SUBPROCESS_TIMEOUT):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_ask_wonderchat_streams_answer_sources_and_conversation(
    mock: MockBackend, tmp_path: Path
) -> None:
    env = {"WONDERCHAT_API_URL": mock.url, "WONDERCHAT_CHATBOT_ID": mock.chatbot_id}
    code, out, err = await ask(tmp_path, "What is the bridge?", **env)
    assert code == 0, err
    assert "Here is what I found about **What is the bridge?** (turn 1" in out
    assert "Sources:\n  1. Getting started — https://docs.example.com/getting-started" in out
    match = re.search(r"conversation: (cl\w+) \(continue with: bridge ask --conversation \1 ", out)
    assert match, out

    code, out, err = await ask(tmp_path, "And then?", "--conversation", match.group(1), **env)
    assert code == 0, err
    assert "(turn 2 of this conversation)" in out
    assert mock.requests[-1].json["chatlogId"] == match.group(1)


async def test_ask_widget_shows_status_on_stderr(mock: MockBackend, tmp_path: Path) -> None:
    env = {"WIDGET_API_URL": mock.url, "WIDGET_API_KEY": mock.api_key}
    code, out, err = await ask(tmp_path, "--backend", "widget", "[mock:reason] hi", **env)
    assert code == 0, err
    assert "… Thinking..." in err and "… Reading 3 pages..." in err
    assert "Thinking" not in out
    assert "(turn 1 of this conversation)" in out
    assert re.search(r"conversation: resp_\w+ \(continue with: bridge ask --backend widget", out)


async def test_ask_failure_exits_1_with_the_reason(mock: MockBackend, tmp_path: Path) -> None:
    env = {"WONDERCHAT_API_URL": mock.url, "WONDERCHAT_CHATBOT_ID": mock.chatbot_id}
    code, out, err = await ask(tmp_path, "[mock:error] hi", **env)
    assert code == 1
    assert "Here is what" in out  # the partial text was shown as it streamed
    assert "bridge: the answer failed: the backend reported an error" in err


async def test_ask_without_a_backend_names_the_variables(tmp_path: Path) -> None:
    (tmp_path / "unrelated.txt").write_text("no .env here")
    code, out, err = await ask(tmp_path, "hello")
    assert code == 2
    assert out == ""
    assert "WONDERCHAT_CHATBOT_ID" in err and "WIDGET_API_URL" in err
    assert "Traceback" not in err


async def test_ask_checks_the_question_before_sending_it(mock: MockBackend, tmp_path: Path) -> None:
    env = {"WONDERCHAT_API_URL": mock.url, "WONDERCHAT_CHATBOT_ID": mock.chatbot_id}
    code, out, err = await ask(tmp_path, "  ", **env)
    assert (code, out) == (2, "")
    assert err == (
        'bridge: the question is empty: ask something, e.g. bridge ask "What are your opening'
        ' hours?"\n'
    )
    code, out, err = await ask(tmp_path, "x" * 11, BRIDGE_MAX_QUESTION_CHARS="10", **env)
    assert (code, out) == (2, "")
    assert err == (
        "bridge: That question is 11 characters long; the limit is 10. Please shorten it.\n"
    )
    assert mock.requests == []
    code, _out, err = await ask(tmp_path, "")  # a usage error, whatever is configured
    assert (code, err.startswith("bridge: the question is empty")) == (2, True)


async def test_ask_an_empty_answer_is_the_chat_error(mock: MockBackend, tmp_path: Path) -> None:
    env = {"WONDERCHAT_API_URL": mock.url, "WONDERCHAT_CHATBOT_ID": mock.chatbot_id}
    code, _out, err = await ask(tmp_path, "[mock:empty] hi", **env)
    assert code == 1
    assert err.splitlines()[-1] == "bridge: the answer failed: the backend returned an empty answer"


async def test_ask_a_half_configured_widget_names_the_missing_variable(tmp_path: Path) -> None:
    code, _out, err = await ask(tmp_path, "hi", WIDGET_API_URL="http://127.0.0.1:9")
    assert code == 2
    assert err == (
        "bridge: the Widget API needs WIDGET_API_KEY too: set it, or unset the other "
        "WIDGET_ variables\n"
    )


async def test_ask_an_invalid_url_is_named_at_start(tmp_path: Path) -> None:
    code, _out, err = await ask(tmp_path, "hi", WIDGET_API_URL="nonsense", WIDGET_API_KEY="k")
    assert code == 2
    assert err == (
        "bridge: invalid configuration: WIDGET_API_URL: must be a URL starting with http:// "
        "or https:// (got 'nonsense')\n"
    )
