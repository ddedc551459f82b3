"""Forwards every vote to `BRIDGE_FEEDBACK_WEBHOOK_URL` as one JSON POST.

Chat never waits for the receiver: `send` only queues, and one tracked worker task
delivers in order, retrying a failed POST (network error, timeout, non-2xx) with
exponential backoff. A delivery that still fails, or a vote that finds the queue full,
is logged and counted (`bridge_feedback_webhook_total{result}`), never raised.
The payload is documented in docs/operations.md ("Feedback webhook").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp

from bridge import metrics
from bridge.tasks import TaskOwner

log = logging.getLogger(__name__)

# Retries: 0.5, 1, 2, 4 … 30 s apart, about two minutes in all — long enough for a
# receiver's restart, short enough that a dead receiver does not pile votes up.
ATTEMPTS = 8
FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 30.0
REQUEST_TIMEOUT_SECONDS = 10.0
QUEUE_SIZE = 1000  # votes waiting for a slow receiver; beyond this they are dropped
# On shutdown, votes still queued get this long before they are given up (logged).
CLOSE_GRACE_SECONDS = 3.0


class FeedbackWebhook:
    """Delivers JSON payloads to one URL in the background.

    Args:
        session: the process' aiohttp session.
        url: the receiver (never logged: it may carry a secret token).
        first_retry: seconds before the first retry; doubled each time up to `max_retry`.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        attempts: int = ATTEMPTS,
        first_retry: float = FIRST_RETRY_SECONDS,
        max_retry: float = MAX_RETRY_SECONDS,
    ) -> None:
        self._session = session
        self._url = url
        self._attempts = attempts
        self._first_retry = first_retry
        self._max_retry = max_retry
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._tasks = TaskOwner("feedback webhook")
        self._worker: asyncio.Task[None] | None = None

    def send(self, payload: dict[str, Any]) -> None:
        """Queue one payload; returns at once."""
        if self._worker is None:
            self._worker = self._tasks.spawn(self._deliver_all(), name="feedback-webhook")
        try:
            self._queue.put_nowait(payload)
        except asyncio.QueueFull:
            metrics.FEEDBACK_WEBHOOK.labels("dropped").inc()
            log.error("feedback webhook: %d votes waiting; this one is dropped", QUEUE_SIZE)

    async def close(self) -> None:
        """Give queued votes `CLOSE_GRACE_SECONDS`, then stop the worker."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_GRACE_SECONDS):
                await self._queue.join()
        await self._tasks.stop()
        if not self._queue.empty():
            log.warning("feedback webhook: %d votes not delivered at shutdown", self._queue.qsize())

    async def _deliver_all(self) -> None:
        while True:
            payload = await self._queue.get()
            try:
                await self._deliver(payload)
            finally:
                self._queue.task_done()

    async def _deliver(self, payload: dict[str, Any]) -> None:
        delay = self._first_retry
        for attempt in range(1, self._attempts + 1):
            problem = await self._post(payload)
            if problem is None:
                metrics.FEEDBACK_WEBHOOK.labels("delivered").inc()
                return
            if attempt == self._attempts:
                break
            metrics.FEEDBACK_WEBHOOK.labels("retried").inc()
            log.warning(
                "feedback webhook: %s; retrying in %.1fs (attempt %d of %d)",
                problem,
                delay,
                attempt,
                self._attempts,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_retry)
        metrics.FEEDBACK_WEBHOOK.labels("failed").inc()
        log.error(
            "feedback webhook: vote %s/%s not delivered after %d attempts (%s)",
            payload.get("platform"),
            payload.get("event_id"),
            self._attempts,
            problem,
        )

    async def _post(self, payload: dict[str, Any]) -> str | None:
        """POST once; None on a 2xx, else what went wrong (without the URL)."""
        try:
            async with self._session.post(
                self._url,
                json=payload,
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
            ) as response:
                if 200 <= response.status < 300:
                    return None
                return f"receiver answered HTTP {response.status}"
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return f"receiver unreachable ({type(exc).__name__})"
