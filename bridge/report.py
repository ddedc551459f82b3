"""`bridge report`: how the bot did over a period, per platform and channel, read from
the store — questions, answers by outcome, first-text and total time (p50/p95), 👍/👎
counts and share, answers without sources, and hand-offs to a person.

Percentiles are computed here (nearest rank) rather than in SQL, so SQLite and Postgres
give the same figures.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

from bridge.config import Settings
from bridge.errors import ConfigError
from bridge.store import ReportData, ReportTurn, open_store

ReportFormat = Literal["table", "csv", "json"]
FORMATS: tuple[ReportFormat, ...] = ("table", "csv", "json")
ALL_CHANNELS = "(all)"  # the channel column of a platform's total row

_UNITS = {"m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([mhdw])")
SINCE_HELP = "a duration such as 30m, 24h, 7d or 2w, or a date such as 2026-12-01"


def parse_since(text: str, *, now: float | None = None) -> float:
    """The start of the period as epoch seconds.

    Raises:
        ConfigError: `text` is neither a duration nor an ISO date (the message says which
            forms work).
    """
    now = time.time() if now is None else now
    value = text.strip().lower()
    match = _DURATION.fullmatch(value)
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"--since {text!r}: use {SINCE_HELP}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def percentile(values: Sequence[int], share: float) -> int | None:
    """Nearest-rank percentile (`share` in 0..1) of `values`; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass
class ChannelStats:
    """One row of the report. Times are milliseconds; `up_rate` is 👍 / (👍 + 👎)."""

    platform: str
    channel: str
    questions: int = 0
    done: int = 0
    error: int = 0
    refused: int = 0
    interrupted: int = 0
    unfinished: int = 0
    first_text_p50_ms: int | None = None
    first_text_p95_ms: int | None = None
    total_p50_ms: int | None = None
    total_p95_ms: int | None = None
    up: int = 0
    down: int = 0
    up_rate: float | None = None
    no_sources: int = 0
    handoffs: int = 0
    _first: list[int] = field(default_factory=list, repr=False)
    _total: list[int] = field(default_factory=list, repr=False)

    def add_turn(self, turn: ReportTurn) -> None:
        if turn.status == "done" and not turn.replied:
            return  # a `reset`, claimed like a question for de-duplication
        self.questions += 1
        if turn.status == "done":
            self.done += 1
            if turn.first_text_ms is not None:
                self._first.append(turn.first_text_ms)
            if turn.total_ms is not None:
                self._total.append(turn.total_ms)
            if turn.source_count == 0:
                self.no_sources += 1
        elif turn.status == "error":
            if turn.replied:
                self.error += 1
            else:
                self.refused += 1  # a refusal only posts a notice; no reply is recorded
        elif turn.status == "interrupted":
            self.interrupted += 1
        else:
            self.unfinished += 1

    def add_vote(self, vote: str) -> None:
        if vote == "up":
            self.up += 1
        else:
            self.down += 1

    def finish(self) -> ChannelStats:
        self.first_text_p50_ms = percentile(self._first, 0.50)
        self.first_text_p95_ms = percentile(self._first, 0.95)
        self.total_p50_ms = percentile(self._total, 0.50)
        self.total_p95_ms = percentile(self._total, 0.95)
        votes = self.up + self.down
        self.up_rate = round(self.up / votes, 3) if votes else None
        return self

    def merge(self, other: ChannelStats) -> None:
        """Add `other`'s counts (for a platform's total row)."""
        for name in ("questions", "done", "error", "refused", "interrupted", "unfinished"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("up", "down", "no_sources", "handoffs"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self._first += other._first
        self._total += other._total

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


def build_report(data: ReportData) -> list[ChannelStats]:
    """Rows per (platform, channel), each platform followed by its `(all)` total row."""
    rows: dict[tuple[str, str], ChannelStats] = {}

    def row(platform: str, channel: str) -> ChannelStats:
        return rows.setdefault((platform, channel), ChannelStats(platform, channel))

    for turn in data.turns:
        row(turn.platform, turn.channel).add_turn(turn)
    for platform, channel, vote in data.votes:
        row(platform, channel).add_vote(vote)
    for platform, channel in data.handoffs:
        row(platform, channel).handoffs += 1
    report: list[ChannelStats] = []
    for platform in sorted({platform for platform, _ in rows}):
        channels = [rows[key] for key in sorted(rows) if key[0] == platform]
        total = ChannelStats(platform, ALL_CHANNELS)
        for stats in channels:
            total.merge(stats)
        report += [stats.finish() for stats in channels]
        report.append(total.finish())
    return report


# --- output ----------------------------------------------------------------------------

_TABLE_COLUMNS = (
    ("platform", "platform"),
    ("channel", "channel"),
    ("questions", "questions"),
    ("done", "done"),
    ("error", "error"),
    ("refused", "refused"),
    ("interrupted", "interr."),
    ("first_text_p50_ms", "first p50"),
    ("first_text_p95_ms", "first p95"),
    ("total_p50_ms", "total p50"),
    ("total_p95_ms", "total p95"),
    ("up", "up"),
    ("down", "down"),
    ("up_rate", "up %"),
    ("no_sources", "no src"),
    ("handoffs", "hand-offs"),
)


def _cell(name: str, value: object) -> str:
    if value is None:
        return "-"
    if name.endswith("_ms"):
        return f"{int(value) / 1000:.1f}s"  # type: ignore[call-overload]
    if name == "up_rate":
        return f"{float(value) * 100:.0f}%"  # type: ignore[arg-type]
    return str(value)


def format_table(rows: Iterable[ChannelStats], *, since: float, until: float) -> str:
    """Aligned columns for a terminal; numbers right-aligned, `-` where nothing to show."""
    header = [title for _, title in _TABLE_COLUMNS]
    body = [[_cell(name, getattr(row, name)) for name, _ in _TABLE_COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    title = f"bridge report: {_iso(since)} to {_iso(until)}"
    if not body:
        return f"{title}\nno questions, votes or hand-offs in this period\n"
    lines = [title, line(header), line(["-" * width for width in widths])]
    lines += [line(cells) for cells in body]
    return "\n".join(lines) + "\n"


def format_csv(rows: Iterable[ChannelStats]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = [name for name, _ in _TABLE_COLUMNS]
    writer.writerow(names)
    for row in rows:
        values = row.as_dict()
        writer.writerow(["" if values[name] is None else values[name] for name in names])
    return out.getvalue()


def format_json(rows: Iterable[ChannelStats], *, since: float, until: float) -> str:
    document = {
        "since": _iso(since),
        "until": _iso(until),
        "rows": [row.as_dict() for row in rows],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def render(rows: list[ChannelStats], fmt: ReportFormat, *, since: float, until: float) -> str:
    if fmt == "csv":
        return format_csv(rows)
    if fmt == "json":
        return format_json(rows, since=since, until=until)
    return format_table(rows, since=since, until=until)


def _iso(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


async def run_report(settings: Settings, since_text: str, fmt: ReportFormat) -> str:
    """The report text for `bridge report --since … --format …`."""
    until = time.time()
    since = parse_since(since_text, now=until)
    store = await open_store(settings.database_url)
    try:
        data = await store.report_data(since)
    finally:
        await store.close()
    return render(build_report(data), fmt, since=since, until=until)
