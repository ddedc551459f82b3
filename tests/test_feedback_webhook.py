"""The feedback webhook on its own: a receiver that never recovers, and a full queue."""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client import REGISTRY

from bridge.feedback.webhook import QUEUE_SIZE, FeedbackWebhook
from bridge.testing.webhook_receiver import WebhookReceiver


def deliveries(result: str) -> float:
    return REGISTRY.get_sample_value("bridge_feedback_webhook_total", {"result": result}) or 0.0


async def test_a_receiver_that_never_recovers_is_given_up_logged_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failed, retried = deliveries("failed"), deliveries("retried")
    async with WebhookReceiver(fail_first=100) as receiver, aiohttp.ClientSession() as session:
        webhook = FeedbackWebhook(session, receiver.url, attempts=3, first_retry=0.01)
        webhook.send({"platform": "slack", "event_id": "Ev1", "vote": "up"})
        webhook.send({"platform": "slack", "event_id": "Ev2", "vote": "down"})
        await webhook.close()  # waits for both within its grace
    assert [body["event_id"] for body in receiver.attempts] == ["Ev1"] * 3 + ["Ev2"] * 3
    assert deliveries("failed") == failed + 2
    assert deliveries("retried") == retried + 4
    assert (
        "vote slack/Ev1 not delivered after 3 attempts (receiver answered HTTP 500)" in caplog.text
    )
    assert receiver.url not in caplog.text  # the URL may carry a token


async def test_votes_beyond_the_queue_are_dropped_not_waited_for() -> None:
    dropped = deliveries("dropped")
    async with aiohttp.ClientSession() as session:
        # Nothing listens on the discard port: every delivery would be slow to fail.
        webhook = FeedbackWebhook(session, "http://127.0.0.1:9/hook", attempts=1)
        for number in range(QUEUE_SIZE + 5):
            webhook.send({"platform": "discord", "event_id": str(number)})  # never blocks
        assert deliveries("dropped") == dropped + 5
        await webhook.close()
