"""The end-to-end benchmark still runs and still prints its table (it cannot rot unseen).

Nothing here is timed: the figures belong in benchmarks/README.md, not in assertions.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark

bench = load_benchmark("bench_e2e")


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


@pytest.mark.parametrize("platform", ["slack", "discord"])
async def test_the_smallest_scenario_fills_one_row_of_every_column(
    platform: str, tmp_path: Path
) -> None:
    scenario = bench.Scenario(answers=1, platform=platform)
    results = await bench.run([scenario], bench.DEFAULT_SPEEDUP, tmp_path)

    header, rule, *rows = bench.format_table(results).splitlines()
    assert cells(header) == list(bench.COLUMNS)
    assert len(cells(rule)) == len(bench.COLUMNS)
    [row] = rows
    assert len(cells(row)) == len(bench.COLUMNS)
    assert cells(row)[:3] == [platform, scenario.mode, "1"]
    [result] = results
    # One latency of each kind per answer, each ending at a call that came after its start
    # and before the answer was complete: the right calls were found (orderings, not speed).
    assert len(result.placeholder) == len(result.added) == scenario.answers
    for latency in (*result.placeholder, *result.added):
        assert 0 < latency <= result.wall
    assert result.rate_limited == 0  # one paced answer never meets a 429
    assert result.calls_per_answer >= 2  # at least the placeholder and the final edit
    assert result.chunks > 1


def test_quick_runs_both_slack_streaming_modes_and_discord_at_two_sizes() -> None:
    quick = {(s.platform, s.mode, s.answers) for s in bench.scenarios(quick=True)}
    assert quick == {
        ("slack", "update", 1),
        ("slack", "update", 10),
        ("slack", "native", 1),
        ("slack", "native", 10),
        ("discord", bench.NO_MODE, 1),
        ("discord", bench.NO_MODE, 10),
    }


@pytest.mark.parametrize("streaming", ["update", "native"])
async def test_twenty_simultaneous_slack_answers_never_meet_a_429(
    streaming: str, tmp_path: Path
) -> None:
    """docs/slack.md's claim, checked: against a fake Slack that enforces Slack's
    published tiers (platform time sped up, budgets with it), the shared budgets keep
    twenty answers at once under every limit."""
    scenario = bench.Scenario(answers=20, platform="slack", streaming=streaming)
    [result] = await bench.run([scenario], bench.DEFAULT_SPEEDUP, tmp_path)
    assert result.rate_limited == 0
    assert result.calls_per_answer >= 2


async def test_the_saturation_table_runs_every_strategy_on_a_tiny_scenario(
    tmp_path: Path,
) -> None:
    saturation = load_benchmark("saturation")
    tiny = saturation.Saturation(
        channels=2, per_channel=2, answer_seconds=2.0, speedup=20.0, limit_seconds=60.0
    )
    outcomes = await saturation.run_all(tiny, tmp_path)

    header, _rule, *rows = saturation.format_table(outcomes).splitlines()
    assert cells(header) == list(saturation.COLUMNS)
    assert [cells(row)[0] for row in rows] == [
        "bridge",
        "per-chunk+retry",
        "every-20",
        "fixed-1s",
    ]
    bridge = outcomes[0]
    assert len(bridge.finals) == tiny.answers  # every final seen, so the columns are real
    assert bridge.calls >= 2 * tiny.answers
