"""Finals that do not wait for chat.update: post the ending anew, delete the placeholder.

Under saturation every answer's final needs a `chat.update` token, and Slack allows
about 50 per minute per workspace, so the last of 50 simultaneous answers would wait
about a minute for its final. `chat.postMessage` (paced per channel) and `chat.delete`
(a Tier 3 budget of its own) are separate budgets. So when an answer ends while its
message still shows nothing but the placeholder, and the update budget has no token for
it within one edit interval, the ending takes whichever comes first: an update token
(the usual edit) or a delete token, in which case the ending is posted as a new message
in the thread and the placeholder is deleted right after (the token is already held, so
"Thinking…" and the answer show together only for one call's time).

Only placeholders are swapped: text a person has already read is never shown twice, and
the thread ends with the answer in its usual place (last). If the delete fails, the
placeholder is edited to point at the answer below instead of being left "Thinking…".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bridge.errors import BridgeError
from bridge.pacing import Priority, Rank, TokenBucket
from bridge.slack.api import SlackApi
from bridge.slack.budget import DELETE, UPDATE
from bridge.surface import Draft, EditKind

log = logging.getLogger(__name__)

ENDINGS = frozenset({EditKind.FINAL, EditKind.NOTICE})
ANSWER_BELOW = "_(The answer is below.)_"

Fields = Callable[[str], dict[str, Any]]
Post = Callable[[str], Awaitable[str]]


class PlaceholderSwap:
    """One reply's placeholders, and the swap of one for its ending."""

    def __init__(self, api: SlackApi, target: Any, *, patience: float, fields: Fields) -> None:
        self._api = api
        self._target = target
        self._patience = patience
        self._fields = fields
        self.placeholders: set[str] = set()  # messages showing only a status line
        self.moved: dict[str, str] = {}  # a swapped placeholder's ts → its ending's ts

    async def race(self, update: TokenBucket, rank: Rank, draft: Draft) -> TokenBucket | None:
        """Wait for an update token (None: edit as usual) or, once `draft` is an ending
        that waited `patience`, for a delete token (returned: swap)."""
        deletes = self._api.budgets.bucket(self._target.team_id, DELETE)
        editing = asyncio.ensure_future(update.acquire(rank))
        deleting: asyncio.Future[bool] | None = None
        chosen: TokenBucket | None = None
        try:
            while True:
                waiting = {editing} if deleting is None else {editing, deleting}
                done, _ = await asyncio.wait(
                    waiting, timeout=self._patience, return_when=asyncio.FIRST_COMPLETED
                )
                if editing in done:
                    chosen = update
                    return None
                if deleting is not None and deleting in done:
                    chosen = deletes
                    return deletes
                if deleting is None and draft.kind in ENDINGS:
                    deleting = asyncio.ensure_future(deletes.acquire(Priority.FINAL))
        finally:
            _release(editing, update, used=chosen is update)
            if deleting is not None:
                _release(deleting, deletes, used=chosen is deletes)

    async def replace(
        self, placeholder: str, draft: Draft, deletes: TokenBucket, post: Post
    ) -> tuple[str, str]:
        """Post the ending as a new message (`post`: the surface's own), then delete
        `placeholder` with the delete token held; returns (the new ts, its text)."""
        target = self._target
        text = draft.text()
        try:
            new_id = await post(text)
        except BaseException:
            deletes.refund()
            raise
        self.moved[placeholder] = new_id
        self.placeholders.discard(placeholder)
        try:
            await self._api.send(
                "chat.delete",
                team_id=target.team_id,
                bucket=deletes,
                channel=target.channel,
                ts=placeholder,
            )
        except BridgeError as exc:
            log.warning("could not delete a placeholder (%s); pointing it at the answer", exc)
            with contextlib.suppress(BridgeError):
                await self._api.call(
                    "chat.update",
                    team_id=target.team_id,
                    budget=UPDATE,
                    channel=target.channel,
                    ts=placeholder,
                    **self._fields(ANSWER_BELOW),
                )
        return new_id, text


def _release(waiting: asyncio.Future[bool], bucket: TokenBucket, *, used: bool) -> None:
    """Stop waiting for `bucket`; a token it granted that will not be used goes back."""
    if used:
        return
    if not waiting.done():
        waiting.cancel()  # a token granted in the same instant goes back (TokenBucket)
    elif not waiting.cancelled() and waiting.result():
        bucket.refund()
