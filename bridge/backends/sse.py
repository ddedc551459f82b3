"""Incremental, sans-IO parser for `text/event-stream` (Server-Sent Events).

Both backends stream answers as SSE, so they share this one parser: bytes in, `SSEEvent`s
out, no sockets and no `await`, which lets tests feed a stream split at every position.
It imports only the standard library and `bridge.errors`, so tools and tests can load it
without the HTTP stack.

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

Speed (about 3× httpx-sse's decoders, see benchmarks/bench_sse.py): each chunk's line
endings become `\\n` on arrival, and the bytes of the event being received are held until
its blank line comes. The complete events of a feed are then decoded at once, and when they
all have one of the two shapes the backends send (`_Shape`), a single `str.split` yields
their data values, so the work per event runs in C. Anything else (ids, retry, comments,
multi-line data, mixed shapes, an event larger than the cap) is read line by line by the
same rules; the split-anywhere property tests compare both paths with the rules.
"""

from __future__ import annotations

from itertools import repeat
from typing import NamedTuple

from bridge.errors import SSEError

MAX_EVENT_BYTES = 1 << 20
"""Default cap on one event. Answer chunks are a few hundred bytes and a whole long answer
in one `done` event stays far below 1 MiB; anything bigger is a broken or hostile server."""

_MAX_RETRY_DIGITS = 10
"""Longer `retry` values are ignored: 10 digits already exceed 100 days, and `int()` refuses
strings over 4300 digits, which a hostile server could otherwise send."""

_BOM = b"\xef\xbb\xbf"
_DEFAULT_EVENT_TYPE = "message"
# The fast path builds events with `map`, in C: NamedTuple's own `__new__` is Python code.
_new_tuple = tuple.__new__
_NONE = repeat(None)


class SSEEvent(NamedTuple):
    """One dispatched event: an immutable value, equal to another with the same fields.

    A named tuple rather than a frozen dataclass because a frozen dataclass takes about
    three times as long to build, and building events is most of the parser's work.

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


_SSE_EVENT = repeat(SSEEvent)


class _Shape(NamedTuple):
    """The form of a run of blocks that are all alike: `event: T` then `data: …` (both
    backends send this), or `data: …` alone. Such a run is `head + d1 + separator + d2 +
    … + dn + "\\n\\n"` with no newline in any value, so one split yields the values."""

    head: str
    separator: str
    kinds: repeat[str]  # the event type of every block, endlessly (for `zip`)

    @classmethod
    def of(cls, text: str) -> _Shape | None:
        """The shape of the first block of `text`, if it has one of the two forms."""
        if text.startswith("event: "):
            head = text[: text.find("\n")] + "\ndata: "
            if text.startswith(head):
                return cls(head, "\n\n" + head, repeat(head[7:-7] or _DEFAULT_EVENT_TYPE))
            return None
        if text.startswith("data: "):
            return cls("data: ", "\n\ndata: ", repeat(_DEFAULT_EVENT_TYPE))
        return None


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
        """The id that the next event will carry (WHATWG "last event ID buffer"); an `id`
        line counts once its event is complete (blank line or `close()`)."""
        self.retry: int | None = None
        """The latest valid `retry` value seen in the stream, in milliseconds (counted,
        like `id`, once its event is complete)."""
        # Bytes not parsed yet, line endings already turned into \n: the lines of the event
        # being received (it has no blank line yet), the last of them maybe unterminated.
        self._buffer = bytearray()
        self._skip_lf = False  # the previous chunk ended in \r: a leading \n is its pair
        self._at_stream_start = True  # the buffer starts the stream (may open with a BOM)
        self._shape: _Shape | None = None  # the shape of the last blocks parsed at once
        self._ids = _NONE  # `last_event_id`, endlessly (for `zip`)
        # An event whose lines were read one by one (`_read_lines`): its fields so far,
        # and the bytes of its field lines (comments do not count).
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
        if self._skip_lf:
            self._skip_lf = False
            if data[0] == 10:
                data = data[1:]
                if not data:
                    return []
        if 13 in data:  # (an int runs memchr; the one-byte string a slower search)
            self._skip_lf = data[-1] == 13
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buffer = self._buffer
        scanned = len(buffer) - 1  # a blank line may begin with the buffer's last \n
        buffer += data
        if self._at_stream_start:
            scanned = self._drop_bom()
        if self._event_bytes:
            return self._read_lines(scanned)
        end = buffer.rfind(b"\n\n", scanned if scanned > 0 else 0) + 2
        if end > 1:
            blocks = buffer[:end]
            del buffer[:end]
            events = self._parse_blocks(blocks)
        else:
            events = []
        if len(buffer) > self.max_event_bytes:
            # A long event still without its blank line: read its lines now, so that
            # comments are not held and an oversized line or event is refused at once.
            events += self._read_lines(0)
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: finish an unterminated last line and deliver a pending event
        that has data (see the module docstring). Calling it again returns []."""
        events: list[SSEEvent] = []
        rest = bytes(self._buffer)
        self._buffer.clear()
        for line in rest.split(b"\n") if rest else ():
            self._process_line(line, events)
        self._skip_lf = False
        self._dispatch(events)
        return events

    def _drop_bom(self) -> int:
        """Drop a BOM opening the stream, once its first three bytes (or line) are in.

        Returns where the search for a blank line starts: the buffer's beginning."""
        buffer = self._buffer
        if len(buffer) >= len(_BOM) or b"\n" in buffer:
            self._at_stream_start = False
            if buffer.startswith(_BOM):
                del buffer[: len(_BOM)]
        return 0

    def _parse_blocks(self, blocks: bytearray) -> list[SSEEvent]:
        """Parse whole events (`blocks` ends with a blank line; nothing is pending).

        When every block has the shape of the previous feed's blocks (see `_Shape`), one
        split yields all the data values; anything else is read line by line.
        """
        if len(blocks) <= self.max_event_bytes:  # no line or event inside can exceed the cap
            text = blocks.decode("utf-8", "replace")
            shape = self._shape
            if shape is None or not text.startswith(shape[0]):
                shape = self._shape = _Shape.of(text)
            if shape is not None:
                head, separator, kinds = shape
                values = text[len(head) : -2].split(separator)
                if "\n" not in "".join(values):  # (a one-character search runs memchr)
                    # `values` ends the zip; strict=False would cost more than the split.
                    rows = zip(kinds, values, self._ids, _NONE)  # noqa: B905
                    return list(map(_new_tuple, _SSE_EVENT, rows))
        events: list[SSEEvent] = []
        for line in blocks.split(b"\n")[:-1]:
            self._process_line(line, events)
        return events

    def _read_lines(self, scanned: int) -> list[SSEEvent]:
        """Process the buffer's complete lines one by one (a \\n ends each after `scanned`)."""
        buffer = self._buffer
        events: list[SSEEvent] = []
        cut = buffer.rfind(b"\n", max(scanned, 0)) + 1
        if cut:
            lines = bytes(buffer[:cut])
            del buffer[:cut]
            for line in lines.split(b"\n")[:-1]:
                self._process_line(line, events)
        self._check_size(len(buffer))
        return events

    def _process_line(self, raw: bytes, events: list[SSEEvent]) -> None:
        # Line endings are ASCII and never occur inside a multi-byte UTF-8 sequence, so
        # decoding whole lines gives the same text as an incremental decoder would.
        self._check_size(len(raw))
        if not raw:
            self._dispatch(events)
            return
        if raw[:1] == b":":
            return
        self._event_bytes += len(raw)
        self._check_size(self._event_bytes)
        name, _, value = raw.decode(errors="replace").partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event_type = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value or None
                self._ids = repeat(self.last_event_id)
        elif name == "retry" and _is_retry_value(value):
            self.retry = self._event_retry = int(value)

    def _dispatch(self, events: list[SSEEvent]) -> None:
        if self._data:
            events.append(
                SSEEvent(
                    self._event_type or _DEFAULT_EVENT_TYPE,
                    "\n".join(self._data),
                    self.last_event_id,
                    self._event_retry,
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
