"""The quality loop around answers: 👍/👎 votes (with an optional "what was wrong?"
note), their webhook, and hand-offs of a thread to a person.

Platform-neutral: the Slack and Discord adapters turn button presses into calls on
`FeedbackService` and `Handoffs` (their `interactions` modules) and show the returned
text privately.
"""

from __future__ import annotations

from bridge.feedback.handoff import Handoffs, ThreadGate, is_resume
from bridge.feedback.service import MAX_REASON_CHARS, FeedbackService, VoteResult
from bridge.feedback.webhook import FeedbackWebhook

__all__ = [
    "MAX_REASON_CHARS",
    "FeedbackService",
    "FeedbackWebhook",
    "Handoffs",
    "ThreadGate",
    "VoteResult",
    "is_resume",
]
