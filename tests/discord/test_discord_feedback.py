"""👍/👎 and hand-off on Discord, end to end: the real discord.py client (persistent
dynamic buttons, modals) against the fake gateway and REST, with the real relay and store."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from test_discord_e2e import final_answer, running_bridge

from bridge.discord.routing import thread_key
from bridge.feedback import MAX_REASON_CHARS
from bridge.feedback.handoff import RESUMED_TEXT
from bridge.store import VoteValue
from bridge.testing.fake_discord import FLAG_EPHEMERAL, FakeDiscord
from bridge.testing.mock_backend import MockBackend

pytestmark = pytest.mark.timeout(90)

ROLE = "987654321098765432"
UNKNOWN = "I can't find that answer any more (it may have been removed), so nothing was saved."


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server


@pytest.fixture
async def mock() -> AsyncIterator[MockBackend]:
    async with MockBackend(delay=0.005) as server:
        yield server


def buttons(fake: FakeDiscord, message_id: str) -> list[str]:
    return [button["custom_id"] for button in fake.buttons(message_id)]


def votes(vote: str) -> float:
    labels = {"platform": "discord", "vote": vote}
    return REGISTRY.get_sample_value("bridge_feedback_total", labels) or 0.0


async def answer_with_buttons(fake: FakeDiscord, channel: str, text: str) -> dict[str, Any]:
    await fake.user_message(channel, text)
    answer = await fake.wait_for(lambda: final_answer(fake, channel))
    await fake.wait_for(lambda: buttons(fake, answer["id"]))
    return fake.messages[answer["id"]]


async def response(fake: FakeDiscord, interaction: dict[str, Any]) -> dict[str, Any]:
    """The message an interaction was answered with."""
    token = interaction["token"]
    await fake.wait_for(lambda: fake.interaction_messages(token) or fake.modal_of(token))
    return fake.interaction_messages(token)[-1]


async def test_vote_change_and_a_reason_in_a_dm(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    async with running_bridge(fake, mock, tmp_path, feedback=True) as (_adapter, runtime):
        dm = fake.dm_channel(fake.alice)
        answer = await answer_with_buttons(fake, dm, "How do refunds work?")
        up, down = buttons(fake, answer["id"])  # no hand-off in DMs, nor without a role
        assert up.startswith("bridge:vote:up:") and down.startswith("bridge:vote:down:")
        event_id = up.rsplit(":", 1)[1]
        before_up, before_down = votes("up"), votes("down")

        thanks = await response(fake, await fake.press_button(answer["id"], up))
        assert thanks["content"] == "Thanks for the 👍 — glad it helped."
        assert thanks["flags"] & FLAG_EPHEMERAL
        vote = await runtime.store.get_vote("discord", event_id, fake.alice["id"])
        assert vote.vote is VoteValue.UP and vote.message_id == answer["id"]

        changed = await response(fake, await fake.press_button(answer["id"], down))
        assert changed["content"] == "Changed your vote to 👎."
        assert changed["flags"] & FLAG_EPHEMERAL
        [why] = buttons(fake, changed["id"])
        opened = await fake.press_button(changed["id"], why)
        await fake.wait_for(lambda: fake.modal_of(opened["token"]))
        modal = fake.modal_of(opened["token"])
        assert modal["title"] == "What was wrong?"
        [input_id] = [
            c["custom_id"] for row in modal["components"] for c in row.get("components", [row])
        ]
        submitted = await fake.submit_modal(opened["token"], {input_id: "x" * 1500})
        note = await response(fake, submitted)
        assert f"{MAX_REASON_CHARS:,} characters" in note["content"] and "1,500" in note["content"]
        vote = await runtime.store.get_vote("discord", event_id, fake.alice["id"])
        assert vote.vote is VoteValue.DOWN and vote.reason == "x" * MAX_REASON_CHARS
        assert (votes("up"), votes("down")) == (before_up + 1, before_down + 1)


async def test_buttons_from_before_a_restart_still_work(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    dm = fake.dm_channel(fake.alice)
    async with running_bridge(fake, mock, tmp_path, feedback=True):
        answer = await answer_with_buttons(fake, dm, "before the restart")
    up, _down = buttons(fake, answer["id"])
    async with running_bridge(fake, mock, tmp_path, feedback=True) as (_adapter, runtime):
        thanks = await response(fake, await fake.press_button(answer["id"], up, user=fake.bob))
        assert thanks["content"] == "Thanks for the 👍 — glad it helped."
        vote = await runtime.store.get_vote("discord", up.rsplit(":", 1)[1], fake.bob["id"])
        assert vote is not None and vote.vote is VoteValue.UP


async def test_unknown_and_deleted_answers_and_failed_answers(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path
) -> None:
    async with running_bridge(fake, mock, tmp_path, feedback=True):
        dm = fake.dm_channel(fake.alice)
        await fake.user_message(dm, "[mock:error] this fails")
        await fake.wait_for(
            lambda: any("could not be completed" in m["content"] for m in fake.bot_messages_in(dm))
        )
        answer = await answer_with_buttons(fake, dm, "a good one")
        failed = next(
            m for m in fake.bot_messages_in(dm) if "could not be completed" in m["content"]
        )
        assert not buttons(fake, failed["id"])
        up, _down = buttons(fake, answer["id"])
        # A button naming an answer that was never given (forged), then a deleted one.
        answer["components"][0]["components"][0]["custom_id"] = "bridge:vote:up:123"
        forged = await response(fake, await fake.press_button(answer["id"], "bridge:vote:up:123"))
        assert forged["content"] == UNKNOWN
        path = tmp_path / "bridge.db"
        with sqlite3.connect(path) as conn:
            conn.execute("DELETE FROM turns WHERE event_id = ?", (up.rsplit(":", 1)[1],))
        answer["components"][0]["components"][0]["custom_id"] = up
        deleted = await response(fake, await fake.press_button(answer["id"], up))
        assert deleted["content"] == UNKNOWN


async def test_handoff_pings_only_the_role_then_silence_then_resume(
    fake: FakeDiscord, mock: MockBackend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.relay.core")
    handoffs = REGISTRY.get_sample_value("bridge_handoffs_total", {"platform": "discord"}) or 0
    async with running_bridge(fake, mock, tmp_path, feedback=True, bridge_handoff_discord=ROLE) as (
        _adapter,
        runtime,
    ):
        await fake.user_message(fake.channel_id, "who can help?", mention_bot=True)
        thread = await fake.wait_for(lambda: next(iter(fake.threads), None))
        answer = await fake.wait_for(lambda: final_answer(fake, thread))
        await fake.wait_for(lambda: len(buttons(fake, answer["id"])) == 3)
        *_votes, handoff = buttons(fake, answer["id"])
        assert handoff.startswith("bridge:handoff:")

        notice = await response(fake, await fake.press_button(answer["id"], handoff, user=fake.bob))
        assert notice["content"].startswith(f"<@&{ROLE}> ")
        assert not notice["flags"] & FLAG_EPHEMERAL
        allowed = notice["allowed_mentions"]  # that role, nobody else, no @everyone
        assert allowed["parse"] == [] and [str(role) for role in allowed["roles"]] == [ROLE]
        assert not allowed.get("users") and not allowed.get("replied_user")
        again = await response(fake, await fake.press_button(answer["id"], handoff))
        assert again["content"] == "This thread is already waiting for a person."
        assert REGISTRY.get_sample_value("bridge_handoffs_total", {"platform": "discord"}) == (
            handoffs + 1
        )
        # Every other message and edit the bot made allowed no mention at all.
        other_bodies = [
            r.json
            for r in fake.requests
            if r.method in ("POST", "PATCH") and r.json and "allowed_mentions" in r.json
        ]
        other_bodies += [
            r.json["data"]
            for r in fake.requests_to("POST", r"/callback$")
            if "allowed_mentions" in (r.json.get("data") or {})
        ]
        pinging = [b for b in other_bodies if b["allowed_mentions"].get("roles")]
        assert len(pinging) == 1  # the hand-off message, and only it
        assert all(not b["allowed_mentions"]["parse"] for b in other_bodies)

        # Silence in the thread, then `resume` (the bot must be mentioned without the
        # message-content intent), then answers again.
        await fake.user_message(thread, "anyone?", mention_bot=True)
        await fake.wait_for(lambda: "staying quiet" in caplog.text)
        assert len([r for r in mock.requests if r.path == "/api/v1/chat"]) == 1
        await fake.user_message(thread, "resume", mention_bot=True)
        await fake.wait_for(
            lambda: any(RESUMED_TEXT in m["content"] for m in fake.bot_messages_in(thread))
        )
        await fake.user_message(thread, "and now?", mention_bot=True)
        await fake.wait_for(
            lambda: len([r for r in mock.requests if r.path == "/api/v1/chat"]) == 2
        )

        # "Back to the bot" on a second hand-off.
        second = await response(fake, await fake.press_button(answer["id"], handoff))
        [resume] = buttons(fake, second["id"])
        back = await response(fake, await fake.press_button(second["id"], resume))
        assert back["content"] == RESUMED_TEXT
        key = thread_key(fake.guild_id, fake.channel_id, thread)
        assert not await runtime.store.handoff_open(key)
