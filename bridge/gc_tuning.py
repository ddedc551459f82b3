"""Garbage-collector thresholds for a process that keeps many answers in flight.

CPython's defaults (700, 10, 10) run a young collection every 700 allocations of
container objects and a full one after every hundred of those. With hundreds of answers
streaming, each holding its task, parser, response and renderer state for many seconds,
that state reaches the oldest generation, and full collections walk all of it again and
again: in the soak benchmark at 1,000 answers the collector took about 60% of the
process's CPU, in pauses of up to 0.6 s, which were the event-loop lag spikes. An
answer's garbage is almost all freed at once by reference counting; the collector only
finds cycles, so running it less often costs a little memory, never correctness.
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (10_000, 3, 100)
"""A young collection every 10,000 allocations, a middle one every third young one, a full
one at most every 300 young ones (and, as always in CPython, only once a quarter of the
old objects are new). In the 1,000-answer soak the collector's time fell from 11.8 s to
1.6 s, with no full collection; see benchmarks/README.md. The middle generation
holds the state of the answers that started since its last collection: collected every
tenth young collection it took pauses of ~28 ms while a thousand answers started at once,
every third ~13 ms, for the same total time."""


def tune_for_serving() -> None:
    """Set `GC_THRESHOLDS`, and move what exists at start-up (modules, classes, functions
    of the libraries: about 70,000 objects, 22 ms of every full collection) out of the
    collector's sight for good; `bridge run` and `bridge serve` call it as they start."""
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()
