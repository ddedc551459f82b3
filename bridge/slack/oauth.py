"""Slack OAuth distribution: many workspaces install the app from `/slack/install`.

bolt runs the flow (`AsyncOAuthFlow`: install page, state check, `oauth.v2.access`,
success or failure page); this module supplies what it plugs in:

- `InstallationStore` and `StateStore`, bolt's async interfaces over our database
  (SQLite or Postgres), so installs survive restarts and are shared by every dyno;
- `Sealer`, which encrypts each installation before it reaches the database. Fernet
  (from `cryptography`) is authenticated encryption with a versioned format and a
  single 32-byte key: a copy of the database reveals no token, and a tampered row is
  refused instead of misread;
- readable install, success and failure pages (the default page loads Slack's button
  image from the internet and shows bare reason codes).

Tokens live in memory only in `InstallationStore`'s cache; logs never show them.
"""

from __future__ import annotations

import html
import json
import logging
import secrets
import time
from datetime import datetime
from typing import Any

from aiohttp import web
from cryptography.fernet import Fernet, InvalidToken
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.oauth.async_callback_options import (
    AsyncCallbackOptions,
    AsyncFailureArgs,
    AsyncSuccessArgs,
)
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient

from bridge.config import Settings
from bridge.errors import ConfigError, StoreError
from bridge.store.base import Store

log = logging.getLogger(__name__)

INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
# What the bot needs: mentions, DMs, channel threads and auto-answer channels (public,
# private, group DMs), replies, the message shortcut, the assistant pane. The same as
# manifests/slack*.yaml (a test compares them).
BOT_SCOPES = (
    "app_mentions:read",
    "assistant:write",
    "channels:history",
    "chat:write",
    "commands",
    "groups:history",
    "im:history",
    "mpim:history",
)
# Slack documents 10 minutes for an authorization code; a state lives as long.
STATE_SECONDS = 600
KEY_HELP = (
    "set BRIDGE_SECRET_KEY to a Fernet key, made with: python -c "
    "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)

# Why an install failed, in words, by bolt's reason code.
FAILURE_TEXT = {
    "access_denied": "The installation was cancelled in Slack, so nothing was installed.",
    "invalid_state": (
        "This installation link has expired or was already used. Start again from the install page."
    ),
    "invalid_browser": (
        "This installation was started in another browser (or its cookie was lost). "
        "Start again from the install page in this browser."
    ),
    "missing_code": "Slack did not send an authorization code. Start again from the install page.",
    "invalid_code": (
        "Slack refused to complete the installation (oauth.v2.access failed): the link may "
        "have expired, or SLACK_CLIENT_ID / SLACK_CLIENT_SECRET may be wrong. Start again "
        "from the install page; if it keeps failing, ask the operator to run `bridge check`."
    ),
    "storage_error": (
        "The installation could not be saved (database unavailable). Please try again."
    ),
}


class Sealer:
    """Encrypts installations with BRIDGE_SECRET_KEY (Fernet)."""

    def __init__(self, key: str) -> None:
        try:
            self._fernet = Fernet(key.encode())
        except ValueError:
            raise ConfigError(f"BRIDGE_SECRET_KEY is not a Fernet key; {KEY_HELP}") from None

    def seal(self, data: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(data).encode()).decode()

    def open(self, sealed: str) -> dict[str, Any]:
        try:
            return dict(json.loads(self._fernet.decrypt(sealed.encode())))
        except InvalidToken:
            raise StoreError(
                "a stored Slack installation cannot be decrypted: BRIDGE_SECRET_KEY is not "
                "the key it was saved with (reinstall the app, or restore the old key)"
            ) from None


def sealer_from(settings: Settings) -> Sealer:
    """Raises ConfigError when OAuth is on but BRIDGE_SECRET_KEY is missing or malformed."""
    if settings.bridge_secret_key is None:
        raise ConfigError(f"Slack OAuth (SLACK_CLIENT_ID) needs BRIDGE_SECRET_KEY; {KEY_HELP}")
    return Sealer(settings.bridge_secret_key.get_secret_value())


class InstallationStore(AsyncInstallationStore):
    """bolt's installation store (bot tokens only) over our database, sealed at rest.

    `token_for(team_id)` serves the bridge's own Web API calls; it caches decrypted
    tokens per team, and deleting an installation drops its cache entry.
    """

    def __init__(self, db: Store, sealer: Sealer) -> None:
        self._db = db
        self._sealer = sealer
        self._tokens: dict[str, str] = {}

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_save(self, installation: Installation) -> None:
        await self.async_save_bot(installation.to_bot())

    async def async_save_bot(self, bot: Bot) -> None:
        await self._db.save_installation(
            bot.enterprise_id, bot.team_id, bot.bot_user_id or "", self._sealer.seal(_bot_data(bot))
        )
        self._tokens.pop(bot.team_id or "", None)
        log.info("Slack app installed in team %s (%s)", bot.team_id, bot.team_name or "?")

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        sealed = await self._db.find_installation(
            None if not is_enterprise_install else enterprise_id,
            None if is_enterprise_install else team_id,
        )
        if sealed is None:
            log.warning(
                "Slack event from team %s not answered: the app is not installed there "
                "(uninstalled, or never installed)",
                team_id or enterprise_id,
            )
            return None
        return Bot(**self._sealer.open(sealed))

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        """Only bot installs are kept (installation_store_bot_only)."""
        return None

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        self._tokens.pop(team_id or "", None)
        if await self._db.delete_installation(None if team_id else enterprise_id, team_id):
            log.info("Slack installation of team %s deleted (uninstalled or revoked)", team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        """User tokens are never stored; the bot install is deleted by `async_delete_bot`."""

    async def token_for(self, team_id: str) -> str | None:
        """The bot token of an installed workspace (None if it is not installed)."""
        token = self._tokens.get(team_id)
        if token is None:
            bot = await self.async_find_bot(enterprise_id=None, team_id=team_id)
            if bot is None:
                return None
            token = self._tokens[team_id] = bot.bot_token
        return token


def _bot_data(bot: Bot) -> dict[str, Any]:
    """`Bot`'s fields as JSON values (its datetimes as timestamps), for `Bot(**data)`."""
    return {
        key: value.timestamp() if isinstance(value, datetime) else value
        for key, value in bot.to_dict_for_copying().items()
    }


class StateStore(AsyncOAuthStateStore):
    """One-time OAuth `state` values in our database: consumed once, within STATE_SECONDS."""

    def __init__(self, db: Store, expiration_seconds: int = STATE_SECONDS) -> None:
        self._db = db
        self._expiration = expiration_seconds

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        state = secrets.token_urlsafe(24)
        await self._db.issue_oauth_state(state, time.time() + self._expiration)
        return state

    async def async_consume(self, state: str) -> bool:
        return bool(state) and await self._db.consume_oauth_state(state)


def _page(title: str, body: str, status: int = 200) -> BoltResponse:
    """A tiny self-contained HTML page (no external assets: works offline, no trackers)."""
    document = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><link rel='icon' href='data:,'>"
        "<style>body{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;"
        "padding:0 1em;line-height:1.5}a.button{display:inline-block;padding:.6em 1.2em;"
        "background:#4a154b;color:#fff;border-radius:6px;text-decoration:none;"
        "font-weight:600}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return BoltResponse(
        status=status, body=document, headers={"Content-Type": "text/html; charset=utf-8"}
    )


async def success_page(args: AsyncSuccessArgs) -> BoltResponse:
    team = args.installation.team_name or args.installation.team_id or "your workspace"
    return _page(
        "Installed",
        f"<p id='result'>The bot is now installed in <b>{html.escape(team)}</b>. Mention it "
        "in a channel, or open it from the Apps section, to ask a question.</p>",
    )


async def failure_page(args: AsyncFailureArgs) -> BoltResponse:
    reason = args.reason
    text = FAILURE_TEXT.get(reason, f"The installation failed ({reason}). Please try again.")
    log.warning("Slack install failed: %s", reason)
    retry = f"<p><a href='{INSTALL_PATH}'>Back to the install page</a></p>"
    return _page(
        "Installation failed",
        f"<p id='result'>{html.escape(text)}</p>{retry}",
        status=args.suggested_status_code,
    )


class InstallFlow(AsyncOAuthFlow):
    """bolt's flow with our install page: an "Add to Slack" button, no external image."""

    async def build_install_page_html(self, url: str, request: AsyncBoltRequest) -> str:
        return str(
            _page(
                "Add the bot to Slack",
                "<p>Install the chatbot in your Slack workspace. Slack asks you to confirm "
                "what it may read and write.</p>"
                f"<p><a class='button' id='add-to-slack' href='{html.escape(url)}'>"
                "Add to Slack</a></p>",
            ).body
        )


def build_flow(
    settings: Settings, store: InstallationStore, states: StateStore, client: AsyncWebClient
) -> InstallFlow:
    """The OAuth flow for SLACK_CLIENT_ID / SLACK_CLIENT_SECRET; `client` reaches the Web
    API (SLACK_API_URL in tests) for `oauth.v2.access` and `auth.test`."""
    assert settings.slack_client_secret is not None
    return InstallFlow(
        client=client,
        settings=AsyncOAuthSettings(
            client_id=settings.slack_client_id,
            client_secret=settings.slack_client_secret.get_secret_value(),
            scopes=list(BOT_SCOPES),
            user_scopes=[],
            install_path=INSTALL_PATH,
            redirect_uri_path=REDIRECT_PATH,
            authorization_url=settings.slack_authorize_url,
            installation_store=store,
            installation_store_bot_only=True,
            state_store=states,
            state_expiration_seconds=STATE_SECONDS,
            callback_options=AsyncCallbackOptions(success=success_page, failure=failure_page),
            logger=logging.getLogger("slack_bolt.oauth"),
        ),
    )


class SlackOAuth:
    """What OAuth mode adds to the Slack adapter: the stores, the flow, and the two pages
    `bridge serve` mounts at INSTALL_PATH and REDIRECT_PATH."""

    def __init__(self, settings: Settings, store: Store, client: AsyncWebClient) -> None:
        self.installs = InstallationStore(store, sealer_from(settings))
        self.states = StateStore(store)
        self.flow = build_flow(settings, self.installs, self.states, client)

    async def install_page(self, request: web.Request) -> web.StreamResponse:
        """GET /slack/install: the "Add to Slack" page (sets the state cookie)."""
        response = await self.flow.handle_installation(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def redirect_page(self, request: web.Request) -> web.StreamResponse:
        """GET /slack/oauth_redirect: Slack sends the browser back here."""
        response = await self.flow.handle_callback(await to_bolt_request(request))
        return await to_aiohttp_response(response)
