"""Per-channel routing: which chatbot answers where, and how (`BRIDGE_ROUTES_FILE`).

The routes file is TOML (read with `tomllib`), one `[[route]]` table per rule:

    [[route]]
    platform = "slack"            # or "discord"
    team = "T0123"                # Slack team id (Discord: guild = "1234…"); optional
    channel = "C0456"             # optional; at least one of team/guild and channel
    backend = "wonderchat"        # optional: without it the environment's backend answers
    chatbot_id = "sales-bot"      # Wonderchat; api_url optional
    mode = "all"                  # "mention" (default) or "all": answer without a mention
    context = "You help the sales team."
    allowed_users = ["U1", "U2"]

Widget routes name `api_url`, `model` and `api_key_env`, the *name* of the environment
variable holding the key: keys never sit in the file, which is often committed.

The most specific rule wins (workspace and channel, then channel, then workspace);
everything unmatched is answered as before from the environment. Parsing is pure and
every error names its line, so `bridge check` can point at it.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bridge.errors import ConfigError

Mode = Literal["mention", "all"]
MODES: tuple[Mode, ...] = ("mention", "all")
PLATFORMS = ("slack", "discord")
WORKSPACE_KEY = {"slack": "team", "discord": "guild"}
BACKENDS = ("wonderchat", "widget")
MATCH_KEYS = frozenset({"platform", "team", "guild", "channel"})
OPTION_KEYS = frozenset({"mode", "context", "allowed_users"})
BACKEND_KEYS = frozenset({"backend", "chatbot_id", "api_url", "model", "api_key_env"})
KNOWN_KEYS = MATCH_KEYS | OPTION_KEYS | BACKEND_KEYS
# Keys people reach for that must not exist: a secret written into the file.
INLINE_SECRETS = frozenset({"api_key", "key", "token", "secret"})
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ROUTE_HEADER = re.compile(r"^\s*\[\[\s*route\s*\]\]")


class RoutesError(ConfigError):
    """A routes file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class BackendTarget:
    """A chatbot a route sends questions to.

    `key` is what the store records as the conversation's backend, so a thread keeps
    the chatbot it started with even when the routes change later.
    """

    kind: Literal["wonderchat", "widget"]
    chatbot_id: str | None = None
    api_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None

    @property
    def key(self) -> str:
        """Self-describing, so a conversation can be continued on its chatbot after the
        routes no longer mention it (`from_key`); holds no secret, only the key's
        variable name."""
        if self.kind == "wonderchat":
            return f"wonderchat:{self.chatbot_id}@{self.api_url or ''}"
        return f"widget:{self.model}@{self.api_url}#{self.api_key_env}"

    @classmethod
    def from_key(cls, key: str) -> BackendTarget | None:
        """The target a stored backend name describes; None for other names (the
        environment's plain `wonderchat` / `widget`)."""
        kind, colon, rest = key.partition(":")
        if not colon or kind not in BACKENDS:
            return None
        if kind == "wonderchat":
            chatbot_id, _, api_url = rest.partition("@")
            return cls("wonderchat", chatbot_id, api_url or None) if chatbot_id else None
        where, _, env_name = rest.rpartition("#")
        model, _, api_url = where.partition("@")
        if not (model and api_url and env_name):
            return None
        return cls("widget", api_url=api_url, model=model, api_key_env=env_name)

    def describe(self) -> str:
        if self.kind == "wonderchat":
            return f"wonderchat chatbot {self.chatbot_id}" + (
                f" at {self.api_url}" if self.api_url else ""
            )
        return f"widget model {self.model} at {self.api_url} (key from ${self.api_key_env})"


@dataclass(frozen=True)
class Route:
    """One `[[route]]` rule: where it applies and what it changes."""

    platform: str
    workspace: str | None
    channel: str | None
    line: int
    target: BackendTarget | None = None
    mode: Mode = "mention"
    context: str | None = None
    allowed_users: frozenset[str] = field(default_factory=frozenset)

    @property
    def specificity(self) -> int:
        """Workspace+channel (3) beats channel (2) beats workspace (1)."""
        return (2 if self.channel else 0) + (1 if self.workspace else 0)

    def matches(self, platform: str, workspace: str, channel: str) -> bool:
        return (
            self.platform == platform
            and self.workspace in (None, workspace)
            and self.channel in (None, channel)
        )

    def where(self) -> str:
        parts = [self.platform]
        if self.workspace:
            parts.append(f"{WORKSPACE_KEY[self.platform]} {self.workspace}")
        if self.channel:
            parts.append(f"channel {self.channel}")
        return " ".join(parts)


@dataclass(frozen=True)
class RouteTable:
    """The parsed rules; `match` picks the most specific one."""

    routes: tuple[Route, ...] = ()
    source: str = ""

    def match(self, platform: str, workspace: str, channel: str) -> Route | None:
        candidates = [r for r in self.routes if r.matches(platform, workspace, channel)]
        return max(candidates, key=lambda r: r.specificity, default=None)

    def targets(self) -> list[BackendTarget]:
        """Each distinct chatbot the routes use, once."""
        seen: dict[str, BackendTarget] = {}
        for route in self.routes:
            if route.target is not None:
                seen.setdefault(route.target.key, route.target)
        return list(seen.values())


# -- parsing ---------------------------------------------------------------------------


class _Lines:
    """Finds the line of a route or of one of its keys in the file's text.

    tomllib reports no positions for valid documents; the N-th `[[route]]` header is
    the N-th table, and a key's line is the first `key =` after that header."""

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()
        self._headers = [i + 1 for i, line in enumerate(self._lines) if ROUTE_HEADER.match(line)]

    def route(self, index: int) -> int:
        return self._headers[index] if index < len(self._headers) else 1

    def key(self, index: int, key: str) -> int:
        start = self.route(index)
        end = self._headers[index + 1] if index + 1 < len(self._headers) else len(self._lines) + 1
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for number in range(start, end):
            if pattern.match(self._lines[number - 1]):
                return number
        return start


def load_routes(path: str | Path, environ: Mapping[str, str] | None = None) -> RouteTable:
    """Read and validate a routes file.

    Raises:
        RoutesError: `FILE:LINE: what is wrong; how to fix it` for the first problem.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise RoutesError(
            f"BRIDGE_ROUTES_FILE={path}: cannot read it ({exc.strerror or exc})"
        ) from None
    return parse_routes(text, source=str(path), environ=os.environ if environ is None else environ)


def parse_routes(text: str, *, source: str, environ: Mapping[str, str]) -> RouteTable:
    """Parse routes from TOML text (see the module docstring for the format).

    Raises:
        RoutesError: naming `source` and the line of the first problem.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))
        line = found.group(1) if found else "1"
        raise RoutesError(f"{source}:{line}: not valid TOML ({exc})") from None
    lines = _Lines(text)
    unknown_top = sorted(set(document) - {"route"})
    if unknown_top:
        raise RoutesError(
            f"{source}:1: unknown top-level key {unknown_top[0]!r}; "
            "write each rule as a [[route]] table"
        )
    tables = document.get("route", [])
    if not isinstance(tables, list):
        raise RoutesError(f"{source}:1: 'route' must be [[route]] tables")
    routes: list[Route] = []
    seen: dict[tuple[str, str | None, str | None], Route] = {}
    for index, table in enumerate(tables):
        route = _RouteParser(table, index, lines, source, environ).parse()
        where = (route.platform, route.workspace, route.channel)
        if where in seen:
            raise RoutesError(
                f"{source}:{route.line}: duplicate match: {route.where()} is already routed "
                f"at line {seen[where].line}; merge the two rules or delete one"
            )
        seen[where] = route
        routes.append(route)
    return RouteTable(tuple(routes), source)


class _RouteParser:
    """Validates one `[[route]]` table; each error names the offending key's line."""

    def __init__(
        self,
        table: dict[str, Any],
        index: int,
        lines: _Lines,
        source: str,
        environ: Mapping[str, str],
    ) -> None:
        self._table = table
        self._index = index
        self._lines = lines
        self._source = source
        self._environ = environ

    def fail(self, key: str | None, message: str) -> RoutesError:
        line = self._lines.key(self._index, key) if key else self._lines.route(self._index)
        return RoutesError(f"{self._source}:{line}: {message}")

    def text(self, key: str, *, required: bool = False) -> str | None:
        value = self._table.get(key)
        if value is None:
            if required:
                raise self.fail(None, f'route needs {key} = "…"')
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # Discord ids written as numbers
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"{key} must be a non-empty string")
        return value.strip()

    def parse(self) -> Route:
        for key in self._table:
            if key in INLINE_SECRETS:
                raise self.fail(
                    key,
                    f"{key}: never write a key into the routes file; put it in an environment "
                    'variable and name that variable with api_key_env = "NAME"',
                )
            if key not in KNOWN_KEYS:
                raise self.fail(
                    key, f"unknown key {key!r}; known keys: {', '.join(sorted(KNOWN_KEYS))}"
                )
        platform = self.text("platform", required=True)
        if platform not in PLATFORMS:
            raise self.fail("platform", f"platform must be one of {', '.join(PLATFORMS)}")
        workspace_key = WORKSPACE_KEY[platform]
        other = WORKSPACE_KEY["discord" if platform == "slack" else "slack"]
        if other in self._table:
            raise self.fail(
                other,
                f"{other} belongs in a {'slack' if other == 'team' else 'discord'} route; "
                f"a {platform} route names its workspace with {workspace_key}",
            )
        workspace = self.text(workspace_key)
        channel = self.text("channel")
        if workspace is None and channel is None:
            raise self.fail(None, f"route matches nothing: give {workspace_key} and/or channel")
        mode = self.text("mode") or "mention"
        if mode not in MODES:
            raise self.fail("mode", f"mode must be {' or '.join(MODES)}, not {mode!r}")
        return Route(
            platform=platform,
            workspace=workspace,
            channel=channel,
            line=self._lines.route(self._index),
            target=self.target(),
            mode=mode,  # type: ignore[arg-type]
            context=self.text("context"),
            allowed_users=self.users(),
        )

    def users(self) -> frozenset[str]:
        value = self._table.get("allowed_users", [])
        if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
            raise self.fail("allowed_users", 'allowed_users must be a list of ids: ["U1", "U2"]')
        return frozenset(str(v).strip() for v in value if str(v).strip())

    def target(self) -> BackendTarget | None:
        kind = self.text("backend")
        given = sorted(BACKEND_KEYS & set(self._table) - {"backend"})
        if kind is None:
            if given:
                raise self.fail(given[0], f'{given[0]} needs backend = "wonderchat" or "widget"')
            return None
        if kind not in BACKENDS:
            raise self.fail("backend", f"backend must be one of {', '.join(BACKENDS)}")
        allowed = {
            "wonderchat": {"chatbot_id", "api_url"},
            "widget": {"api_url", "model", "api_key_env"},
        }
        for key in given:
            if key not in allowed[kind]:
                raise self.fail(key, f"{key} is not a {kind} setting")
        api_url = self.text("api_url")
        if api_url is not None and not api_url.startswith(("http://", "https://")):
            raise self.fail("api_url", "api_url must start with http:// or https://")
        api_url = api_url.rstrip("/") if api_url else None
        if kind == "wonderchat":
            return BackendTarget("wonderchat", self.text("chatbot_id", required=True), api_url)
        if api_url is None:
            raise self.fail(None, 'a widget route needs api_url = "https://…"')
        env_name = self.text("api_key_env", required=True)
        assert env_name is not None
        if not ENV_NAME.match(env_name):
            raise self.fail(
                "api_key_env", "api_key_env is the NAME of an environment variable, not the key"
            )
        if not self._environ.get(env_name):
            raise self.fail(
                "api_key_env",
                f"environment variable {env_name} (named by api_key_env) is not set; "
                "set it to the Widget API key",
            )
        return BackendTarget(
            "widget", api_url=api_url, model=self.text("model") or "default", api_key_env=env_name
        )


def format_table(table: RouteTable, default: str) -> str:
    """The effective routing, most specific first, as `bridge routes` prints it."""
    rows = [("where", "chatbot", "mode", "context", "users", "line")]
    for route in sorted(table.routes, key=lambda r: (-r.specificity, r.line)):
        rows.append(
            (
                route.where(),
                route.target.describe() if route.target else f"(default) {default}",
                route.mode,
                _short(route.context),
                ", ".join(sorted(route.allowed_users)) or "anyone allowed",
                str(route.line),
            )
        )
    rows.append(("everything else", f"(default) {default}", "mention", "–", "(env lists)", "–"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _short(text: str | None, limit: int = 30) -> str:
    if not text:
        return "–"
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
