"""Crash recovery: turns left unfinished by processes that are gone end as interrupted.

A reply left showing the streaming marker by a process that crashed is edited to say it
was interrupted, and its turn is marked so in the store — once, by one process, and only
by a process connected to the reply's platform (one that can edit it).
"""

from __future__ import annotations

import asyncio
import logging

from bridge.errors import PlatformRateLimited
from bridge.relay.liveness import Liveness
from bridge.render import INTERRUPTED_NOTICE
from bridge.store import Store
from bridge.surface import ReplyEditor
from bridge.tasks import TaskOwner

log = logging.getLogger(__name__)

RESTART_REASON = "interrupted by a restart"
RECOVERY_EDIT_ATTEMPTS = 3  # a stale reply's edit waits out this many 429s
RECOVERY_EDIT_TIMEOUT_SECONDS = 10.0  # bound on each of those edits (and each wait)


class Recovery:
    """Finds and ends the turns of processes that are gone: from `start` (or a first
    `recover`) every `interval` seconds until `stop_sweeping`, so a process that
    crashes while this one runs is noticed too."""

    def __init__(self, store: Store, liveness: Liveness, *, interval: float) -> None:
        self._store = store
        self._liveness = liveness
        self._interval = interval
        self._tasks = TaskOwner("recovery")
        self._editors: dict[str, ReplyEditor] = {}
        self._sweeping = False

    def register_editor(self, platform: str, editor: ReplyEditor) -> None:
        self._editors[platform] = editor

    def start(self) -> None:
        """Recover now and then every `interval`, in the background: start-up does not
        wait for the reply edits (hundreds of them may wait on platform rate limits)."""
        self._start_sweeping(first_in=0.0)

    async def recover(self) -> int:
        """Mark unfinished turns of processes that are gone as interrupted and edit their
        replies to say so; from now on a sweep repeats this every `interval`. Returns
        how many turns were recovered."""
        self._start_sweeping(first_in=self._interval)
        recovered = 0
        for turn in await self._liveness.orphans():
            platform = turn.thread.platform
            editor = self._editors.get(platform)
            has_reply = bool(turn.reply_message_ids and turn.reply_channel)
            if has_reply and editor is None:
                continue  # leave it to a process connected to that platform
            if not await self._store.interrupt_turn(platform, turn.event_id, RESTART_REASON):
                continue  # finished meanwhile, or another process recovered it first
            recovered += 1
            if editor is not None and turn.reply_channel and turn.reply_message_ids:
                await _edit_interrupted(
                    editor, turn.reply_channel, turn.reply_message_ids[-1], turn.thread.workspace
                )
        if recovered:
            log.info("marked %d answers from an earlier process as interrupted", recovered)
        return recovered

    def stop_sweeping(self) -> None:
        """The platforms are about to stop: no more reply edits."""
        self._sweeping = False

    async def stop(self) -> None:
        """End a sweep still running (its edits are bounded, but the store is closing)."""
        self.stop_sweeping()
        await self._tasks.stop()

    def _start_sweeping(self, *, first_in: float) -> None:
        if not self._sweeping:
            self._sweeping = True
            self._tasks.spawn(self._sweep(first_in), name="relay-recovery-sweep")

    async def _sweep(self, first_in: float) -> None:
        """Its own task, beside the lock keeping: reply edits may wait on rate limits."""
        await asyncio.sleep(first_in)
        while self._sweeping:
            try:
                await self.recover()
            except Exception:
                log.exception("recovery sweep failed")
            await asyncio.sleep(self._interval)


async def _edit_interrupted(
    editor: ReplyEditor, channel: str, message_id: str, workspace: str
) -> None:
    """Say "interrupted" in a stale reply: waits out a few rate limits, each attempt
    bounded; one reply that cannot be edited must not stop recovery of the others."""
    for _ in range(RECOVERY_EDIT_ATTEMPTS):
        try:
            async with asyncio.timeout(RECOVERY_EDIT_TIMEOUT_SECONDS):
                await editor.edit_message(
                    channel, message_id, INTERRUPTED_NOTICE, workspace=workspace
                )
            return
        except PlatformRateLimited as exc:
            await asyncio.sleep(min(exc.retry_after, RECOVERY_EDIT_TIMEOUT_SECONDS))
        except Exception as exc:
            log.warning("could not edit interrupted reply %s: %s", message_id, exc)
            return
    log.warning("could not edit interrupted reply %s: still rate limited", message_id)
