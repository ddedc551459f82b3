"""Discord sharding against the fake gateway: one process running both shards, and two
processes splitting them with DISCORD_SHARD_IDS. The fake sends a guild's events only to
the shard owning it ((guild_id >> 22) % shard_count) and DMs to shard 0, as Discord does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from test_discord_e2e import final_answer, running_bridge

from bridge.config import load_settings
from bridge.errors import ConfigError
from bridge.testing.fake_discord import FakeDiscord
from bridge.testing.mock_backend import MockBackend

# Shard 1's IDENTIFY waits discord.py's 5 s identify spacing (one at a time per bucket).
pytestmark = pytest.mark.timeout(90)

SHARDS = 2


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        assert server.shard_of(server.guild_id, SHARDS) == 1  # DMs (shard 0) differ
        yield server


@pytest.fixture
async def mock() -> AsyncIterator[MockBackend]:
    async with MockBackend(delay=0.005) as server:
        yield server


async def ask_in_dm_and_in_the_guild(fake: FakeDiscord) -> None:
    dm = fake.dm_channel(fake.alice)
    await fake.user_message(dm, "over shard zero")
    mention = await fake.user_message(fake.channel_id, "over shard one", mention_bot=True)
    await fake.wait_for(lambda: final_answer(fake, dm))
    thread = await fake.wait_for(lambda: fake.threads.get(mention["id"]))
    await fake.wait_for(lambda: final_answer(fake, thread["id"]))


def delivered_by(fake: FakeDiscord) -> set[int]:
    return {shard for shard, event in fake.deliveries if event == "MESSAGE_CREATE"}


async def test_one_process_runs_both_shards_and_each_delivers(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    async with running_bridge(fake, mock, tmp_path, discord_shard_count=SHARDS):
        assert sorted(tuple(i["shard"]) for i in fake.identifies) == [(0, 2), (1, 2)]
        await ask_in_dm_and_in_the_guild(fake)
    assert delivered_by(fake) == {0, 1}
    questions = sorted(r.json["question"] for r in mock.requests)
    assert questions == ["over shard one", "over shard zero"]  # each answered once


async def test_two_workers_split_the_shards(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    async with AsyncExitStack() as workers:
        for shard in range(SHARDS):
            await workers.enter_async_context(
                running_bridge(
                    fake,
                    mock,
                    tmp_path / f"worker{shard}",
                    discord_shard_count=SHARDS,
                    discord_shard_ids=str(shard),
                )
            )
        assert sorted(tuple(i["shard"]) for i in fake.identifies) == [(0, 2), (1, 2)]
        await ask_in_dm_and_in_the_guild(fake)
    assert delivered_by(fake) == {0, 1}
    assert len(mock.requests) == 2  # each question answered once, by its shard's worker


def test_shard_ids_must_fit_the_count() -> None:
    with pytest.raises(ConfigError, match="DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT"):
        load_settings(discord_shard_ids="0")
    with pytest.raises(ConfigError, match=r"shard 2 is outside 0\.\.1"):
        load_settings(discord_shard_count=2, discord_shard_ids="0,2")
    assert load_settings(discord_shard_count=4, discord_shard_ids="3, 1").discord_shard_ids == (
        1,
        3,
    )
