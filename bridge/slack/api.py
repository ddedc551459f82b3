"""The one place Slack Web API calls are made: budget, metrics and error mapping.

slack_sdk raises `SlackApiError` for both HTTP 429 and `ok: false`; here a 429 becomes
`PlatformRateLimited` (and pauses the workspace's budget), and any other refusal a
`SlackCallError` carrying Slack's error code so callers can branch on it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bridge.errors import PlatformError, PlatformRateLimited, PlatformUnreachable
from bridge.metrics import PLATFORM_CALLS, PLATFORM_RATE_LIMITED
from bridge.pacing import Priority, Rank, TokenBucket
from bridge.slack.budget import POST, WorkspaceBudgets
from bridge.slack.events import PLATFORM

log = logging.getLogger(__name__)

# Slack's 429s nearly always carry Retry-After; this is the wait when one does not.
DEFAULT_RETRY_AFTER = 1.0
# Calls that create a message: repeating one after a timeout could post it twice.
CREATES_MESSAGE = frozenset({"chat.postMessage", "chat.startStream"})


class SlackCallError(PlatformError):
    """Slack answered `ok: false` (or the request failed); `error` is Slack's code."""

    def __init__(self, method: str, error: str) -> None:
        super().__init__(f"Slack {method} failed: {error}")
        self.method = method
        self.error = error


def _error_code(exc: SlackApiError) -> str:
    """Slack's `error` field, or `http_<status>` when the body was not JSON (a proxy's or
    load balancer's error page)."""
    data = exc.response.data
    code = data.get("error") if isinstance(data, dict) else None
    return str(code or f"http_{exc.response.status_code}")


def _retry_after(exc: SlackApiError) -> float:
    headers = getattr(exc.response, "headers", None) or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(float(value), 0.0) if value is not None else DEFAULT_RETRY_AFTER
    except ValueError:
        return DEFAULT_RETRY_AFTER


TokenSource = Callable[[str], Awaitable[str | None]]


class SlackApi:
    """Budgeted, counted Web API calls: with one bot token (the client's), or with each
    workspace's own token from `tokens` (Slack OAuth: team id → bot token)."""

    def __init__(
        self, client: AsyncWebClient, budgets: WorkspaceBudgets, tokens: TokenSource | None = None
    ) -> None:
        self.client = client
        self.budgets = budgets
        self._tokens = tokens

    async def call(
        self,
        method: str,
        *,
        team_id: str = "",
        budget: str | None = None,
        priority: Rank = Priority.FINAL,
        fill: Callable[[], dict[str, Any]] | None = None,
        **params: Any,
    ) -> AsyncSlackResponse:
        """Call `method` with JSON `params`, first taking a token from `budget` if given
        (the channel's, for `POST`), served by `priority` among the calls waiting for it.
        `fill`, called once the call may go out, adds the parameters that should be as
        new as possible (the text: late binding).

        Raises:
            PlatformRateLimited: Slack answered 429 (the budget is paused too).
            SlackCallError: Slack refused or could not be reached.
        """
        scope = str(params.get("channel", "")) if budget == POST else ""
        bucket = self.budgets.bucket(team_id, budget, scope) if budget else None
        if bucket is not None:
            await bucket.acquire(priority)
        if fill is not None:
            params |= fill()
        return await self.send(method, team_id=team_id, bucket=bucket, **params)

    async def send(
        self, method: str, *, team_id: str = "", bucket: TokenBucket | None, **params: Any
    ) -> AsyncSlackResponse:
        """Call `method` with a token the caller already took from `bucket` (a 429 pauses
        it), or with none. Raises like `call`."""
        return await self._send(method, bucket, await self._with_token(method, team_id, params))

    async def _with_token(
        self, method: str, team_id: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        """Add the workspace's token (OAuth mode) unless the caller gave one."""
        if self._tokens is None or "token" in params:
            return params
        token = await self._tokens(team_id)
        if token is None:
            raise SlackCallError(method, "not_installed")
        return {**params, "token": token}

    async def try_call(
        self, method: str, *, team_id: str, budget: str, **params: Any
    ) -> AsyncSlackResponse | None:
        """Like `call`, but None at once when `budget` has no token free right now, for
        calls that have a cheaper alternative (a stream start can be a plain post)."""
        bucket = self.budgets.bucket(team_id, budget)
        if not bucket.try_acquire():
            return None
        return await self._send(method, bucket, await self._with_token(method, team_id, params))

    async def _send(
        self, method: str, bucket: TokenBucket | None, params: dict[str, Any]
    ) -> AsyncSlackResponse:
        PLATFORM_CALLS.labels(platform=PLATFORM, method=method).inc()
        body = {key: value for key, value in params.items() if value is not None}
        try:
            return await self.client.api_call(method, json=body)
        except SlackApiError as exc:
            if exc.response.status_code == 429:
                retry_after = _retry_after(exc)
                PLATFORM_RATE_LIMITED.labels(platform=PLATFORM).inc()
                log.warning("slack %s rate limited; retry after %.1fs", method, retry_after)
                if bucket is not None:
                    bucket.pause(retry_after)
                raise PlatformRateLimited(retry_after, PLATFORM) from exc
            raise SlackCallError(method, _error_code(exc)) from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            # A network blip is not a refusal: the renderer retries, as after a 429 —
            # unless the call creates a message that may already exist (no duplicates).
            cause = type(exc).__name__
            if method in CREATES_MESSAGE and not isinstance(exc, aiohttp.ClientConnectorError):
                raise SlackCallError(method, f"unconfirmed ({cause})") from exc
            raise PlatformUnreachable(DEFAULT_RETRY_AFTER, PLATFORM, cause) from exc
