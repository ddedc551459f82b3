"""One typed settings object, read from the environment and an optional `.env` file.

The variable names are a public contract (DESIGN.md): deploy scripts rely on them.
Secrets are `SecretStr`, so printing the settings never shows them.
"""

from __future__ import annotations

import json
import os
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bridge.errors import ConfigError

BackendName = Literal["wonderchat", "widget"]

DEFAULT_WONDERCHAT_API_URL = "https://app.wonderchat.io"
DEFAULT_SUGGESTED_PROMPTS = (
    "What can you help me with?",
    "Summarize the latest documentation changes",
)

# Documented in the README (BRIDGE_BACKEND) and shown by `bridge check`.
BACKEND_RULE = (
    "both backends are configured and BRIDGE_BACKEND is unset, so Wonderchat is used "
    "(set BRIDGE_BACKEND=widget for the Widget API)"
)

CommaSet = Annotated[frozenset[str], NoDecode]

HTTP_SCHEMES = ("http", "https")
WEBSOCKET_SCHEMES = ("ws", "wss")


def check_url(value: str | None, schemes: tuple[str, ...]) -> str | None:
    """`value` if it is an absolute URL with one of `schemes` and a host, else ValueError.

    Checked at start-up: a URL like `nonsense` would otherwise fail only at the first
    request, as "could not reach the backend", without naming the variable."""
    if value is None:
        return None
    try:
        parts = urlsplit(value.strip())
        valid = parts.scheme.lower() in schemes and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a port like :99999 or :abc
    except ValueError:
        valid = False
    if not valid:
        raise ValueError(f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
    return value.strip()


def _split_list(value: Any) -> Any:
    """Accept `a,b, c`, a JSON list, or an already-parsed collection."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return frozenset(str(item).strip() for item in json.loads(text) if str(item).strip())
        return frozenset(part.strip() for part in text.split(",") if part.strip())
    return value


class Settings(BaseSettings):
    """Everything the bridge can be told. Only the variables of the platforms you use
    are required; `require_*` methods say which are missing for a given job."""

    # An empty variable (`NAME=` in .env, a blank field in a deploy form) means "not set".
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,
    )

    # Slack
    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str | None = None
    slack_streaming: Literal["auto", "native", "update"] = "auto"
    slack_suggested_prompts: Annotated[tuple[str, ...], NoDecode] = DEFAULT_SUGGESTED_PROMPTS
    # Slack OAuth distribution (many workspaces install the app from /slack/install)
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None
    slack_authorize_url: str | None = None  # test hook: a fake Slack's authorize page
    bridge_secret_key: SecretStr | None = None

    # Discord
    discord_token: SecretStr | None = None
    discord_api_url: str | None = None
    discord_gateway_url: str | None = None
    discord_guild_id: int | None = None
    discord_message_content: bool = False
    discord_allow_dms: bool = True
    discord_shard_count: int | None = Field(None, ge=1)
    discord_shard_ids: Annotated[tuple[int, ...], NoDecode] = ()

    # Backends
    bridge_backend: BackendName | None = None
    wonderchat_chatbot_id: str | None = None
    wonderchat_api_url: str = DEFAULT_WONDERCHAT_API_URL
    wonderchat_context: str | None = None
    widget_api_url: str | None = None
    widget_api_key: SecretStr | None = None
    widget_model: str = "default"
    bridge_routes_file: str | None = None

    # Backend timeouts and retries (seconds / count)
    bridge_connect_timeout: float = Field(10.0, gt=0)
    bridge_first_event_timeout: float = Field(60.0, gt=0)
    bridge_idle_timeout: float = Field(60.0, gt=0)
    bridge_backend_retries: int = Field(2, ge=0, le=10)

    # Storage and HTTP
    database_url: str = "sqlite:///bridge.db"
    bridge_store_text: bool = False
    port: int = Field(8080, ge=1, le=65535)

    # Relay behaviour
    bridge_edit_interval: float = Field(1.0, ge=0.05)
    bridge_max_concurrency: int = Field(100, ge=1)  # measured: benchmarks/README.md
    bridge_user_rate_per_minute: int = Field(10, ge=0)
    bridge_max_question_chars: int = Field(4000, ge=1)
    bridge_drain_seconds: float = Field(25.0, ge=0)
    bridge_allowed_channels: CommaSet = frozenset()
    bridge_allowed_guilds: CommaSet = frozenset()
    bridge_allowed_users: CommaSet = frozenset()

    # Answer feedback and hand-off to a person
    bridge_feedback_webhook_url: SecretStr | None = None
    bridge_handoff_slack: str | None = None
    bridge_handoff_discord: str | None = None

    # Logging
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"

    _split_sets = field_validator(
        "bridge_allowed_channels", "bridge_allowed_guilds", "bridge_allowed_users", mode="before"
    )(_split_list)

    @field_validator("slack_suggested_prompts", mode="before")
    @classmethod
    def _split_prompts(cls, value: Any) -> Any:
        """Prompts are separated by `|` (commas are common inside prompts) or a JSON list."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return tuple(str(item) for item in json.loads(text))
            return tuple(part.strip() for part in text.split("|") if part.strip())
        return value

    @field_validator("discord_shard_ids", mode="before")
    @classmethod
    def _split_shard_ids(cls, value: Any) -> Any:
        """`0,1` or a JSON list: the shards this process runs."""
        if isinstance(value, str):
            return tuple(sorted(int(part) for part in _split_list(value)))
        return value

    @model_validator(mode="after")
    def _check_shards(self) -> Settings:
        if self.discord_shard_ids:
            if self.discord_shard_count is None:
                raise ValueError("DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT (the total)")
            bad = [i for i in self.discord_shard_ids if not 0 <= i < self.discord_shard_count]
            if bad:
                last = self.discord_shard_count - 1
                raise ValueError(f"DISCORD_SHARD_IDS: shard {bad[0]} is outside 0..{last}")
        return self

    @field_validator("log_level", "log_format", "slack_streaming", "bridge_backend", mode="before")
    @classmethod
    def _lowercase(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("bridge_feedback_webhook_url", mode="after")
    @classmethod
    def _webhook_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("bridge_handoff_slack", mode="after")
    @classmethod
    def _slack_group_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"S[A-Z0-9]{2,}", value.strip()):
            raise ValueError(
                "must be a Slack user-group id such as S0123ABCDEF (People → User groups → "
                "the group → ⋯ → Copy group ID), not a name or a user id"
            )
        return value.strip() if value is not None else None

    @field_validator("bridge_handoff_discord", mode="after")
    @classmethod
    def _discord_role_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9]{5,25}", value.strip()):
            raise ValueError(
                "must be a Discord role id (digits; Server Settings → Roles → ⋯ → Copy Role "
                "ID, with Developer Mode on), not a role name"
            )
        return value.strip() if value is not None else None

    @field_validator("wonderchat_api_url", "widget_api_url", mode="after")
    @classmethod
    def _strip_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("wonderchat_api_url", "widget_api_url", "slack_api_url", "discord_api_url")
    @classmethod
    def _api_url(cls, value: str | None) -> str | None:
        return check_url(value, HTTP_SCHEMES)

    @field_validator("discord_gateway_url")
    @classmethod
    def _websocket_url(cls, value: str | None) -> str | None:
        return check_url(value, WEBSOCKET_SCHEMES)

    # What is configured -------------------------------------------------------------

    @property
    def wonderchat_configured(self) -> bool:
        return bool(self.wonderchat_chatbot_id)

    @property
    def widget_configured(self) -> bool:
        return bool(self.widget_api_url and self.widget_api_key)

    @property
    def slack_configured(self) -> bool:
        return self.slack_bot_token is not None

    @property
    def slack_oauth_configured(self) -> bool:
        """Many workspaces: SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and SLACK_SIGNING_SECRET."""
        return bool(self.slack_client_id and self.slack_client_secret and self.slack_signing_secret)

    @property
    def discord_configured(self) -> bool:
        return self.discord_token is not None

    def backend_name(self) -> BackendName:
        """The backend to use: `BRIDGE_BACKEND`, else whichever one is configured.

        Raises:
            ConfigError: naming the variables to set when none (or not the chosen one) is.
        """
        chosen = self.bridge_backend
        if chosen is None:
            if self.wonderchat_configured:
                return "wonderchat"  # also when both are: BACKEND_RULE, shown by `bridge check`
            if self.widget_configured:
                return "widget"
            if self._widget_missing():
                raise ConfigError(
                    f"the Widget API needs {' and '.join(self._widget_missing())} too: "
                    "set it, or unset the other WIDGET_ variables"
                )
            raise ConfigError(
                "no chat backend is configured: set WONDERCHAT_CHATBOT_ID "
                "(and optionally WONDERCHAT_API_URL) for Wonderchat, or WIDGET_API_URL and "
                "WIDGET_API_KEY (and optionally WIDGET_MODEL) for the Widget API"
            )
        if chosen == "wonderchat" and not self.wonderchat_configured:
            raise ConfigError("BRIDGE_BACKEND=wonderchat needs WONDERCHAT_CHATBOT_ID to be set")
        if chosen == "widget" and not self.widget_configured:
            missing = self._widget_missing() or ["WIDGET_API_URL", "WIDGET_API_KEY"]
            raise ConfigError(f"BRIDGE_BACKEND=widget needs {' and '.join(missing)} to be set")
        return chosen

    def _widget_missing(self) -> list[str]:
        """The Widget API variables still unset when only one of the two is set."""
        given = {"WIDGET_API_URL": self.widget_api_url, "WIDGET_API_KEY": self.widget_api_key}
        if all(value is None for value in given.values()):
            return []
        return [name for name, value in given.items() if value is None]

    def backend_rule(self) -> str | None:
        """Why the backend was chosen, when the choice is not obvious (both configured)."""
        if self.bridge_backend is None and self.wonderchat_configured and self.widget_configured:
            return BACKEND_RULE
        return None

    def secret_values(self) -> list[str]:
        """Every secret's plain value, for the log redactor; never log this list."""
        secrets = (
            self.slack_bot_token,
            self.slack_app_token,
            self.slack_signing_secret,
            self.discord_token,
            self.widget_api_key,
            self.bridge_feedback_webhook_url,  # its path or query may hold a token
            self.slack_client_secret,
            self.bridge_secret_key,
        )
        values = [s.get_secret_value() for s in secrets if s is not None and s.get_secret_value()]
        return values + self._routed_keys()

    def _routed_keys(self) -> list[str]:
        """The API keys a routes file names by variable (its errors are `bridge check`'s)."""
        names = self.routed_key_names()
        return [os.environ[name] for name in sorted(names) if os.environ.get(name)]

    def routed_key_names(self) -> frozenset[str]:
        """The variables a routes file names for API keys: not typos, though no setting."""
        if not self.bridge_routes_file:
            return frozenset()
        from bridge.routes import RoutesError, load_routes

        try:
            targets = load_routes(self.bridge_routes_file).targets()
        except RoutesError:
            return frozenset()
        return frozenset(t.api_key_env for t in targets if t.api_key_env)


def _describe(error: dict[str, Any]) -> str:
    """One readable line per validation error: variable, what is expected, what was given."""
    variable = str(error["loc"][0]).upper() if error.get("loc") else "configuration"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    given = error.get("input")
    shown = "" if isinstance(given, dict) or given is None else f" (got {str(given)[:40]!r})"
    if variable.endswith(("TOKEN", "SECRET", "KEY")) or "WEBHOOK" in variable:
        shown = ""  # never echo a secret, even a malformed one
    return f"{variable}: {message}{shown}"


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment (and `.env`).

    Raises:
        ConfigError: with one line per bad variable, instead of pydantic's traceback.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = [_describe(dict(err)) for err in exc.errors()]
        # pydantic's exception adds only its own traceback and the secrets' inputs.
        separator = " " if len(lines) == 1 else "\n  "
        raise ConfigError("invalid configuration:" + separator + "\n  ".join(lines)) from None
