"""The mock backend speaks the seed APIs (shapes, validation) and `bridge mock-backend` runs."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from bridge.backends.sse import SSEEvent, SSEParser
from bridge.testing.mock_backend import SCENARIOS, MockBackend

WIDGET_CHUNK_KEYS = {"id", "object", "created", "model", "choices"}
WIDGET_CHOICE_KEYS = {"index", "delta", "logprobs", "finish_reason"}


async def post(session: aiohttp.ClientSession, url: str, **kwargs: object) -> tuple[int, str]:
    async with session.post(url, **kwargs) as response:  # type: ignore[arg-type]
        return response.status, await response.text()


async def test_wonderchat_validates_like_the_real_api(
    mock: MockBackend, session: aiohttp.ClientSession
) -> None:
    url = mock.url + "/api/v1/chat"
    assert await post(session, url, json={"question": "hi"}) == (
        400,
        '{"error": "chatbotId and question are required"}',
    )
    status, _ = await post(session, url, json={"chatbotId": "test-bot"})
    assert status == 400
    status, _ = await post(session, url, data=b"{not json")
    assert status == 400
    assert [r.json for r in mock.requests] == [{"question": "hi"}, {"chatbotId": "test-bot"}, None]


async def test_widget_requires_the_bearer_key(
    mock: MockBackend, session: aiohttp.ClientSession
) -> None:
    url = mock.url + "/api/v1/chat/completions"
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    status, text = await post(session, url, json=body)
    assert status == 401 and "Invalid API key" in text
    status, _ = await post(session, url, json=body, headers={"Authorization": "Bearer wrong"})
    assert status == 401
    status, _ = await post(
        session, url, json={"messages": []}, headers={"Authorization": "Bearer test-key"}
    )
    assert status == 400


async def test_widget_stream_has_the_seed_chunk_shape(
    mock: MockBackend, session: aiohttp.ClientSession
) -> None:
    body = {"model": "sstrader-2", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with session.post(
        mock.url + "/api/v1/chat/completions",
        json=body,
        headers={"Authorization": "Bearer test-key"},
    ) as response:
        assert response.content_type == "text/event-stream"
        parser = SSEParser()
        events = parser.feed(await response.read()) + parser.close()
    assert {e.event for e in events} == {"message"}
    assert events[-1].data == "[DONE]"
    chunks = [json.loads(e.data) for e in events[:-1]]
    for chunk in chunks:
        assert set(chunk) == WIDGET_CHUNK_KEYS
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == "sstrader-2"
        assert set(chunk["choices"][0]) == WIDGET_CHOICE_KEYS
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"reason": {"text": "Thinking..."}}
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }


async def test_wonderchat_stream_order(mock: MockBackend, session: aiohttp.ClientSession) -> None:
    body = {"chatbotId": "test-bot", "question": "hi", "stream": True}
    async with session.post(mock.url + "/api/v1/chat", json=body) as response:
        parser = SSEParser()
        events = parser.feed(await response.read()) + parser.close()
    kinds = [e.event for e in events]
    assert kinds[0] == "metadata" and kinds[-1] == "done"
    assert set(kinds[1:-1]) == {"chunk"}
    done = json.loads(events[-1].data)
    assert set(done) == {"id", "response", "chatlogId", "sources"}
    assert "".join(json.loads(e.data)["delta"] for e in events[1:-1]) == done["response"]


def test_enqueue_rejects_unknown_scenarios() -> None:
    with pytest.raises(ValueError, match="unknown mock scenario"):
        MockBackend().enqueue("nope")
    assert {"answer", "stall", "long", "hostile-sources", "empty"} <= SCENARIOS


async def test_bridge_mock_backend_command(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WONDERCHAT_", "WIDGET_"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "mock-backend", "--port", "0", "--delay", "0",
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            banner = (await process.stdout.readline()).decode()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", banner)
        assert match, banner
        async with aiohttp.ClientSession() as session:
            body = {"chatbotId": "test-bot", "question": "hi", "stream": False}
            async with session.post(match.group(0) + "/api/v1/chat", json=body) as response:
                assert "(turn 1 of this conversation)" in (await response.json())["response"]
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            rest, _ = await process.communicate()
        assert process.returncode == 0
        assert b"WONDERCHAT_CHATBOT_ID=test-bot" in rest
        assert b"WIDGET_API_KEY=test-key" in rest
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.parametrize(
    ("path", "body", "text_event"),
    [
        ("/api/v1/chat", {"chatbotId": "test-bot", "question": "hi", "stream": True}, "chunk"),
        (
            "/api/v1/chat/completions",
            {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True},
            "message",
        ),
    ],
)
async def test_the_mock_notes_when_each_answer_starts_and_how_many_chunks_it_wrote(
    mock: MockBackend,
    session: aiohttp.ClientSession,
    path: str,
    body: dict[str, object],
    text_event: str,
) -> None:
    """Benchmarks subtract the backend's own time: request arrival and first text chunk."""
    sent = time.monotonic()
    headers = {"Authorization": "Bearer test-key"}
    async with session.post(mock.url + path, json=body, headers=headers) as response:
        parser = SSEParser()
        texts: list[SSEEvent] = []
        first_seen: float | None = None
        async for data in response.content.iter_any():
            texts += [e for e in parser.feed(data) if is_text(e, text_event)]
            if texts and first_seen is None:
                first_seen = time.monotonic()
    assert first_seen is not None
    [request] = mock.requests
    assert sent <= request.at <= mock.first_chunk_at["hi"] <= first_seen
    assert mock.text_chunks == len(texts) > 1

    first = mock.first_chunk_at["hi"]
    async with session.post(mock.url + path, json=body, headers=headers) as response:
        await response.read()
    assert mock.first_chunk_at == {"hi": first}  # the first answer to a question counts
    assert mock.text_chunks == 2 * len(texts)


def is_text(event: SSEEvent, kind: str) -> bool:
    """A Wonderchat `chunk`, or a Widget chunk whose delta carries content."""
    if event.event != kind or event.data == "[DONE]":
        return False
    data = json.loads(event.data)
    return kind == "chunk" or "content" in data["choices"][0]["delta"]


async def test_conversations_the_mock_did_not_start_are_refused(
    mock: MockBackend, session: aiohttp.ClientSession
) -> None:
    wonderchat = mock.url + "/api/v1/chat"
    ask = {"chatbotId": "test-bot", "question": "hi"}
    assert await post(session, wonderchat, json={**ask, "chatlogId": "cl-made-up"}) == (
        404,
        '{"error": "Chatlog not found"}',
    )
    status, text = await post(session, wonderchat, json=ask)
    chatlog_id = json.loads(text)["chatlogId"]
    status, text = await post(session, wonderchat, json={**ask, "chatlogId": chatlog_id})
    assert status == 200 and "turn 2" in json.loads(text)["response"]

    widget = mock.url + "/api/v1/chat/completions"
    key = {"Authorization": "Bearer test-key"}
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    status, text = await post(
        session, widget, json={**body, "previous_response_id": "resp_madeup"}, headers=key
    )
    error = json.loads(text)["error"]
    assert status == 400
    assert (error["param"], error["code"]) == (
        "previous_response_id",
        "previous_response_not_found",
    )
    assert "resp_madeup" in error["message"]

    mock.forget_conversations()  # as a backend that expired them
    status, _ = await post(session, wonderchat, json={**ask, "chatlogId": chatlog_id})
    assert status == 404
