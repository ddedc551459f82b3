"""Ping neutralization, source filtering and link rendering (pure functions)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.backends.events import Source
from bridge.safety import (
    escape_markdown_link_text,
    link_target,
    markdown_sources_block,
    neutralize_discord,
    neutralize_slack,
    safe_sources,
    source_label,
)

Z = "\u200b"
risky = st.text(alphabet="@<>!&^#|abcehnoruvy U123S\n", max_size=80)
MENTIONS = ["@everyone", "@here", "@channel", "<!channel>", "<!here>", "<!everyone>",
            "<@U123>", "<!subteam^S1>", "<#C1>", "<@&42>", "<@123>", "<@!123>"]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "slack", "discord"),
    [
        ("<!channel> hi", "&lt;!channel&gt; hi", "<!channel> hi"),
        ("ping @here now", f"ping @{Z}here now", f"ping @{Z}here now"),
        ("@everyone", f"@{Z}everyone", f"@{Z}everyone"),
        ("<@U123>", f"&lt;@{Z}U123&gt;", f"<@{Z}U123>"),
        ("<!subteam^S1>", "&lt;!subteam^S1&gt;", "<!subteam^S1>"),
        ("<@&42> and <@!7>", f"&lt;@{Z}&amp;42&gt; and &lt;@{Z}!7&gt;", f"<@{Z}&42> and <@{Z}!7>"),
        ("a & b", "a &amp; b", "a & b"),
        ("plain text", "plain text", "plain text"),
    ],
)
def test_neutralize_table(text: str, slack: str, discord: str) -> None:
    assert neutralize_slack(text) == slack
    assert neutralize_discord(text) == discord


@given(a=risky, b=risky)
def test_neutralizers_are_prefix_stable(a: str, b: str) -> None:
    for neutralize in (neutralize_slack, neutralize_discord):
        assert neutralize(a + b).startswith(neutralize(a))


@given(prefix=risky, suffix=risky, mention=st.sampled_from(MENTIONS))
def test_no_mention_survives(prefix: str, suffix: str, mention: str) -> None:
    text = prefix + mention + suffix
    slack, discord = neutralize_slack(text), neutralize_discord(text)
    assert "<" not in slack and ">" not in slack
    assert re.search(r"@[^\u200b]", slack) is None
    assert re.search(r"@[^\u200b]", discord) is None


def test_safe_sources_filters_dedupes_and_limits() -> None:
    sources = [
        Source("javascript:alert(1)", "js"),
        Source("data:text/html,hi", "data"),
        Source("https://Example.com/a#intro", "A"),
        Source("HTTPS://example.COM/a#other", "A again"),
        Source("https://user:pw@example.com/", "creds"),
        Source("https://exa mple.com/", "space"),
        Source("https://example.com/\x00", "control"),
        Source("ftp://example.com/f", "ftp"),
        Source("https:///nohost", "no host"),
        Source("  https://b.example/  ", None),
        Source("http://c.example/x?q=1", "C"),
        Source("http://c.example/x?q=2", "C2"),
        Source("https://d.example", "D"),
        Source("https://d.example/", "D dup"),
        Source("https://e.example", "E"),
        Source("https://f.example", "F"),
    ]
    kept = safe_sources(sources)
    assert [s.url for s in kept] == [
        "https://Example.com/a#intro",
        "https://b.example/",
        "http://c.example/x?q=1",
        "http://c.example/x?q=2",
        "https://d.example",
    ]
    assert safe_sources(sources, limit=1) == [Source("https://Example.com/a#intro", "A")]
    assert safe_sources([]) == []


def test_source_label_title_or_hostname() -> None:
    assert source_label(Source("https://docs.example.com/x", "  Getting\n started  ")) == (
        "Getting started"
    )
    assert source_label(Source("https://docs.example.com/x", "")) == "docs.example.com"
    assert source_label(Source("https://docs.example.com/x")) == "docs.example.com"
    long = source_label(Source("https://x.example", "word " * 50))
    assert len(long) <= 100 and long.endswith("…")


def test_link_text_and_target_cannot_break_out() -> None:
    title = "x](javascript:alert(1)) *bold* _it_ `code` <b> \\"
    escaped = escape_markdown_link_text(title)
    assert escaped == (
        "x\\]\\(javascript:alert\\(1\\)\\) \\*bold\\* \\_it\\_ \\`code\\` \\<b\\> \\\\"
    )
    assert link_target("https://e.example/a b)c>d@e") == "https://e.example/a%20b%29c%3Ed%40e"


def test_markdown_sources_block() -> None:
    block = markdown_sources_block(
        [Source("https://a.example/p(1)", "Guide [v2]"), Source("https://b.example", "@here")]
    )
    assert block == (
        "\n\n**Sources**\n"
        "1. [Guide \\[v2\\]](<https://a.example/p%281%29>)\n"
        f"2. [@{Z}here](<https://b.example>)"
    )
    assert markdown_sources_block([]) == ""
