"""Buttons for the fake Slack: presses (`block_actions`) on the buttons a message shows,
ephemeral replies (`chat.postEphemeral`), and interactivity payloads as signed HTTP
requests. (`FakeSlack` itself has shortcuts, `views.open`, `view_submission` and
`send_interactive` for Socket Mode.)

A workspace can be made to refuse `context_actions` blocks (`feedback_buttons_supported`
off), which it then answers with `invalid_blocks`, as workspaces without Slack's
feedback buttons do.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bridge.testing.fake_slack import FakeMessage
    from bridge.testing.slack_socket_mode import EnvelopeDelivery


@dataclass(frozen=True)
class Ephemeral:
    """A message only `user` sees."""

    channel: str
    user: str
    thread_ts: str | None
    text: str


def interactive_request(
    secret: str, payload: dict[str, Any], *, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """Body and signed headers of an interactivity POST as Slack sends it: a form with
    one `payload` field holding the JSON."""
    from bridge.testing.fake_slack import signed_headers

    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    headers = signed_headers(secret, body, timestamp)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    return body, headers


def _buttons(blocks: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(block_id, action, action type) for every button a message's blocks show."""
    for block in blocks:
        for element in block.get("elements") or ():
            if element.get("type") == "feedback_buttons":
                for key in ("positive_button", "negative_button"):
                    yield block.get("block_id", ""), {**element, **element[key]}, "feedback_buttons"
            elif element.get("type") == "button":
                yield block.get("block_id", ""), element, "button"


class SlackInteractivity:
    """The interactive half of the fake Slack."""

    team_id: str
    messages: dict[str, FakeMessage]
    socket_mode: EnvelopeDelivery

    if TYPE_CHECKING:  # FakeSlack's (its interactivity for shortcuts and modals)

        def _next_ts(self) -> str: ...

        def _trigger(self) -> str: ...

        def _actor(self, user: str) -> dict[str, Any]: ...

    def _init_interactivity(self) -> None:
        self.feedback_buttons_supported = True
        self.ephemerals: list[Ephemeral] = []

    # Building payloads -------------------------------------------------------------------

    def button_values(self, message: FakeMessage) -> list[str]:
        """The values of the buttons `message` shows, in order."""
        return [str(action.get("value", "")) for _, action, _ in _buttons(message.blocks)]

    def press(
        self, message: FakeMessage, value: str, *, user: str = "U1", action_id: str | None = None
    ) -> dict[str, Any]:
        """The `block_actions` payload of `user` pressing the button of `message` whose
        value is `value`. With `action_id`, the payload is built even when no such button
        exists (a forged press)."""
        found = next(
            (
                (block_id, action, kind)
                for block_id, action, kind in _buttons(message.blocks)
                if action.get("value") == value
            ),
            None,
        )
        if found is None:
            if action_id is None:
                raise AssertionError(
                    f"no button with value {value!r}: {self.button_values(message)}"
                )
            found = ("forged", {"action_id": action_id, "value": value}, "button")
        block_id, action, kind = found
        data: dict[str, Any] = {"type": "message", "ts": message.ts, "text": message.text}
        container: dict[str, Any] = {
            "type": "message",
            "message_ts": message.ts,
            "channel_id": message.channel,
            "is_ephemeral": False,
        }
        if message.thread_ts:
            data["thread_ts"] = container["thread_ts"] = message.thread_ts
        data["blocks"] = message.blocks
        return {
            "type": "block_actions",
            "user": self._actor(user),
            "api_app_id": "AFAKE",
            "token": "verification-token-unused",
            "container": container,
            "trigger_id": self._trigger(),
            "team": {"id": self.team_id, "domain": "fake"},
            "channel": {"id": message.channel, "name": "general"},
            "message": data,
            "response_url": f"https://hooks.fake-slack.test/actions/{uuid.uuid4().hex}",
            "actions": [
                {
                    "type": kind,
                    "action_id": action["action_id"],
                    "block_id": block_id,
                    "value": value,
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }

    # Web API -----------------------------------------------------------------------------

    def _check_interactive_blocks(self, blocks: list[dict[str, Any]]) -> None:
        from bridge.testing.fake_slack import _Refusal

        if not self.feedback_buttons_supported and any(
            block.get("type") == "context_actions" for block in blocks
        ):
            raise _Refusal("invalid_blocks", detail="unsupported type: context_actions")

    def _post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        blocks = params.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        texts = [b.get("text", "") for b in blocks if b.get("type") == "markdown"]
        text = "".join(texts) or str(params.get("text") or "")
        self.ephemerals.append(
            Ephemeral(
                channel=str(params["channel"]),
                user=str(params["user"]),
                thread_ts=params.get("thread_ts") or None,
                text=text,
            )
        )
        return {"message_ts": self._next_ts()}

    def ephemerals_for(self, user: str) -> list[str]:
        """The texts of the ephemeral messages `user` was shown, oldest first."""
        return [e.text for e in self.ephemerals if e.user == user]
