"""Socket Mode delivery as Slack does it, for the fake Slack: every envelope must be
acknowledged within 3 seconds, or Slack sends the same payload again as a new envelope
with `retry_attempt` counting up and `retry_reason` saying why.

Slack documents the acknowledgement deadline and the retry schedule for the Events API
(immediately, after 1 minute, after 5 minutes; at most 3 retries) and applies it to
Socket Mode envelopes, which carry `retry_attempt` / `retry_reason` instead of the
`X-Slack-Retry-Num` / `X-Slack-Retry-Reason` headers (../shared/PLATFORM-NOTES.md,
api.slack.com/apis/connections/socket#acknowledge, api.slack.com/apis/events-api#retries).

Tests that study re-delivery shorten the schedule (`ack_timeout`, `retry_delays`); the
default is Slack's own, so an adapter that acks late shows up as a re-delivery.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

# Slack waits this long for an envelope's acknowledgement.
ACK_TIMEOUT_SECONDS = 3.0
# Pause before each retry after a missed deadline: immediately, after 1 min, after 5 min.
RETRY_DELAYS_SECONDS = (0.0, 60.0, 300.0)
# What Slack puts in `retry_reason` when the previous envelope was not acknowledged.
RETRY_REASON_TIMEOUT = "timeout"


@dataclass(frozen=True)
class Delivery:
    """One envelope sent over Socket Mode."""

    envelope_id: str
    payload: dict[str, Any]
    retry_attempt: int
    retry_reason: str
    at: float  # time.monotonic() when sent


class EnvelopeDelivery:
    """Sends envelopes over the newest connection and re-delivers unacknowledged ones.

    Args:
        sockets: the fake's open Socket Mode connections (shared list, newest last).
        notify: wakes the fake's waiters after each delivery and acknowledgement.
        ack_timeout: seconds an envelope may go unacknowledged.
        retry_delays: pause before retry 1, 2, 3, … once a deadline passed; its length
            is the number of retries.
    """

    def __init__(
        self,
        sockets: list[web.WebSocketResponse],
        notify: Callable[[], None],
        *,
        ack_timeout: float = ACK_TIMEOUT_SECONDS,
        retry_delays: tuple[float, ...] = RETRY_DELAYS_SECONDS,
    ) -> None:
        self._sockets = sockets
        self._notify = notify
        self._ack_timeout = ack_timeout
        self._retry_delays = retry_delays
        self.deliveries: list[Delivery] = []
        self.acks: dict[str, dict[str, Any]] = {}
        self.late_acks: list[str] = []  # acknowledged after the deadline had passed
        self._sent: dict[str, Delivery] = {}
        self._watchers: set[asyncio.Task[None]] = set()

    @property
    def redeliveries(self) -> list[Delivery]:
        """Envelopes that repeat an earlier one because it was not acknowledged in time."""
        return [d for d in self.deliveries if d.retry_reason == RETRY_REASON_TIMEOUT]

    async def send(
        self,
        payload: dict[str, Any],
        *,
        kind: str = "events_api",
        retry_attempt: int = 0,
        retry_reason: str = "",
    ) -> str:
        """Send `payload` in a new envelope and watch for its acknowledgement."""
        envelope_id = uuid.uuid4().hex
        envelope = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": kind,
            "accepts_response_payload": False,
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }
        delivery = Delivery(envelope_id, payload, retry_attempt, retry_reason, time.monotonic())
        self._sent[envelope_id] = delivery
        self.deliveries.append(delivery)
        await self._sockets[-1].send_str(json.dumps(envelope))
        watcher = asyncio.create_task(
            self._watch(delivery, kind), name=f"fake-slack-ack-{envelope_id[:8]}"
        )
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        self._notify()
        return envelope_id

    def acknowledged(self, envelope_id: str, data: dict[str, Any]) -> None:
        """The client acknowledged `envelope_id` (late ones are recorded, as Slack would
        already have re-sent the payload)."""
        delivery = self._sent.get(envelope_id)
        if delivery is not None and time.monotonic() - delivery.at > self._ack_timeout:
            self.late_acks.append(envelope_id)
        self.acks[envelope_id] = data
        self._notify()

    async def _watch(self, delivery: Delivery, kind: str) -> None:
        await asyncio.sleep(self._ack_timeout)
        if delivery.envelope_id in self.acks:
            return
        attempt = delivery.retry_attempt + 1
        if attempt > len(self._retry_delays):
            return  # Slack gives up after its last retry
        await asyncio.sleep(self._retry_delays[attempt - 1])
        if delivery.envelope_id in self.acks:
            return  # acknowledged late, but before the retry went out
        while not self._sockets:  # noqa: ASYNC110 - reconnects happen in other tasks
            await asyncio.sleep(0.05)
        await self.send(
            delivery.payload, kind=kind, retry_attempt=attempt, retry_reason=RETRY_REASON_TIMEOUT
        )

    async def close(self) -> None:
        """Stop every pending re-delivery (the fake is shutting down)."""
        while self._watchers:  # a watcher may have started the next one meanwhile
            watchers = list(self._watchers)
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
