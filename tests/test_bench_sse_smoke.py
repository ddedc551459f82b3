"""The parser benchmark still runs and prints its table, with or without httpx-sse.

Nothing here is timed: the figures belong in benchmarks/README.md, not in assertions.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_sse.py"
_COLUMNS = ["stream", "MB", "events", "bridge MB/s", "httpx-sse MB/s", "ratio"]


def _run(*, hide_httpx_sse: bool) -> list[str]:
    block = "import sys; sys.modules['httpx_sse'] = None; " if hide_httpx_sse else ""
    code = (
        f"{block}import runpy, sys; sys.argv = ['bench_sse', '--megabytes', '0.02', "
        f"'--rounds', '1']; runpy.run_path({str(_SCRIPT)!r}, run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def test_without_httpx_sse_it_says_so_and_leaves_its_columns_empty() -> None:
    notice, header, _rule, *rows = _run(hide_httpx_sse=True)
    assert "httpx-sse is not installed" in notice
    assert _cells(header) == _COLUMNS
    assert [_cells(row)[0] for row in rows] == ["widget", "wonderchat"]
    for row in rows:
        cells = _cells(row)
        assert int(cells[2]) > 10 and float(cells[3]) > 0
        assert cells[4:] == ["—", "—"]


def test_every_row_fills_every_column_when_httpx_sse_is_there() -> None:
    lines = _run(hide_httpx_sse=False)
    if "httpx-sse is not installed" in lines[0]:
        lines = lines[1:]  # the comparison is optional; the table must still be whole
    header, _rule, *rows = lines
    assert _cells(header) == _COLUMNS
    assert len(rows) == 2 and all(len(_cells(row)) == len(_COLUMNS) for row in rows)
