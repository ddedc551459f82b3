"""A burst of mentions against a fake Discord enforcing its real limits (50 requests/s
per bot, per-channel buckets with truthful headers): the bot's global budget queues the
burst instead of drawing 429s."""

# ruff: noqa: F811 (the mock fixture comes from test_discord_e2e)
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_discord_e2e import final_answer, mock, running_bridge  # noqa: F401 (fixtures)

from bridge.testing.fake_discord import FakeDiscord
from bridge.testing.mock_backend import MockBackend

pytestmark = pytest.mark.timeout(90)

MENTIONS = 40
WITHIN = 60.0  # a bound for the whole burst on a shared 2-core machine, not a speed check


async def test_a_burst_of_mentions_draws_at_most_two_429s(
    mock: MockBackend, tmp_path: Path
) -> None:
    async with (
        FakeDiscord() as fake,  # production limits, real time
        running_bridge(
            fake,
            mock,
            tmp_path,
            bridge_edit_interval=1.0,
            bridge_user_rate_per_minute=0,
            bridge_max_concurrency=MENTIONS,
        ),
    ):
        questions = await asyncio.gather(
            *(
                fake.user_message(fake.channel_id, f"question {n}", mention_bot=True)
                for n in range(MENTIONS)
            )
        )

        def all_final() -> bool:
            threads = [fake.threads.get(question["id"]) for question in questions]
            return all(t is not None and final_answer(fake, t["id"]) for t in threads)

        await fake.wait_for(all_final, within=WITHIN)

    assert fake.limits is not None
    assert fake.limits.global_hits + fake.limits.route_hits <= 2
    typing = fake.requests_to("POST", r"/typing$")
    assert len(typing) <= MENTIONS  # typing is dropped first, never retried
