"""Incremental, sans-IO parser for `text/event-stream` (Server-Sent Events).

Both backends stream answers as SSE, so they share this one parser: bytes in, `SSEEvent`s
out, no sockets and no `await`, which lets tests feed a stream split at every position.

It follows the WHATWG "event stream interpretation" rules
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):

* lines end with `\\r\\n`, `\\n` or `\\r`, also when the `\\r` and `\\n` of one `\\r\\n`
  arrive in different feeds (a line ending in `\\r` is handled at once and a `\\n` opening
  the next feed is then skipped, so no event is held back waiting for the next chunk);
* bytes are UTF-8 with invalid sequences replaced by U+FFFD, and one byte order mark is
  dropped at the very start of the stream only;
* lines starting with `:` are comments; `field:value` drops one space after the colon;
  a line without a colon is a field with an empty value; unknown fields are ignored;
* `data` lines are joined with `\\n`; `event` sets the type (default "message");
  `id` sets the last event id unless it contains NUL, and that id persists for later
  events (an empty `id` clears it); `retry` counts only when it is all ASCII digits;
* a blank line dispatches the event, unless no `data` line was seen.

One deliberate departure: at end of stream, `close()` treats an unterminated last line as
complete and delivers a pending event that has data. WHATWG discards such an event, but
real servers often end the stream without the final blank line (or the final newline),
and dropping the last answer chunk would lose text the user should see.

Memory stays bounded: a single line, or the field lines of a single event, larger than
`max_event_bytes` raise `SSEError` instead of being buffered. The parser should not be
fed again after it raised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bridge.errors import SSEError

MAX_EVENT_BYTES = 1 << 20
"""Default cap on one event. Answer chunks are a few hundred bytes and a whole long answer
in one `done` event stays far below 1 MiB; anything bigger is a broken or hostile server."""

_MAX_RETRY_DIGITS = 10
"""Longer `retry` values are ignored: 10 digits already exceed 100 days, and `int()` refuses
strings over 4300 digits, which a hostile server could otherwise send."""

_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = "\ufeff"
_DEFAULT_EVENT_TYPE = "message"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event.

    Attributes:
        event: the event type; "message" when the server sent none.
        data: the `data` lines joined with `\\n`.
        id: the last event id in effect when this event was dispatched (it persists
            across events), or None if the server never set one or cleared it.
        retry: the reconnection time in milliseconds if this event carried a valid
            `retry` field, else None.
    """

    event: str
    data: str
    id: str | None = None
    retry: int | None = None


class SSEParser:
    """Turns chunks of an event stream into `SSEEvent`s; see the module docstring for rules.

    Work per `feed` is proportional to the chunk (plus the lines it completes), so feeding
    a stream one byte at a time stays linear.
    """

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        if max_event_bytes <= 0:
            raise ValueError("max_event_bytes must be positive")
        self.max_event_bytes = max_event_bytes
        self.last_event_id: str | None = None
        """The id that the next event will carry (WHATWG "last event ID buffer")."""
        self.retry: int | None = None
        """The latest valid `retry` value seen anywhere in the stream, in milliseconds."""
        self._buffer = bytearray()  # the current unterminated line; holds no \r or \n
        self._skip_lf = False  # the previous chunk ended in \r: a leading \n is its pair
        self._at_stream_start = True  # the next line is the first one (may carry a BOM)
        self._event_type = ""
        self._data: list[str] = []
        self._event_retry: int | None = None
        self._event_bytes = 0

    def feed(self, data: bytes) -> list[SSEEvent]:
        """Parse the next chunk and return the events it completed (often none).

        Raises:
            SSEError: a line or an event is larger than `max_event_bytes`.
        """
        if not data:
            return []
        start = 1 if self._skip_lf and data[:1] == b"\n" else 0
        self._skip_lf = False
        scan_from = len(self._buffer)
        self._buffer += memoryview(data)[start:]
        events: list[SSEEvent] = []
        line_start = 0
        for match in _LINE_END.finditer(self._buffer, scan_from):
            self._process_line(bytes(self._buffer[line_start : match.start()]), events)
            line_start = match.end()
        if line_start:
            # Only a \r that ends the chunk may be the first half of a split \r\n.
            self._skip_lf = line_start == len(self._buffer) and self._buffer[-1:] == b"\r"
            del self._buffer[:line_start]
        self._check_size(len(self._buffer))
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: finish an unterminated last line and deliver a pending event
        that has data (see the module docstring). Calling it again returns []."""
        events: list[SSEEvent] = []
        if self._buffer:
            line = bytes(self._buffer)
            self._buffer.clear()
            self._process_line(line, events)
        self._skip_lf = False
        self._dispatch(events)
        return events

    def _process_line(self, raw: bytes, events: list[SSEEvent]) -> None:
        # Line endings are ASCII and never occur inside a multi-byte UTF-8 sequence, so
        # decoding whole lines gives the same text as an incremental decoder would.
        self._check_size(len(raw))
        line = raw.decode("utf-8", errors="replace")
        if self._at_stream_start:
            self._at_stream_start = False
            line = line.removeprefix(_BOM)
        if not line:
            self._dispatch(events)
            return
        if line.startswith(":"):
            return
        self._event_bytes += len(raw)
        self._check_size(self._event_bytes)
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event_type = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value or None
        elif name == "retry" and _is_retry_value(value):
            self.retry = self._event_retry = int(value)

    def _dispatch(self, events: list[SSEEvent]) -> None:
        if self._data:
            events.append(
                SSEEvent(
                    event=self._event_type or _DEFAULT_EVENT_TYPE,
                    data="\n".join(self._data),
                    id=self.last_event_id,
                    retry=self._event_retry,
                )
            )
        self._event_type = ""
        self._data = []
        self._event_retry = None
        self._event_bytes = 0

    def _check_size(self, size: int) -> None:
        if size > self.max_event_bytes:
            raise SSEError(
                f"server-sent event larger than {self.max_event_bytes} bytes; stream abandoned"
            )


def _is_retry_value(value: str) -> bool:
    """WHATWG accepts only ASCII digits (`str.isdigit` alone would accept "²" or "٣")."""
    return 0 < len(value) <= _MAX_RETRY_DIGITS and value.isascii() and value.isdigit()
