"""SSE parser throughput: bridge's `SSEParser` against httpx-sse's decoders, same input.

Run from the repository root: `python benchmarks/bench_sse.py [--megabytes N] [--rounds N]`.
Each row is one stream of a backend's answer chunks (the seed's exact shapes), N MB long,
fed in 1,400-byte reads (about one TCP segment, what a socket read returns while an answer
streams). httpx-sse is measured the way its `EventSource.aiter_sse` reads a response: an
incremental UTF-8 decoder, `SSELineDecoder`, `line.rstrip("\\n")`, then `SSEDecoder`.
Both parsers run alternately, `--rounds` times each, and the best round of each counts
(the least disturbed by other processes on a shared machine).

httpx-sse is a benchmark-only dependency (`pip install -e '.[bench]'`); without it the
httpx-sse columns are left out and a line says so.
"""

from __future__ import annotations

import argparse
import codecs
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bridge.backends.sse import SSEParser

READ_BYTES = 1400
DEFAULT_MEGABYTES = 6.0
DEFAULT_ROUNDS = 9
WORDS = ("Here", "is", "what", "I", "found", "about", "the", "café", "☕", "—", "sources", "below")
COLUMNS = ("stream", "MB", "events", "bridge MB/s", "httpx-sse MB/s", "ratio")

Parse = Callable[[Sequence[bytes]], int]  # feeds the reads, returns the number of events


def widget_event(index: int) -> bytes:
    """One Widget API `chat.completion.chunk`, as `seeds/widget-api.md` shows it."""
    payload = {
        "id": "resp_68af2b1c9e7d4f0a",
        "object": "chat.completion.chunk",
        "created": 1_764_000_000 + index // 50,
        "model": "widget-1",
        "choices": [
            {
                "index": 0,
                "delta": {"content": WORDS[index % len(WORDS)] + " "},
                "logprobs": None,
                "finish_reason": None,
            }
        ],
    }
    return b"event: message\ndata: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def wonderchat_event(index: int) -> bytes:
    """One Wonderchat `chunk` event, as `seeds/wonderchat-api.md` shows it."""
    delta = json.dumps({"delta": WORDS[index % len(WORDS)] + " "})
    return b"event: chunk\ndata: " + delta.encode() + b"\n\n"


STREAMS: dict[str, Callable[[int], bytes]] = {
    "widget": widget_event,
    "wonderchat": wonderchat_event,
}


def stream_of(event: Callable[[int], bytes], size: int) -> bytes:
    parts: list[bytes] = []
    total = index = 0
    while total < size:
        part = event(index)
        parts.append(part)
        total += len(part)
        index += 1
    return b"".join(parts)


def reads_of(raw: bytes) -> list[bytes]:
    return [raw[i : i + READ_BYTES] for i in range(0, len(raw), READ_BYTES)]


def parse_bridge(reads: Sequence[bytes]) -> int:
    parser = SSEParser()
    count = 0
    for read in reads:
        count += len(parser.feed(read))
    return count + len(parser.close())


def httpx_sse_parser() -> Parse | None:
    """httpx-sse's decoders as its `aiter_sse` chains them, or None if it is not installed."""
    try:
        from httpx_sse._decoders import SSEDecoder, SSELineDecoder
    except ImportError:
        return None

    def parse(reads: Sequence[bytes]) -> int:
        text_decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        lines = SSELineDecoder()
        events = SSEDecoder()
        count = 0
        for read in reads:
            for line in lines.decode(text_decoder.decode(read)):
                if events.decode(line.rstrip("\n")) is not None:
                    count += 1
        for line in [*lines.decode(text_decoder.decode(b"", final=True)), *lines.flush(), ""]:
            if events.decode(line.rstrip("\n")) is not None:
                count += 1
        return count

    return parse


@dataclass(frozen=True)
class Row:
    stream: str
    megabytes: float
    events: int
    bridge: float  # MB/s
    httpx_sse: float | None  # MB/s, None when httpx-sse is missing

    def cells(self) -> list[str]:
        other = "—" if self.httpx_sse is None else f"{self.httpx_sse:.0f}"
        ratio = "—" if self.httpx_sse is None else f"{self.bridge / self.httpx_sse:.2f}"
        return [
            self.stream,
            f"{self.megabytes:.1f}",
            str(self.events),
            f"{self.bridge:.0f}",
            other,
            ratio,
        ]


def timed(parse: Parse, reads: Sequence[bytes]) -> tuple[float, int]:
    started = time.perf_counter()
    events = parse(reads)
    return time.perf_counter() - started, events


def measure(name: str, size: int, rounds: int, other: Parse | None) -> Row:
    raw = stream_of(STREAMS[name], size)
    reads = reads_of(raw)
    ours: list[float] = []
    theirs: list[float] = []
    events = parse_bridge(reads)
    if other is not None and other(reads) != events:
        raise SystemExit(f"{name}: the two parsers disagree on the number of events")
    for _ in range(rounds):  # alternate, so both see the same machine load
        ours.append(timed(parse_bridge, reads)[0])
        if other is not None:
            theirs.append(timed(other, reads)[0])
    megabytes = len(raw) / 1e6
    return Row(
        name,
        megabytes,
        events,
        megabytes / min(ours),
        megabytes / min(theirs) if theirs else None,
    )


def format_table(rows: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * (len(COLUMNS) - 1)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=DEFAULT_MEGABYTES)
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    args = parser.parse_args(argv)
    other = httpx_sse_parser()
    if other is None:
        print("httpx-sse is not installed (pip install -e '.[bench]'): its columns are left out")
    size = int(args.megabytes * 1e6)
    rows = [measure(name, size, max(args.rounds, 1), other) for name in STREAMS]
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
