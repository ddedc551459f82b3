"""The end-to-end benchmark still runs and still prints its table (it cannot rot unseen).

Nothing here is timed: the figures belong in benchmarks/README.md, not in assertions.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_e2e.py"
_spec = importlib.util.spec_from_file_location("bench_e2e", _SCRIPT)
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench  # dataclasses look their module up while decorating
_spec.loader.exec_module(bench)


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


async def test_the_smallest_scenario_fills_one_row_of_every_column(tmp_path: Path) -> None:
    scenario = bench.Scenario(answers=1, streaming="update")
    results = await bench.run([scenario], bench.DEFAULT_SPEEDUP, tmp_path)

    header, rule, *rows = bench.format_table(results).splitlines()
    assert cells(header) == list(bench.COLUMNS)
    assert len(cells(rule)) == len(bench.COLUMNS)
    [row] = rows
    assert len(cells(row)) == len(bench.COLUMNS)
    assert cells(row)[:2] == ["update", "1"]
    assert results[0].calls_per_answer > 0


def test_quick_runs_both_streaming_modes_at_two_sizes() -> None:
    quick = {(s.streaming, s.answers) for s in bench.scenarios(quick=True)}
    assert quick == {("update", 1), ("update", 10), ("native", 1), ("native", 10)}
