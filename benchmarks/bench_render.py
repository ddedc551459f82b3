"""How many platform calls and how much CPU the reply renderer spends per answer.

Run from the repository root: `python benchmarks/bench_render.py`. Time is simulated
(the fake clock and in-memory surface from bridge/testing/clock.py), so every column but the
last is exact. "CPU ms/1k deltas" is measured in a separate pass that feeds the same
deltas without the fake clock (whose bookkeeping would dominate): appends plus the final
neutralize + split + edit, per thousand deltas.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass

from bridge.render import ReplyRenderer
from bridge.surface import SurfaceLimits
from bridge.testing.clock import FakeClock
from bridge.testing.recording_surface import ScriptedSurface

DISCORD = SurfaceLimits(max_message_chars=2000, min_edit_interval=1.0)
PROSE = "The bridge streams this answer into the chat, one small piece at a time. "
CODE = "```python\n" + "".join(f"print('line {i}')\n" for i in range(40)) + "```\n\n"


@dataclass(frozen=True)
class Scenario:
    name: str
    text: str
    chunks: int
    seconds: float  # simulated time the backend takes to stream it


def _chunked(text: str, count: int) -> list[str]:
    """`count` nearly equal pieces (count must not exceed len(text))."""
    cuts = [len(text) * i // count for i in range(count + 1)]
    return [text[a:b] for a, b in itertools.pairwise(cuts)]


async def _calls(scenario: Scenario) -> tuple[int, int, int]:
    """Stream in simulated time; count platform calls and messages."""
    clock = FakeClock()
    surface = ScriptedSurface(limits=DISCORD, clock=clock)
    renderer = ReplyRenderer(surface, clock=clock, sleep=clock.sleep)
    chunks = _chunked(scenario.text, scenario.chunks)
    await renderer.start()
    for number, chunk in enumerate(chunks, start=1):
        await clock.advance_to(number * scenario.seconds / len(chunks))
        await renderer.append(chunk)
    await renderer.finish(scenario.text, [])
    return len(chunks), len(surface.calls), len(surface.messages)


async def _cpu_seconds(scenario: Scenario) -> float:
    """CPU time of the renderer's own work for the scenario's deltas."""
    renderer = ReplyRenderer(ScriptedSurface(limits=DISCORD), edit_interval=3600.0)
    chunks = _chunked(scenario.text, scenario.chunks)
    started = time.process_time()
    await renderer.start()
    for chunk in chunks:
        await renderer.append(chunk)
    await renderer.finish(scenario.text, [])
    return time.process_time() - started


async def main() -> None:
    long_answer = (PROSE * 12 + "\n\n" + CODE) * 13
    scenarios = [
        Scenario("50 chunks", PROSE * 70, 50, 10.0),
        Scenario("5,000 chunks", PROSE * 70, 5000, 10.0),
        Scenario(f"{len(long_answer):,}-char answer", long_answer, 2000, 30.0),
    ]
    header = ("scenario", "chunks", "sim s", "calls", "calls/s", "messages", "CPU ms/1k deltas")
    print("{:<22} {:>7} {:>6} {:>6} {:>8} {:>9} {:>17}".format(*header))
    for scenario in scenarios:
        chunks, calls, messages = await _calls(scenario)
        per_k = await _cpu_seconds(scenario) * 1000 / chunks * 1000
        print(
            f"{scenario.name:<22} {chunks:>7} {scenario.seconds:>6.1f} {calls:>6} "
            f"{calls / scenario.seconds:>8.2f} {messages:>9} {per_k:>17.3f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
