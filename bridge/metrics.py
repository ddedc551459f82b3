"""Prometheus metrics, in the text format served at `/metrics`.

Module-level collectors in prometheus_client's default registry are the library's
intended use; they are counters, not resources, so there is nothing to open or close.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Latency buckets (seconds): first words should come well under a second after the
# backend's; backend answers take from a second to a minute.
_FAST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_SLOW_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)

QUESTIONS = Counter("bridge_questions_total", "Questions received", ["platform"])
ANSWERS = Counter(
    "bridge_answers_total",
    "Answers by outcome (done, error, interrupted, refused)",
    ["platform", "outcome"],
)
PLATFORM_CALLS = Counter(
    "bridge_platform_api_calls_total", "Calls to chat platform APIs", ["platform", "method"]
)
PLATFORM_RATE_LIMITED = Counter(
    "bridge_platform_rate_limited_total", "HTTP 429 answers from chat platforms", ["platform"]
)
BACKEND_FIRST_EVENT = Histogram(
    "bridge_backend_first_event_seconds",
    "Backend latency to the first event",
    ["backend"],
    buckets=_SLOW_BUCKETS,
)
BACKEND_TOTAL = Histogram(
    "bridge_backend_total_seconds",
    "Backend latency to the end of the answer",
    ["backend"],
    buckets=_SLOW_BUCKETS,
)
BRIDGE_ADDED = Histogram(
    "bridge_added_latency_seconds",
    "Time the bridge adds before the person sees anything: question received to placeholder shown",
    ["platform"],
    buckets=_FAST_BUCKETS,
)
ACTIVE_STREAMS = Gauge("bridge_active_streams", "Answers currently streaming")
LOOP_PRESSURE = Gauge(
    "bridge_loop_pressure",
    "How busy the event loop is, 0 (idle) to 1 (saturated); above 0.4 progress edits"
    " slow down so first words and finals go first",
)
HTTP_POOL_WAIT = Histogram(
    "bridge_http_pool_wait_seconds",
    "Waits for a free connection in a destination's pool (backend, slack); many mean the"
    " pool is smaller than the load",
    ["pool"],
    buckets=_FAST_BUCKETS,
)
FEEDBACK = Counter(
    "bridge_feedback_total", "Votes on answers (new or changed)", ["platform", "vote"]
)
HANDOFFS = Counter("bridge_handoffs_total", "Threads handed to a person", ["platform"])
FEEDBACK_WEBHOOK = Counter(
    "bridge_feedback_webhook_total",
    "Feedback webhook deliveries by result (delivered, retried, failed, dropped)",
    ["result"],
)

PLATFORMS = ("slack", "discord")
OUTCOMES = ("done", "error", "interrupted", "refused")
WEBHOOK_RESULTS = ("delivered", "retried", "failed", "dropped")


def show_at_zero(backend: str) -> None:
    """Create every documented labelled series now, so dashboards and alerts see them at
    zero from start-up rather than only after the first question (a counter with labels
    has no series until one is used). `backend` is the configured backend's name."""
    for platform in PLATFORMS:
        QUESTIONS.labels(platform)
        PLATFORM_RATE_LIMITED.labels(platform)
        BRIDGE_ADDED.labels(platform)
        HANDOFFS.labels(platform)
        for outcome in OUTCOMES:
            ANSWERS.labels(platform, outcome)
        for vote in ("up", "down"):
            FEEDBACK.labels(platform, vote)
    BACKEND_FIRST_EVENT.labels(backend)
    BACKEND_TOTAL.labels(backend)
    for result in WEBHOOK_RESULTS:
        FEEDBACK_WEBHOOK.labels(result)
    for pool in ("backend", "slack", "discord"):
        HTTP_POOL_WAIT.labels(pool)
