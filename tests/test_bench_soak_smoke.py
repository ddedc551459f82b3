"""The soak benchmark still runs end to end and fills its table (it cannot rot unseen).

Two answers with a fast mock: one real `bridge serve` process, a few seconds. Nothing
here is timed: the figures belong in benchmarks/README.md, not in assertions.
"""

from __future__ import annotations

from pathlib import Path

from benchmark_scripts import load_benchmark

bench = load_benchmark("bench_soak")


async def test_two_answers_fill_one_row_of_every_column(tmp_path: Path) -> None:
    [row] = await bench.run([2], chunk_ms=1.0, ramp=0.0, workdir=tmp_path)

    assert (row.answers, row.done, row.unreachable) == (2, 2, 0)
    assert len(row.placeholder) == 2 and len(row.added) == 2
    assert min(row.placeholder + row.added) >= 0  # each ends after it starts
    assert row.lag, "the bridge process sampled its event loop"
    assert row.peak_rss_mb > 0 and row.cpu_seconds > 0
    cells = row.cells()
    assert len(cells) == len(bench.COLUMNS) and "—" not in cells
