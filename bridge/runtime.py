"""Opens and closes the process-wide resources in one place (STYLE: one owner each).

The HTTP pools (one session per destination, see `bridge.pools`), the store, the backend
client and the relay live exactly as long as the `open_runtime` block; platforms and
commands borrow them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bridge import metrics
from bridge.backends import build_backend
from bridge.backends.base import ChatBackend
from bridge.chatbots import Chatbots
from bridge.config import Settings
from bridge.feedback import FeedbackService, FeedbackWebhook, Handoffs
from bridge.pools import Pools, PoolSizes, open_pools
from bridge.relay import Relay
from bridge.store import Store, open_store


@dataclass(frozen=True)
class Runtime:
    """Everything one bridge process shares."""

    settings: Settings
    pools: Pools
    store: Store
    backend: ChatBackend
    relay: Relay
    feedback: FeedbackService
    handoffs: Handoffs


@asynccontextmanager
async def open_runtime(
    settings: Settings, *, pool_sizes: PoolSizes | None = None
) -> AsyncIterator[Runtime]:
    """Open pools, store, backend, relay and the feedback services; close them in
    reverse order on exit (queued webhook deliveries get a short grace).

    `pool_sizes` defaults to what `BRIDGE_MAX_CONCURRENCY` answers need (tests force
    smaller pools to show that waiting for a connection is not a failure).

    The relay holds its process lock for the whole block (see `Relay.start`), so questions
    claimed by any command are known to belong to a live process.

    Raises:
        ConfigError: when no backend is configured or DATABASE_URL is unusable.
    """
    settings.backend_name()  # fail fast, before opening anything, with the variables to set
    store = await open_store(settings.database_url, store_text=settings.bridge_store_text)
    try:
        sizes = pool_sizes or PoolSizes.for_concurrency(settings.bridge_max_concurrency)
        async with open_pools(sizes) as pools:
            backend = build_backend(settings, pools.backend)
            metrics.show_at_zero(backend.name)
            webhook_url = settings.bridge_feedback_webhook_url
            webhook = (  # one connection at a time, beside the backend's streams
                FeedbackWebhook(pools.backend, webhook_url.get_secret_value())
                if webhook_url is not None
                else None
            )
            handoffs = Handoffs(
                store,
                {
                    "slack": settings.bridge_handoff_slack or "",
                    "discord": settings.bridge_handoff_discord or "",
                },
            )
            chatbots = Chatbots.from_settings(settings, pools.backend, backend)
            relay = Relay(
                store=store,
                backend=backend,
                settings=settings,
                handoffs=handoffs,
                chatbots=chatbots,
            )
            await relay.start()
            try:
                yield Runtime(
                    settings,
                    pools,
                    store,
                    backend,
                    relay,
                    FeedbackService(store, webhook),
                    handoffs,
                )
            finally:
                await relay.close()
                if webhook is not None:
                    await webhook.close()
    finally:
        await store.close()
