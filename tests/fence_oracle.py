"""An independent check of code-fence balance, written from the CommonMark spec (0.31,
section 4.5 "Fenced code blocks") rather than from `bridge.splitting`, so the splitter's
tests do not grade it with its own `fence_state`.

Rules used (documents without block quotes or list items, which is what answers are):
- an opening fence is a line indented at most 3 columns (a tab advances to the next
  multiple of 4), then at least three backticks or three tildes; a backtick fence's info
  string may not contain a backtick;
- inside a block, a closing fence is indented at most 3 columns, uses the opening
  character at least as many times, and has only spaces or tabs after it;
- every other line inside a block is content; a block still open at the end of the text
  is unbalanced (CommonMark closes it at the end of the document, a chat client shows
  the rest of the message as code).

A well-kept parser (markdown-it-py) would do too, but it is one more test dependency for
thirty lines of a spec that has not changed in years.
"""

from __future__ import annotations

import re

MAX_INDENT = 3
_FENCE = re.compile(r"(?P<marker>`{3,}|~{3,})(?P<rest>.*)")


def _indent_and_rest(line: str) -> tuple[int, str]:
    """Leading indentation in columns (tabs to the next multiple of 4), and the rest."""
    columns = 0
    for index, char in enumerate(line):
        if char == " ":
            columns += 1
        elif char == "\t":
            columns += 4 - columns % 4
        else:
            return columns, line[index:]
    return columns, ""


def _closes(open_marker: str, marker: str, after: str) -> bool:
    same_kind = marker[0] == open_marker[0] and len(marker) >= len(open_marker)
    return same_kind and not after.strip(" \t")


def open_fence_at_end(text: str) -> str | None:
    """The marker of the fenced code block still open at the end of `text`, or None."""
    open_marker: str | None = None
    for line in re.split(r"\r\n|\r|\n", text):
        indent, rest = _indent_and_rest(line)
        match = _FENCE.match(rest) if indent <= MAX_INDENT else None
        if match is None:
            continue
        marker, after = match["marker"], match["rest"]
        if open_marker is None:
            if marker[0] == "`" and "`" in after:
                continue  # not a fence: inline code at the start of a paragraph
            open_marker = marker
        elif _closes(open_marker, marker, after):
            open_marker = None
    return open_marker


def balanced(text: str) -> bool:
    """Whether every fenced code block in `text` is closed."""
    return open_fence_at_end(text) is None
