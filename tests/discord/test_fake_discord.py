"""The fake Discord refuses what Discord refuses, with Discord's statuses and JSON error
codes, so a bridge that breaks a rule fails in tests (see tests/README.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bridge.testing import discord_rules as rules
from bridge.testing.fake_discord import FakeDiscord


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": "Bot token"}) as session:
        yield session


async def call(
    http: aiohttp.ClientSession, fake: FakeDiscord, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    async with http.request(method, fake.api_url + path, json=body) as response:
        text = await response.text()
        return response.status, (await response.json() if text else None)


async def test_content_over_2000_characters_is_refused_everywhere(
    fake: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    channel = f"/channels/{fake.channel_id}/messages"
    status, posted = await call(http, fake, "POST", channel, {"content": "x" * 2000})
    assert status == 200 and len(posted["content"]) == 2000

    too_long = {"content": "x" * 2001}
    for method, path in [("POST", channel), ("PATCH", f"{channel}/{posted['id']}")]:
        status, body = await call(http, fake, method, path, too_long)
        assert (status, body["code"]) == (400, rules.CODE_INVALID_FORM_BODY)
        assert body["errors"]["content"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
    assert fake.messages[posted["id"]]["content"] == "x" * 2000  # the edit changed nothing


async def test_an_edit_in_the_wrong_channel_or_of_someone_elses_message_is_refused(
    fake: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    _, own = await call(
        http, fake, "POST", f"/channels/{fake.channel_id}/messages", {"content": "a"}
    )
    dm = fake.dm_channel(fake.alice)
    wrong_channel = f"/channels/{dm}/messages/{own['id']}"
    status, body = await call(http, fake, "PATCH", wrong_channel, {"content": "b"})
    assert (status, body["code"]) == (404, rules.CODE_UNKNOWN_MESSAGE)

    alices = await fake.user_message(fake.channel_id, "mine")
    path = f"/channels/{fake.channel_id}/messages/{alices['id']}"
    status, body = await call(http, fake, "PATCH", path, {"content": "edited by the bot"})
    assert (status, body["code"]) == (403, rules.CODE_OTHER_USERS_MESSAGE)
    assert fake.messages[alices["id"]]["content"] == "mine"
    assert fake.messages[own["id"]]["content"] == "a"


async def test_revoked_permissions_refuse_guild_calls_but_not_dms(
    fake: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    question = await fake.user_message(fake.channel_id, "q")
    messages = f"/channels/{fake.channel_id}/messages"
    fake.revoke(rules.CREATE_PUBLIC_THREADS)
    status, body = await call(
        http, fake, "POST", f"{messages}/{question['id']}/threads", {"name": "t"}
    )
    assert (status, body["code"]) == (403, rules.CODE_MISSING_PERMISSIONS)

    fake.revoke(rules.SEND_MESSAGES)
    for path in (messages, f"/channels/{fake.channel_id}/typing"):
        status, body = await call(http, fake, "POST", path, {"content": "hi"})
        assert (status, body["code"]) == (403, rules.CODE_MISSING_PERMISSIONS)
    fake.revoke(rules.VIEW_CHANNEL)
    status, body = await call(http, fake, "POST", messages, {"content": "hi"})
    assert (status, body["code"]) == (403, rules.CODE_MISSING_ACCESS)
    assert fake._guild_payload()["roles"][0]["permissions"] == str(fake.permissions)

    dm = fake.dm_channel(fake.alice)
    status, _ = await call(http, fake, "POST", f"/channels/{dm}/messages", {"content": "hi"})
    assert status == 200  # DMs need no guild permission
    fake.grant(rules.VIEW_CHANNEL, rules.SEND_MESSAGES)
    status, _ = await call(http, fake, "POST", messages, {"content": "back"})
    assert status == 200


async def test_an_interaction_is_answered_once_and_within_three_seconds(
    fake: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    defer = {"type": 5}
    first = await fake.run_command("ask", {"question": "q"}, channel_id=fake.channel_id)
    path = f"/interactions/{first['id']}/{first['token']}/callback"
    assert (await call(http, fake, "POST", path, defer))[0] == 200
    status, body = await call(http, fake, "POST", path, defer)
    assert (status, body["code"]) == (400, rules.CODE_ALREADY_ACKNOWLEDGED)
    assert len(fake.interaction_callbacks(first["token"])) == 1

    fake.interaction_deadline = 0.0  # as if three seconds had passed
    late = await fake.run_command("ask", {"question": "q"}, channel_id=fake.channel_id)
    path = f"/interactions/{late['id']}/{late['token']}/callback"
    status, body = await call(http, fake, "POST", path, defer)
    assert (status, body["code"]) == (404, rules.CODE_UNKNOWN_INTERACTION)
    assert not fake.interaction_callbacks(late["token"])
    assert fake.refused_callbacks(late["token"]) == [defer]


# Rate limits: the global limit and per-route buckets, with Discord's headers ----------


async def test_successes_carry_their_buckets_headers_and_a_dry_bucket_gets_429(
    fake: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    path = f"/channels/{fake.channel_id}/messages"
    remaining = []
    for n in range(5):
        async with http.post(fake.api_url + path, json={"content": f"m{n}"}) as response:
            assert response.status == 200
            remaining.append(response.headers["X-RateLimit-Remaining"])
            assert response.headers["X-RateLimit-Limit"] == "5"
            assert 0 < float(response.headers["X-RateLimit-Reset-After"]) <= 5.0
            bucket = response.headers["X-RateLimit-Bucket"]
    assert remaining == ["4", "3", "2", "1", "0"]
    async with http.post(fake.api_url + path, json={"content": "one too many"}) as response:
        body = await response.json()
        assert response.status == 429 and response.headers["Via"]
        assert response.headers["X-RateLimit-Scope"] == "user"
        assert response.headers["X-RateLimit-Bucket"] == bucket
        assert body["global"] is False and 0 < body["retry_after"] <= 5.0
    dm = fake.dm_channel(fake.alice)  # another channel: another bucket
    status, _ = await call(http, fake, "POST", f"/channels/{dm}/messages", {"content": "hi"})
    assert status == 200


async def test_more_than_50_requests_in_a_second_hit_the_global_limit() -> None:
    async with (
        FakeDiscord(speed=0.1) as fake,  # a 10 s second: the loop below fits in it
        aiohttp.ClientSession(headers={"Authorization": "Bot token"}) as http,
    ):
        statuses = []
        for _ in range(51):
            async with http.get(fake.api_url + "/users/@me") as response:
                statuses.append(response.status)
                last = response
        assert statuses == [200] * 50 + [429]
        assert last.headers["X-RateLimit-Global"] == "true"
        assert fake.limits is not None and fake.limits.global_hits == 1
