"""The long-running commands collect garbage less often (see bridge/gc_tuning.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from bridge.gc_tuning import GC_THRESHOLDS, tune_for_serving


@pytest.fixture
def thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


@pytest.mark.usefixtures("thresholds")
def test_serving_collects_young_objects_less_often_and_old_ones_rarely() -> None:
    gc.unfreeze()
    tune_for_serving()
    assert gc.get_threshold() == GC_THRESHOLDS
    assert GC_THRESHOLDS[0] > 700 and GC_THRESHOLDS[2] > 10  # CPython's defaults
    assert gc.get_freeze_count() > 10_000  # the imported libraries: never walked again
