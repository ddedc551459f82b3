"""Connection pools: waiting for a pooled connection is load, never an unreachable backend."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client import REGISTRY

from bridge.backends.http import UNREACHABLE
from bridge.config import Settings
from bridge.model import Question, ThreadKey
from bridge.pools import PoolSizes
from bridge.relay import Outcome
from bridge.runtime import open_runtime
from bridge.testing.mock_backend import MockBackend
from bridge.testing.recording_surface import RecordingSurface

STREAMS = 150
POOL = 10  # far fewer connections than streams: most streams wait for one
CONNECT_TIMEOUT = 0.5  # a histogram bucket bound, so waits longer than it can be counted


def pool_waits(pool: str, longer_than: float = 0.0) -> float:
    """Waits for a `pool` connection so far (only those over `longer_than` seconds)."""
    name = "bridge_http_pool_wait_seconds"
    total = REGISTRY.get_sample_value(f"{name}_count", {"pool": pool}) or 0
    within = REGISTRY.get_sample_value(f"{name}_bucket", {"pool": pool, "le": str(longer_than)})
    return total - (within or 0)


async def test_150_streams_through_a_10_connection_pool_all_answer(tmp_path: Path) -> None:
    # 65 chunks 1 ms apart: every stream holds its connection for over 65 ms, so the
    # 15th wave of streams waits over 0.9 s for one, beyond the connect timeout.
    async with MockBackend(delay=0.001) as mock:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            bridge_backend="wonderchat",
            wonderchat_chatbot_id=mock.chatbot_id,
            wonderchat_api_url=mock.url,
            database_url=f"sqlite:///{tmp_path / 'bridge.db'}",
            bridge_max_concurrency=STREAMS,
            bridge_edit_interval=0.05,
            # Shorter than the later waits: a wait counted as connecting would fail.
            bridge_connect_timeout=CONNECT_TIMEOUT,
            bridge_backend_retries=0,
            bridge_first_event_timeout=60,
        )
        waits_before = pool_waits("backend", longer_than=CONNECT_TIMEOUT)
        sizes = PoolSizes(backend=POOL, platform=POOL)
        async with open_runtime(settings, pool_sizes=sizes) as runtime:
            surfaces = [RecordingSurface() for _ in range(STREAMS)]
            outcomes = await asyncio.gather(
                *(runtime.relay.answer(question(n), surface) for n, surface in enumerate(surfaces))
            )

    assert outcomes == [Outcome.DONE] * STREAMS
    assert not [s.text for s in surfaces if UNREACHABLE in s.text]
    assert all("**Sources**" in s.text for s in surfaces)  # every answer ended in full
    assert len(mock.requests) == STREAMS  # nothing was retried
    # Streams did wait, some longer than the connect timeout, and still answered.
    assert pool_waits("backend", longer_than=CONNECT_TIMEOUT) > waits_before


def test_default_pools_fit_the_concurrency_cap() -> None:
    """At BRIDGE_MAX_CONCURRENCY every answer has a backend connection and room for its
    platform calls, so no stream waits and streams cannot starve the platform."""
    sizes = PoolSizes.for_concurrency(1000)
    assert sizes.backend > 1000
    assert sizes.platform >= 2 * 1000


def question(n: int) -> Question:
    thread = ThreadKey(platform="slack", workspace="T1", channel=f"C{n}", thread=f"{n}.0")
    return Question(thread=thread, user_id=f"U{n}", text=f"question {n}", event_id=f"E{n}")
