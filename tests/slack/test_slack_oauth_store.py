"""bolt's installation and OAuth state stores over our database (SQLite and Postgres):
tokens sealed at rest, states usable once, uninstall forgets the workspace."""

from __future__ import annotations

import time
from pathlib import Path

import asyncpg
import pytest
from cryptography.fernet import Fernet
from slack_sdk.oauth.installation_store.models.installation import Installation

from bridge.check import Status, check_slack_oauth
from bridge.config import load_settings
from bridge.errors import ConfigError, StoreError
from bridge.slack.oauth import InstallationStore, Sealer, StateStore
from bridge.store import is_postgres_url, open_store, parse_database_url

KEY = Fernet.generate_key().decode()
TOKEN = "xoxb-secret-token-T1"


async def raw_rows(database_url: str, sql: str) -> list[tuple]:
    if is_postgres_url(database_url):
        conn = await asyncpg.connect(database_url)
        try:
            return [tuple(row) for row in await conn.fetch(sql)]
        finally:
            await conn.close()
    import sqlite3

    with sqlite3.connect(Path(parse_database_url(database_url))) as conn:
        return conn.execute(sql).fetchall()


def installation(team: str = "T1", token: str = TOKEN) -> Installation:
    return Installation(
        app_id="A1",
        team_id=team,
        team_name="Team One",
        bot_token=token,
        bot_id="B1",
        bot_user_id="UBOT1",
        bot_scopes="chat:write,app_mentions:read",
        user_id="UINSTALLER",
    )


async def test_installations_are_sealed_found_and_deleted(database_url: str) -> None:
    store = await open_store(database_url)
    try:
        installs = InstallationStore(store, Sealer(KEY))
        await installs.async_save(installation())
        rows = await raw_rows(
            database_url, "SELECT team_id, bot_user_id, sealed FROM slack_installations"
        )
        assert [(team, user) for team, user, _ in rows] == [("T1", "UBOT1")]
        assert TOKEN not in repr(rows) and "xoxb" not in repr(rows)
        bot = await installs.async_find_bot(enterprise_id=None, team_id="T1")
        assert bot is not None and bot.bot_token == TOKEN and bot.bot_user_id == "UBOT1"
        assert await installs.token_for("T1") == TOKEN
        # A reinstall replaces the token.
        await installs.async_save(installation(token="xoxb-new"))
        assert await installs.token_for("T1") == "xoxb-new"
        await installs.async_delete_all(enterprise_id=None, team_id="T1")
        assert await installs.async_find_bot(enterprise_id=None, team_id="T1") is None
        assert await installs.token_for("T1") is None
    finally:
        await store.close()


async def test_a_different_key_cannot_open_stored_installations(database_url: str) -> None:
    store = await open_store(database_url)
    try:
        await InstallationStore(store, Sealer(KEY)).async_save(installation())
        other = InstallationStore(store, Sealer(Fernet.generate_key().decode()))
        with pytest.raises(StoreError, match="BRIDGE_SECRET_KEY is not the key"):
            await other.async_find_bot(enterprise_id=None, team_id="T1")
    finally:
        await store.close()


def test_a_malformed_key_is_a_config_error_with_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"Fernet\.generate_key"):
        Sealer("not-a-key")


async def test_states_are_consumed_once_and_expire(database_url: str) -> None:
    store = await open_store(database_url)
    try:
        states = StateStore(store)
        state = await states.async_issue()
        assert await states.async_consume(state) is True
        assert await states.async_consume(state) is False  # replayed
        assert await states.async_consume("never-issued") is False
        await store.issue_oauth_state("old", time.time() - 1)
        assert await states.async_consume("old") is False  # expired
    finally:
        await store.close()


def test_check_reports_the_oauth_key() -> None:
    oauth = {
        "slack_client_id": "1.2",
        "slack_client_secret": "secret",
        "slack_signing_secret": "0" * 32,
    }
    [missing] = check_slack_oauth(load_settings(**oauth))
    assert missing.status is Status.FAILED and "needs BRIDGE_SECRET_KEY" in missing.detail
    [good] = check_slack_oauth(load_settings(**oauth, bridge_secret_key=KEY))
    assert good.status is Status.OK and "/slack/install" in good.detail
    [half] = check_slack_oauth(load_settings(slack_client_id="1.2"))
    assert half.status is Status.FAILED
    assert "SLACK_CLIENT_SECRET, SLACK_SIGNING_SECRET not set" in half.detail
    assert check_slack_oauth(load_settings()) == []  # not used: not listed
