"""What `bridge run` / `bridge serve` need from each chat platform adapter."""

from __future__ import annotations

from typing import Protocol


class PlatformAdapter(Protocol):
    """A connected chat platform (Slack, Discord).

    Adapters turn platform events into `bridge.model.Question`s, hand them to
    `Relay.submit` with a `ReplySurface`, and edit old replies for the relay
    (`edit_message`, see `bridge.surface.ReplyEditor`).
    """

    name: str  # "slack" or "discord"

    async def start(self) -> None:
        """Connect (Socket Mode, gateway) and return once connected and receiving."""
        ...

    async def stop(self) -> None:
        """Disconnect; stop receiving new events. Safe to call twice."""
        ...

    @property
    def ready(self) -> bool:
        """True while connected and able to receive events (used by /readyz)."""
        ...

    async def edit_message(
        self, channel: str, message_id: str, text: str, *, workspace: str = ""
    ) -> None:
        """Replace the text of one of the bot's earlier messages (`workspace`: the Slack
        team or Discord guild it is in, for a bot installed in several)."""
        ...
