"""What real Discord refuses, for the fake Discord: message length, who may edit which
message in which channel, the bot's permissions, and the interaction response deadline.

Each refusal carries the HTTP status and JSON error code Discord documents
(discord.com/developers/docs/topics/opcodes-and-status-codes#json), so discord.py raises
the same `Forbidden` / `NotFound` / `HTTPException` it would in production:

- content over 2,000 characters: 400, 50035 "Invalid Form Body"
  (discord.com/developers/docs/resources/message#create-message; PLATFORM-NOTES.md);
- an edit naming a channel the message is not in: 404, 10008 "Unknown Message";
- editing a message another user wrote: 403, 50005;
- a guild channel where the bot lacks a permission: 403, 50013 "Missing Permissions"
  (50001 "Missing Access" without VIEW_CHANNEL); DMs need no permission;
- an interaction answered after 3 seconds: 404, 10062 "Unknown interaction"; answered
  twice: 400, 40060 "Interaction has already been acknowledged"
  (discord.com/developers/docs/interactions/receiving-and-responding).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

MESSAGE_CONTENT_LIMIT = 2000
INTERACTION_DEADLINE_SECONDS = 3.0

# Permission bits (discord.com/developers/docs/topics/permissions).
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
READ_MESSAGE_HISTORY = 1 << 16
CREATE_PUBLIC_THREADS = 1 << 35
SEND_MESSAGES_IN_THREADS = 1 << 38
# Every permission bit set: what the fake grants until a test revokes something.
ALL_PERMISSIONS = (1 << 53) - 1

CODE_UNKNOWN_MESSAGE = 10008
CODE_UNKNOWN_INTERACTION = 10062
CODE_MISSING_ACCESS = 50001
CODE_OTHER_USERS_MESSAGE = 50005
CODE_MISSING_PERMISSIONS = 50013
CODE_INVALID_FORM_BODY = 50035
CODE_ALREADY_ACKNOWLEDGED = 40060


@dataclass(frozen=True)
class Refusal:
    """One refused request: Discord's status, code and message."""

    status: int
    code: int
    message: str
    errors: dict[str, Any] | None = None

    def response(self) -> web.Response:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        # Exactly `application/json`, as everywhere in the fake (discord.py insists).
        headers = {"Content-Type": "application/json"}
        return web.Response(status=self.status, body=json.dumps(body).encode(), headers=headers)


def content_refusal(body: Any) -> Refusal | None:
    """Content longer than Discord allows, as Discord words the form error."""
    content = body.get("content") if isinstance(body, dict) else None
    if isinstance(content, str) and len(content) > MESSAGE_CONTENT_LIMIT:
        error = {
            "code": "BASE_TYPE_MAX_LENGTH",
            "message": f"Must be {MESSAGE_CONTENT_LIMIT} or fewer in length.",
        }
        errors = {"content": {"_errors": [error]}}
        return Refusal(400, CODE_INVALID_FORM_BODY, "Invalid Form Body", errors)
    return None


def edit_refusal(message: dict[str, Any] | None, channel_id: str, bot_id: str) -> Refusal | None:
    """An edit of `message` sent to `channel_id` by the bot."""
    if message is None or message["channel_id"] != channel_id:
        return Refusal(404, CODE_UNKNOWN_MESSAGE, "Unknown Message")
    if message["author"]["id"] != bot_id:
        reason = "Cannot edit a message authored by another user"
        return Refusal(403, CODE_OTHER_USERS_MESSAGE, reason)
    return None


def permission_refusal(granted: int, needed: int) -> Refusal | None:
    """Whether the bot's `granted` permissions cover `needed` (both bit sets)."""
    if not granted & VIEW_CHANNEL:
        return Refusal(403, CODE_MISSING_ACCESS, "Missing Access")
    if needed & ~granted:
        return Refusal(403, CODE_MISSING_PERMISSIONS, "Missing Permissions")
    return None


def interaction_refusal(age: float, callbacks: int, deadline: float) -> Refusal | None:
    """The initial response of an interaction `age` seconds old, answered `callbacks`
    times before."""
    if callbacks:
        reason = "Interaction has already been acknowledged."
        return Refusal(400, CODE_ALREADY_ACKNOWLEDGED, reason)
    if age > deadline:
        return Refusal(404, CODE_UNKNOWN_INTERACTION, "Unknown interaction")
    return None
