"""Pure text-safety helpers: ping neutralization, source filtering and link rendering.

Everything a backend or a person wrote passes through here before a platform sees it.
The neutralizers work character by character with no look-ahead, which makes them
prefix-stable: `neutralize(a + b)` always starts with `neutralize(a)`, so a streamed
reply never rewrites text it already showed.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from urllib.parse import urlsplit

from bridge.backends.events import Source

ZERO_WIDTH_SPACE = "\u200b"

# A zero-width space after every "@" breaks `@everyone`, `@here`, `@channel`, `<@U1>`,
# `<@!1>` and `<@&1>` alike. Being unconditional is what keeps it prefix-stable (a rule
# that looked at the word after "@" would have to wait for it); the cost is that an
# e-mail address copied from a reply carries an invisible character.
_BREAK_MENTIONS = str.maketrans({"@": "@" + ZERO_WIDTH_SPACE})

# Slack requires exactly these three escaped in message text; escaping "<" is what makes
# `<!channel>`, `<!here>`, `<@U1>`, `<!subteam^S1>` and `<#C1>` plain text.
_SLACK_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", "@": "@" + ZERO_WIDTH_SPACE}
)

# Characters that could end or restyle Markdown link text (CommonMark allows a backslash
# before any ASCII punctuation, so over-escaping is harmless).
_LINK_TEXT_SPECIALS = frozenset("\\[]()*_`<>~|")

# In a link target these would end `<url>` / `(url)`, start a Slack `|label`, or (for "@")
# look like a mention to a lenient parser; percent-encoding keeps the URL equivalent.
_URL_ESCAPES = str.maketrans(
    {
        " ": "%20",
        "(": "%28",
        ")": "%29",
        "<": "%3C",
        ">": "%3E",
        "@": "%40",
        "|": "%7C",
        "`": "%60",
    }
)

DEFAULT_SOURCE_LIMIT = 5  # more links than this drown the answer they support
MAX_URL_CHARS = 2048  # longer URLs are almost always tracking junk, and break link parsers
MAX_LABEL_CHARS = 100  # keeps one source on one line in Slack and Discord clients
_SAFE_SCHEMES = frozenset({"http", "https"})


def neutralize_slack(text: str) -> str:
    """Make text unable to ping anyone in Slack (prefix-stable).

    Escapes `&`, `<`, `>` as Slack requires, which turns every `<!…>`, `<@…>` and `<#…>`
    control sequence into plain text, and puts a zero-width space after each `@` so bare
    `@here` / `@channel` / `@everyone` stay inert even where Slack parses them itself
    (`markdown` blocks, `link_names`).
    """
    return text.translate(_SLACK_ESCAPES)


def neutralize_discord(text: str) -> str:
    """Make text unable to ping anyone in Discord (prefix-stable).

    A zero-width space after every `@` breaks `@everyone`, `@here` and the `<@id>`,
    `<@!id>`, `<@&role>` mention forms; the text looks the same to a reader.
    """
    return text.translate(_BREAK_MENTIONS)


def safe_sources(sources: Iterable[Source], limit: int = DEFAULT_SOURCE_LIMIT) -> list[Source]:
    """Keep the sources that are safe to show as links, in order, at most `limit`.

    A source is kept when its URL is http(s) with a hostname, carries no credentials,
    control characters or inner whitespace, and is not a duplicate of an earlier one
    (scheme and host compared case-insensitively, fragment ignored). Surrounding
    whitespace is trimmed from the kept URL.
    """
    kept: list[Source] = []
    seen: set[tuple[str, str, str, str]] = set()
    for source in sources:
        if len(kept) >= limit:
            break
        url = source.url.strip() if isinstance(source.url, str) else ""
        key = _url_key(url)
        if key is None or key in seen:
            continue
        seen.add(key)
        kept.append(Source(url=url, title=source.title))
    return kept


def _url_key(url: str) -> tuple[str, str, str, str] | None:
    """The de-duplication key of a safe URL, or None when the URL is not safe to link."""
    if not url or len(url) > MAX_URL_CHARS:
        return None
    if any(char.isspace() or unicodedata.category(char).startswith("C") for char in url):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return None
    if parts.scheme.lower() not in _SAFE_SCHEMES or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return None
    return (parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query)


def source_label(source: Source) -> str:
    """What a person sees for a source: its title (whitespace collapsed, truncated to
    `MAX_LABEL_CHARS`) or, when the title is missing or blank, the URL's hostname."""
    title = " ".join((source.title or "").split())
    if not title:
        try:
            return urlsplit(source.url.strip()).hostname or source.url
        except ValueError:
            return source.url
    if len(title) > MAX_LABEL_CHARS:
        return title[: MAX_LABEL_CHARS - 1].rstrip() + "…"
    return title


def escape_markdown_link_text(text: str) -> str:
    """Backslash-escape characters that could close the link text or restyle it, so a
    hostile title such as `x](javascript:…)` stays inside `[…]`."""
    return "".join("\\" + char if char in _LINK_TEXT_SPECIALS else char for char in text)


def link_target(url: str) -> str:
    """Percent-encode the characters that could break out of `<url>` or `(url)`."""
    return url.translate(_URL_ESCAPES)


def markdown_sources_block(sources: Iterable[Source]) -> str:
    """Render already filtered sources (see `safe_sources`) as the block appended to an
    answer: a blank line, a bold heading and a numbered list of `[title](<url>)` links.

    The angle brackets keep Discord from unfurling every link into an embed; labels are
    escaped and mention-broken, URLs percent-encoded. Returns "" when there are none.
    """
    lines = [
        f"{number}. [{escape_markdown_link_text(source_label(source)).translate(_BREAK_MENTIONS)}]"
        f"(<{link_target(source.url)}>)"
        for number, source in enumerate(sources, start=1)
    ]
    if not lines:
        return ""
    return "\n\n**Sources**\n" + "\n".join(lines)


def plain_sources_block(sources: Iterable[Source]) -> str:
    """The sources as plain numbered lines, as the terminal (`bridge demo`, `bridge ask`)
    shows them; empty when none is safe to show."""
    kept = safe_sources(sources)
    if not kept:
        return ""
    lines = [f"  {n}. {source_label(s)} — {s.url}" for n, s in enumerate(kept, 1)]
    return "\n\nSources:\n" + "\n".join(lines)
