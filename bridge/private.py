"""Private answers (`/ask` that only the asker sees) and their "Share in channel" button.

A private answer is its own one-question conversation (nobody can reply to an ephemeral
message), keyed apart from the thread it was asked in, so a later public follow-up there
never continues a conversation others could not see. Its finished text — exactly as it
was shown, sources included — is kept in a bounded memory, so the Share button can post
it publicly, attributed to the person who shared it.
"""

from __future__ import annotations

from collections import OrderedDict

from bridge.model import ThreadKey

SHARE_LABEL = "Share in channel"
SHARED_NOTICE = "Shared in the channel."
SHARE_GONE_TEXT = (
    "That answer is no longer available to share (the bot restarted or it is too old). "
    "Please ask again."
)
# Finished private answers kept for sharing: ~1,000 answers of a few KB each. Slack's
# response_url and Discord's interaction token both expire after minutes, so older
# buttons are rarely pressed.
SHARE_BOOK_SIZE = 1000
PRIVATE_THREAD_PREFIX = "private-"


def private_key(platform: str, workspace: str, channel: str, ask_id: str) -> ThreadKey:
    """A conversation of its own for one private question (`ask_id`: the command's id)."""
    return ThreadKey(platform, workspace, channel, PRIVATE_THREAD_PREFIX + ask_id)


def shared_text(answer: str, sharer: str) -> str:
    """The public post: who shared it, then the answer. `sharer` must already be
    neutralised for the platform (a display name can be "@everyone")."""
    return f"*Shared by {sharer}:*\n\n{answer}"


class AnswerCopy:
    """The text of each message of one answer as last shown, in posting order."""

    def __init__(self) -> None:
        self._parts: dict[str, str] = {}

    def shown(self, message_id: str, text: str) -> None:
        self._parts[message_id] = text

    @property
    def text(self) -> str:
        return "\n\n".join(self._parts.values())


class ShareBook:
    """Finished private answers by share id, bounded (oldest forgotten first)."""

    def __init__(self, size: int = SHARE_BOOK_SIZE) -> None:
        self._size = size
        self._answers: OrderedDict[str, str] = OrderedDict()

    def remember(self, share_id: str, text: str) -> None:
        self._answers[share_id] = text
        self._answers.move_to_end(share_id)
        while len(self._answers) > self._size:
            self._answers.popitem(last=False)

    def get(self, share_id: str) -> str | None:
        return self._answers.get(share_id)
