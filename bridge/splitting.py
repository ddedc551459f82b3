"""Split long text into platform-sized messages without breaking code blocks.

Each part is `reopen + body + close`: `body` is a slice of the original text, `reopen`
is the fence line (```` ```lang\\n ````) that restarts a code block the previous part had
to close, and `close` is the fence (```` \\n``` ```` or ```` ``` ```` after a newline) that
ends a code block still open at the end of the part.

Re-join rule: strip `reopen` from the front and `close` from the end of every part, then
concatenate the bodies — the result is the original text exactly. `plan_split` returns
the pieces so callers (and tests) never have to guess which fence lines were added.

Cut points, best first: after a blank line, after a line break, after a space, then a
hard cut inside a word (only when a single word does not fit). Paragraph and line cuts
are preferred only when they keep the part at least half full. Every rule looks at the
text before the cut plus the one character after it, so the parts of a growing text
(a streamed answer) stay where they were once a later part exists.

Fences are recognized as CommonMark describes them: a line with at most three spaces
of indent and three or more backticks; a closing fence has at least as many backticks
and nothing else. Tilde fences are left alone (neither Slack nor Discord draws them).
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_SPLIT_LIMIT = 16  # room for a reopened fence, a close and some text in every part
MIN_FILL = 0.5  # a paragraph or line cut must keep a part at least this full
_MAX_FENCE_INDENT = 3  # CommonMark: four spaces of indent make an indented code block
_BACKTICK = "`"
_FENCE_MIN = 3


@dataclass(frozen=True)
class Fence:
    """An open code block: its backtick marker and info string (usually the language)."""

    marker: str
    info: str = ""

    def reopen_line(self, limit: int) -> str:
        """The line that restarts this block in the next part.

        The info string is dropped when it would take more than a quarter of the part;
        a marker so long that reopening and closing would take half the part is not
        repaired at all ("" — pathological input gets parts within the limit, unbalanced).
        """
        with_info = f"{self.marker}{self.info}\n"
        if len(with_info) + len(self.marker) + 1 <= limit // 4:
            return with_info
        if 2 * len(self.marker) + 2 <= limit // 2:
            return f"{self.marker}\n"
        return ""

    def close_after(self, body: str) -> str:
        """The closing fence for a block whose content ends with `body`."""
        return self.marker if body.endswith("\n") else "\n" + self.marker


@dataclass(frozen=True)
class MessagePart:
    """One message of a split text.

    Attributes:
        start, end: the slice of the original text this part shows (`body`).
        reopen: fence line added in front (continues a code block), or "".
        body: the original text[start:end].
        open_fence: the code block still open at the end of `body`, closed by this part
            and reopened by the next one; None when no block is open.
    """

    start: int
    end: int
    reopen: str
    body: str
    open_fence: Fence | None

    @property
    def close(self) -> str:
        """The fence added at the end to balance an open code block, or ""."""
        return self.open_fence.close_after(self.body) if self.open_fence else ""

    @property
    def text(self) -> str:
        """What to post: reopen + body + close."""
        return self.reopen + self.body + self.close

    def text_with(self, suffix: str) -> str:
        """The part with `suffix` (a streaming marker) added to the body, inside the
        closing fence so the fence stays a fence."""
        body = self.body + suffix
        close = self.open_fence.close_after(body) if self.open_fence else ""
        return self.reopen + body + close


def fence_after_line(line: str, fence: Fence | None) -> Fence | None:
    """The open code block after `line` (without its newline), given the one before."""
    stripped = line.lstrip(" ")
    if len(line) - len(stripped) > _MAX_FENCE_INDENT or not stripped.startswith("```"):
        return fence
    run = len(stripped) - len(stripped.lstrip(_BACKTICK))
    rest = stripped[run:]
    if fence is None:
        return None if _BACKTICK in rest else Fence(_BACKTICK * run, rest.strip())
    if run >= len(fence.marker) and not rest.strip():
        return None
    return fence


def fence_state(text: str, start: int, end: int, fence: Fence | None) -> Fence | None:
    """The open code block after every line of text[start:end], the last one included
    even without a newline (that is how a platform draws the text)."""
    pos = start
    while pos < end:
        newline = text.find("\n", pos, end)
        line_end = end if newline < 0 else newline
        fence = fence_after_line(text[pos:line_end], fence)
        pos = line_end + 1
    return fence


def plan_split(
    text: str, limit: int, *, start: int = 0, fence: Fence | None = None
) -> list[MessagePart]:
    """Split text[start:] into parts of at most `limit` characters each.

    Args:
        text: the whole text; only text[start:] is split.
        limit: the platform's maximum message length (at least `MIN_SPLIT_LIMIT`).
        start: where to begin, the `end` of an earlier part (streaming continues there).
        fence: the code block open at `start` (the earlier part's `open_fence`).

    Returns:
        The parts in order; empty when text[start:] is empty.
    """
    if limit < MIN_SPLIT_LIMIT:
        raise ValueError(f"message limit {limit} is below {MIN_SPLIT_LIMIT}")
    parts: list[MessagePart] = []
    pos = start
    while pos < len(text):
        reopen = fence.reopen_line(limit) if fence else ""
        carried = fence if reopen else None
        rest = len(text) - pos
        if len(reopen) + rest <= limit:
            end_fence = fence_state(text, pos, len(text), carried)
            last = MessagePart(pos, len(text), reopen, text[pos:], end_fence)
            if len(last.text) <= limit:
                parts.append(last)
                break
        part = _cut_part(text, pos, limit, reopen, carried)
        parts.append(part)
        pos, fence = part.end, part.open_fence
    return parts


def split_message(text: str, limit: int) -> list[str]:
    """Split text into messages of at most `limit` characters; see the module docstring
    for where it cuts and how to re-join the parts. Empty text gives no messages."""
    return [part.text for part in plan_split(text, limit)]


def _cut_part(text: str, pos: int, limit: int, reopen: str, fence: Fence | None) -> MessagePart:
    """The next part of a text that does not fit in one: the best cut that leaves room
    for the closing fence the cut may need."""
    budget = limit - len(reopen)
    good = pos + int(budget * MIN_FILL)
    while budget >= 1:
        cut = _best_cut(text, pos, min(pos + budget, len(text) - 1), good)
        open_fence = fence_state(text, pos, cut, fence)
        part = MessagePart(pos, cut, reopen, text[pos:cut], open_fence)
        if len(part.text) <= limit:
            return part
        budget = min(budget - 1, limit - len(reopen) - len(part.close))
    # Only a fence marker about as long as the limit gets here: stay within the limit.
    end = pos + limit - len(reopen)
    return MessagePart(pos, end, reopen, text[pos:end], None)


def _best_cut(text: str, pos: int, hi: int, good: int) -> int:
    """The best cut in (pos, hi]; cuts from `good` on keep the part full enough to prefer
    a paragraph or line break. text[hi] exists, so one character of look-ahead is always
    available and the choice never depends on text that has not arrived yet."""
    paragraph = text.rfind("\n\n", pos, hi)
    paragraph = paragraph + 2 if paragraph >= 0 else -1
    line = text.rfind("\n", pos, hi)
    line = line + 1 if line >= 0 else -1
    space = _last_space_cut(text, pos, hi)
    for cut in (paragraph, line, space):
        if cut >= good:
            return cut
    best = max(paragraph, line, space)
    if best > pos:
        return best
    # One line with no usable space: cut inside a word, as late as the fence rules allow.
    for cut in range(hi, pos, -1):
        if text[cut] in " `":
            continue
        return cut if _mid_line_ok(text, pos, cut) else hi
    return hi


def _last_space_cut(text: str, pos: int, hi: int) -> int:
    """The last allowed cut right after a space in (pos, hi], or -1. Linear: each line
    is looked at once, and a fence line is skipped whole."""
    space = text.rfind(" ", pos, hi)
    line_start = hi + 1
    while space >= pos:
        if space < line_start:
            line_start = max(pos, text.rfind("\n", pos, space) + 1)
            if text[line_start : space + 1].lstrip(" ").startswith("```"):
                space = text.rfind(" ", pos, line_start)
                continue
        if text[space + 1] not in " `\n":
            return space + 1
        space = text.rfind(" ", pos, space)
    return -1


def _mid_line_ok(text: str, pos: int, cut: int) -> bool:
    """Whether a cut inside a line keeps fences intact in both parts: the line must not
    start with three backticks (a fence line stays whole) and the next part must not
    start with a space or backtick (its first line could turn into a fence)."""
    if text[cut] in " `\n":
        return False
    line_start = max(pos, text.rfind("\n", pos, cut) + 1)
    return not text[line_start:cut].lstrip(" ").startswith("```")
