"""Slack workspace installations and OAuth states, in SQL both databases accept.

The store only ever sees installations *sealed* (encrypted by `bridge.slack.oauth`): it
keeps the team and bot user in clear for lookups and the bot token inside the sealed
text, so a copy of the database reveals no token.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

# Enterprise-wide installs have no team; workspace installs no enterprise. '' keeps the
# key NOT NULL and unique either way.
NO_ID = ""


class InstallationsSQL:
    """Mixed into `SQLStore`: what bolt's installation and OAuth state stores need."""

    if TYPE_CHECKING:  # provided by SQLStore

        async def _query(self, sql: str, *params: Any) -> Sequence[Mapping[str, Any]]: ...

        async def _execute(self, sql: str, *params: Any) -> int: ...

    async def save_installation(
        self, enterprise_id: str | None, team_id: str | None, bot_user_id: str, sealed: str
    ) -> None:
        """Keep (or replace: a reinstall brings a new token) one workspace's install."""
        now = time.time()
        await self._execute(
            "INSERT INTO slack_installations (enterprise_id, team_id, bot_user_id, sealed, "
            "installed_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (enterprise_id, team_id) DO UPDATE SET "
            "bot_user_id = excluded.bot_user_id, sealed = excluded.sealed, "
            "updated_at = excluded.updated_at",
            enterprise_id or NO_ID,
            team_id or NO_ID,
            bot_user_id,
            sealed,
            now,
            now,
        )

    async def find_installation(self, enterprise_id: str | None, team_id: str | None) -> str | None:
        """The sealed installation of a workspace, or None when it is not installed."""
        rows = await self._query(
            "SELECT sealed FROM slack_installations WHERE enterprise_id = ? AND team_id = ?",
            enterprise_id or NO_ID,
            team_id or NO_ID,
        )
        return str(rows[0]["sealed"]) if rows else None

    async def delete_installation(self, enterprise_id: str | None, team_id: str | None) -> bool:
        """Forget a workspace (uninstalled, tokens revoked); False if it was not known."""
        deleted = await self._execute(
            "DELETE FROM slack_installations WHERE enterprise_id = ? AND team_id = ?",
            enterprise_id or NO_ID,
            team_id or NO_ID,
        )
        return deleted > 0

    async def issue_oauth_state(self, state: str, expires_at: float) -> None:
        await self._execute(
            "INSERT INTO slack_oauth_states (state, expires_at) VALUES (?, ?)", state, expires_at
        )

    async def consume_oauth_state(self, state: str) -> bool:
        """True exactly once per unexpired state: a replayed or stale one is refused.
        Expired states are swept on the way."""
        now = time.time()
        await self._execute("DELETE FROM slack_oauth_states WHERE expires_at <= ?", now)
        consumed = await self._execute("DELETE FROM slack_oauth_states WHERE state = ?", state)
        return consumed == 1
