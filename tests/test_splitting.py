"""split_message / plan_split: limits, exact re-join, balanced fences, stable prefixes.

Fence balance is judged by `fence_oracle` (written from the CommonMark spec), never by
the splitter's own `fence_state`.
"""

from __future__ import annotations

import pytest
from fence_oracle import balanced, open_fence_at_end
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.splitting import (
    MIN_SPLIT_LIMIT,
    Fence,
    fence_state,
    plan_split,
    split_message,
)

LANGS = ["", "python", "js", "c++", "sh"]
word = st.text(alphabet="abcdefghij.,!?", min_size=1, max_size=12)
long_word = st.text(alphabet="xyz", min_size=60, max_size=400)
inline = st.sampled_from(["`code`", "a`b", "``x``", "@here", "<@123>"])
prose_line = st.lists(st.one_of(word, word, word, long_word, inline), min_size=1, max_size=30).map(
    " ".join
)
code_line = st.one_of(prose_line, st.just(""), st.sampled_from(["    indented()", "x = 1  # ok"]))


@st.composite
def code_block(draw: st.DrawFn) -> str:
    marker = draw(st.sampled_from(["```", "```", "````"]))
    lang = draw(st.sampled_from(LANGS))
    lines = draw(st.lists(code_line, max_size=12))
    closed = draw(st.booleans())
    body = "\n".join([f"{marker}{lang}", *lines])
    return body + (f"\n{marker}" if closed else "")


block = st.one_of(prose_line, prose_line, code_block(), st.just(""))
separator = st.sampled_from(["\n", "\n\n", "\n\n\n", " "])


@st.composite
def markdown(draw: st.DrawFn) -> str:
    blocks = draw(st.lists(block, max_size=12))
    seps = draw(st.lists(separator, min_size=len(blocks), max_size=len(blocks)))
    text = "".join(b + s for b, s in zip(blocks, seps, strict=True))
    # An unterminated block at the end is what a streamed answer looks like mid-way.
    return text + draw(st.sampled_from(["", "```py\nopen code", "tail words"]))


limits = st.integers(min_value=40, max_value=400)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_plan(text: str, limit: int) -> list[str]:
    parts = plan_split(text, limit)
    assert "".join(p.body for p in parts) == text  # the re-join rule
    position = 0
    for previous, part in zip([None, *parts], parts, strict=False):
        assert part.start == position and part.end == position + len(part.body)
        position = part.end
        assert part.text == part.reopen + part.body + part.close
        assert len(part.text) <= limit
        assert part.body, "no empty parts"
        expected_reopen = (
            previous.open_fence.reopen_line(limit) if previous and previous.open_fence else ""
        )
        assert part.reopen == expected_reopen
    return [p.text for p in parts]


@FAST
@given(text=markdown(), limit=limits)
def test_parts_fit_rejoin_exactly_and_balance_fences(text: str, limit: int) -> None:
    texts = check_plan(text, limit)
    assert texts == split_message(text, limit)
    for part in texts:
        assert balanced(part), part


@FAST
@given(text=st.text(alphabet="ab `\n\t@<>é", max_size=600), limit=st.integers(16, 120))
def test_any_text_fits_and_rejoins(text: str, limit: int) -> None:
    check_plan(text, limit)


@FAST
@given(
    text=st.lists(st.one_of(word, long_word), max_size=80).map(" ".join),
    limit=limits,
    data=st.data(),
)
def test_parts_of_a_growing_text_stay_put(text: str, limit: int, data: st.DataObject) -> None:
    """A streamed answer: parts before the last never change as text arrives."""
    prefix = text[: data.draw(st.integers(0, len(text)))]
    settled = split_message(prefix, limit)[:-1]
    assert split_message(text, limit)[: len(settled)] == settled


def test_prefers_paragraph_then_line_then_space() -> None:
    para = "a" * 30 + "\n\n" + "b" * 30
    assert split_message(para + " " + "c" * 20, 64) == [para[:32], "b" * 30 + " " + "c" * 20]
    lines = "a" * 30 + "\n" + "b" * 30 + " ccc"
    assert split_message(lines, 40)[0] == "a" * 30 + "\n"
    words = "alpha beta gamma delta epsilon zeta eta theta"
    assert split_message(words, 20) == ["alpha beta gamma ", "delta epsilon zeta ", "eta theta"]


def test_word_longer_than_limit_is_cut_hard() -> None:
    parts = split_message("x" * 50, 20)
    assert parts == ["x" * 20, "x" * 20, "x" * 10]


def test_fence_is_closed_and_reopened_with_its_language() -> None:
    code = "\n".join(f"line{i} = {i}" for i in range(10))
    text = f"Intro.\n\n```python\n{code}\n```\nAfter."
    parts = split_message(text, 60)
    assert len(parts) > 2
    assert parts[0].endswith("```") and parts[1].startswith("```python\n")
    assert all(balanced(p) and len(p) <= 60 for p in parts)


def test_continued_plan_matches_whole_plan() -> None:
    text = "para one " * 20 + "\n\n```sh\n" + "echo hi\n" * 30 + "```\nbye"
    whole = plan_split(text, 80)
    first = whole[0]
    rest = plan_split(text, 80, start=first.end, fence=first.open_fence)
    assert [p.text for p in rest] == [p.text for p in whole[1:]]


def test_empty_text_and_tiny_limit() -> None:
    assert split_message("", 100) == []
    assert split_message("short", 100) == ["short"]
    with pytest.raises(ValueError):
        split_message("x", MIN_SPLIT_LIMIT - 1)


def test_fence_recognition() -> None:
    assert fence_state("```py\ncode", 0, 10, None) == Fence("```", "py")
    assert fence_state("```py\ncode\n```", 0, 14, None) is None
    assert fence_state("    ```py", 0, 9, None) is None  # indented code, not a fence
    assert fence_state("````\n```\n", 0, 9, None) == Fence("````")  # shorter fence is content
    assert fence_state("```a`b", 0, 6, None) is None  # backtick in info: not a fence


def test_the_oracle_reads_fences_as_commonmark_does() -> None:
    assert open_fence_at_end("```py\ncode") == "```"
    assert balanced("```py\ncode\n```")
    assert balanced("    ```py")  # four spaces: indented code, not a fence
    assert balanced("\t```py")  # a tab is four columns too
    assert open_fence_at_end("````\n```\n") == "````"  # a shorter fence is content
    assert balanced("```a`b")  # a backtick in the info string: not a fence
    assert open_fence_at_end("```\n``` not a close") == "```"  # text after: content
    assert balanced("text\n   ```\ncode\n   ````  ")  # interrupts a paragraph; indented close


@FAST
@given(text=markdown())
def test_fence_state_agrees_with_the_oracle(text: str) -> None:
    """The splitter's own scanner, checked against the independent one."""
    assert (fence_state(text, 0, len(text), None) is None) == balanced(text)
