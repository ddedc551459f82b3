"""The helper for tests that need a system program: skip visibly, or fail when strict."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

MISSING = "bridge-no-such-program"


def test_a_present_program_is_found(require_program: Callable[..., Path]) -> None:
    found = require_program("sh", needed_for="this test", install="-")
    assert found.name == "sh" and found.exists()


def test_a_missing_program_skips_with_the_install_hint(
    require_program: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BRIDGE_TEST_STRICT", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_program(MISSING, needed_for="the widget tests", install="apt-get install widget")
    assert str(skipped.value) == (
        f"the widget tests need {MISSING}, which is not installed: apt-get install widget"
    )


def test_a_missing_program_fails_under_strict(
    require_program: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIDGE_TEST_STRICT", "1")
    with pytest.raises(pytest.fail.Exception) as failed:
        require_program(MISSING, needed_for="the widget tests", install="apt-get install widget")
    assert "BRIDGE_TEST_STRICT=1 makes this a failure" in str(failed.value)


def test_search_directories_come_before_path(
    require_program: Callable[..., Path], tmp_path: Path
) -> None:
    program = tmp_path / "sh"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    assert require_program("sh", needed_for="-", install="-", search=[tmp_path]) == program
