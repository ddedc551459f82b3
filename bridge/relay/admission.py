"""Admission: which questions go to the backend, and the polite reply for those that do not.

Allow-lists, question size and the per-user rate live here, so a new rule is one more
check in `Admission.refusal` and nothing else in the relay changes. Before any of them,
`Admission.gate` keeps the bot quiet in a thread handed to a person (`resume` ends that).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bridge.config import Settings
from bridge.feedback import Handoffs, ThreadGate
from bridge.model import Question

if TYPE_CHECKING:  # the routes' chatbots are handed in by the relay
    from bridge.chatbots import Chatbots

SHUTTING_DOWN_TEXT = "The bot is restarting — please ask again in a minute."
EMPTY_QUESTION_HINT = (
    "Hi! Ask me a question in the same message, for example: “How do I reset my password?”"
)
NOT_ALLOWED_TEXT = "Sorry, I'm not enabled here. Ask an admin if you think I should be."
RATE_LIMITED_TEXT = "You're asking faster than I can answer — please wait a moment and try again."

RATE_WINDOW_SECONDS = 60.0  # BRIDGE_USER_RATE_PER_MINUTE counts questions in this window
PRUNE_MIN_USERS = 1024  # the rate limiter looks for idle users once it tracks this many


def length_refusal(text: str, limit: int) -> str | None:
    """The reply to a question over BRIDGE_MAX_QUESTION_CHARS (also `bridge ask`'s)."""
    if len(text) <= limit:
        return None
    return (
        f"That question is {len(text):,} characters long; the limit is {limit:,}. "
        "Please shorten it."
    )


class Admission:
    """Decides, per question, whether it is answered or refused (and with what text)."""

    def __init__(
        self,
        settings: Settings,
        handoffs: Handoffs,
        *,
        clock: Callable[[], float] = time.monotonic,
        chatbots: Chatbots | None = None,
    ):
        self._settings = settings
        self._handoffs = handoffs
        self._chatbots = chatbots
        self._rate = RateLimiter(settings.bridge_user_rate_per_minute, clock=clock)

    async def gate(self, question: Question) -> ThreadGate:
        """Whether the thread is with a person (stay quiet) or `resume`s now."""
        return await self._handoffs.gate(question.thread, question.text)

    async def resume(self, question: Question) -> None:
        """End the thread's hand-off (the `resume` claimed as a turn, like `reset`)."""
        await self._handoffs.end(question.thread, question.user_id)

    def refusal(self, question: Question, *, accepting: bool = True) -> str | None:
        """The polite reply for a question we will not send to the backend, if any.

        `accepting`: whether the relay still took questions when this one arrived.
        The rate limit is checked last, so refused questions do not use up a user's rate.
        """
        if not accepting:
            return SHUTTING_DOWN_TEXT
        settings = self._settings
        text = question.text.strip()
        if not self.allows(question):
            return NOT_ALLOWED_TEXT
        if not text:
            return EMPTY_QUESTION_HINT
        if too_long := length_refusal(text, settings.bridge_max_question_chars):
            return too_long
        if not self._rate.allow(question.thread.platform, question.user_id):
            return RATE_LIMITED_TEXT
        return None

    def allows(self, question: Question) -> bool:
        """Whether the allow-lists admit this question (adapters may ask before doing
        visible work such as creating a Discord thread)."""
        settings = self._settings
        thread = question.thread
        if settings.bridge_allowed_users and question.user_id not in settings.bridge_allowed_users:
            return False
        route = self._chatbots.route_for(thread) if self._chatbots else None
        if (
            route is not None
            and route.allowed_users
            and question.user_id not in route.allowed_users
        ):
            return False  # the channel's route names who may ask there
        if question.is_dm:
            return True  # DMs have no channel or guild to allow; the user list still applies
        if settings.bridge_allowed_channels and not (
            {thread.channel, thread.thread} & settings.bridge_allowed_channels
        ):
            return False
        return not (
            thread.platform == "discord"
            and settings.bridge_allowed_guilds
            and thread.workspace not in settings.bridge_allowed_guilds
        )


@dataclass
class RateLimiter:
    """Sliding-window count of questions per (platform, user)."""

    per_window: int
    window: float = RATE_WINDOW_SECONDS
    clock: Callable[[], float] = time.monotonic
    _seen: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    _prune_at: int = PRUNE_MIN_USERS

    def allow(self, platform: str, user_id: str) -> bool:
        if self.per_window <= 0:
            return True
        now = self.clock()
        stamps = self._seen.setdefault((platform, user_id), deque())
        while stamps and now - stamps[0] >= self.window:
            stamps.popleft()
        if len(stamps) >= self.per_window:
            return False
        stamps.append(now)
        self._forget_idle(now)
        return True

    @property
    def tracked_users(self) -> int:
        """How many users the limiter remembers (memory follows the active users)."""
        return len(self._seen)

    def _forget_idle(self, now: float) -> None:
        """Drop users with no question inside the window, so memory follows the active
        users rather than every user ever seen. Amortized: only when the map doubled."""
        if len(self._seen) < self._prune_at:
            return
        self._seen = {
            key: stamps for key, stamps in self._seen.items() if now - stamps[-1] < self.window
        }
        self._prune_at = max(PRUNE_MIN_USERS, 2 * len(self._seen))
