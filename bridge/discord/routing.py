"""Which conversation a Discord message belongs to (`ThreadKey`s), and the small
memory that lets a reply to one of the bot's answers continue that answer's thread."""

from __future__ import annotations

from collections import OrderedDict

from bridge.model import ThreadKey

PLATFORM = "discord"
DM_WORKSPACE = "@dm"
# Answers remembered for reply-continuation in plain channels. Each entry is ~200 bytes;
# older answers are looked up in the store.
ANSWER_INDEX_SIZE = 10_000


def dm_key(channel_id: int | str) -> ThreadKey:
    """One conversation per DM channel."""
    return ThreadKey(PLATFORM, DM_WORKSPACE, str(channel_id), str(channel_id))


def thread_key(guild_id: int | str, parent_id: int | str, thread_id: int | str) -> ThreadKey:
    """One conversation per thread; `parent_id` is the channel the thread lives in, so
    channel allow-lists work for threads too. In plain-reply mode (no permission to create
    threads) `thread_id` is the id of the question that started the conversation."""
    return ThreadKey(PLATFORM, str(guild_id), str(parent_id), str(thread_id))


class AnswerIndex:
    """Bounded map from the bot's answer message ids to their conversation, in memory.

    Threads need none of this (the thread is the conversation). In plain-reply mode a
    person continues by replying to an answer; the answer's id finds the conversation.
    The store finds it too, durably, but learns an answer's later parts only when the
    answer ends; this map knows each part as soon as it is posted.
    """

    def __init__(self, size: int = ANSWER_INDEX_SIZE) -> None:
        self._size = size
        self._keys: OrderedDict[str, ThreadKey] = OrderedDict()

    def remember(self, message_id: str, key: ThreadKey) -> None:
        self._keys[message_id] = key
        self._keys.move_to_end(message_id)
        while len(self._keys) > self._size:
            self._keys.popitem(last=False)

    def get(self, answer_id: str) -> ThreadKey | None:
        """The conversation of answer message `answer_id`, if this process posted it."""
        return self._keys.get(answer_id)
