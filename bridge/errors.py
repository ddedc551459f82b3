"""One root exception for the bridge; every failure we raise on purpose is a subclass.

Backend HTTP statuses and platform rate limits are mapped to these in one place each
(the backend clients, the platform surfaces), so callers branch on types, not strings.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Root of every error the bridge raises deliberately."""


class ConfigError(BridgeError):
    """Configuration is missing or invalid; the message is one readable line per problem."""


class StartupError(BridgeError):
    """The process cannot start although its configuration parsed: a port is in use, a
    platform rejected a token or could not be reached. The message is one line ending in
    its fix; the CLI exits 2, as for a ConfigError."""


class StoreError(BridgeError):
    """The database could not be opened, read or written (locked too long, disk full,
    unreadable file, schema newer than this version of the bridge, store closed)."""


class SSEError(BridgeError):
    """The event stream broke a hard limit (for example a single event over the size cap)."""


class BackendError(BridgeError):
    """A backend request failed.

    Attributes:
        user_message: text safe to show in chat (no secrets, no tracebacks).
        retryable: whether asking again later could help.
    """

    def __init__(self, user_message: str, *, retryable: bool = False) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.retryable = retryable


class PlatformRateLimited(BridgeError):
    """A chat platform answered 429; wait `retry_after` seconds before the next call."""

    def __init__(self, retry_after: float, platform: str = "", message: str = "") -> None:
        default = f"{platform or 'platform'} rate limited; retry after {retry_after:.1f}s"
        super().__init__(message or default)
        self.retry_after = retry_after
        self.platform = platform


class PlatformUnreachable(PlatformRateLimited):
    """The platform could not be reached (connection error, timeout). Transient: callers
    wait `retry_after` and try again, as after a 429, instead of giving up on a reply."""

    def __init__(self, retry_after: float, platform: str, cause: str) -> None:
        message = f"{platform} unreachable ({cause}); retry after {retry_after:.1f}s"
        super().__init__(retry_after, platform, message)


class PlatformError(BridgeError):
    """A chat platform refused a call for a reason that retrying will not fix
    (missing permission, deleted channel, closed DMs)."""
