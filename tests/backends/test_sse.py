"""SSE parser: one table of WHATWG rules, a split-anywhere property test, and the size cap."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.backends.sse import MAX_EVENT_BYTES, SSEEvent, SSEParser
from bridge.errors import SSEError


@dataclass(frozen=True)
class Case:
    """`chunks` are fed in order; `fed` must come out of the feeds, `closed` out of close()."""

    chunks: tuple[bytes, ...]
    fed: tuple[SSEEvent, ...] = ()
    closed: tuple[SSEEvent, ...] = ()


def msg(data: str, event: str = "message", id: str | None = None, retry: int | None = None):
    return SSEEvent(event=event, data=data, id=id, retry=retry)


CASES: dict[str, Case] = {
    # Line endings.
    "lf": Case((b"data: a\n\ndata: b\n\n",), (msg("a"), msg("b"))),
    "crlf": Case((b"data: a\r\n\r\ndata: b\r\n\r\n",), (msg("a"), msg("b"))),
    "cr": Case((b"data: a\r\rdata: b\r\r",), (msg("a"), msg("b"))),
    "mixed endings": Case((b"data: a\rdata: b\r\ndata: c\n\r\n",), (msg("a\nb\nc"),)),
    "crlf split across feeds is one line ending": Case(
        (b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"), (msg("a\nb"),)
    ),
    "cr at chunk end dispatches without waiting": Case((b"data: a\r", b"\r"), (msg("a"),)),
    "cr before a partial line does not eat the next lf": Case(
        (b"data: a\rdata: b", b"\n\n"), (msg("a\nb"),)
    ),
    "cr cr in one chunk is a blank line": Case((b"data: a\r\r",), (msg("a"),)),
    "lf after cr-terminated blank line is skipped once": Case(
        (b"data: a\n\r", b"\n", b"\n"), (msg("a"),)
    ),
    # Encoding.
    "utf-8 split across feeds": Case((b"data: caf\xc3", b"\xa9\n\n"), (msg("café"),)),
    "4-byte utf-8 fed byte by byte": Case(
        (b"data: ", b"\xf0", b"\x9f", b"\x98", b"\x80", b"\n\n"), (msg("\U0001f600"),)
    ),
    "invalid utf-8 is replaced": Case((b"data: a\xffb\xe2\n\n",), (msg("a\ufffdb\ufffd"),)),
    "bom at stream start is dropped": Case((b"\xef\xbb\xbfdata: a\n\n",), (msg("a"),)),
    "bom split across feeds": Case((b"\xef", b"\xbb", b"\xbfdata: a\n\n"), (msg("a"),)),
    "only one bom is dropped": Case((b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\n",)),
    "bom after the first line is kept": Case((b"\n\xef\xbb\xbfdata: a\n\n",)),
    "bom inside data is kept": Case((b"data: \xef\xbb\xbfa\n\n",), (msg("\ufeffa"),)),
    # Comments and field syntax.
    "comments are ignored": Case((b": hello\ndata: a\n:\n: data: no\n\n",), (msg("a"),)),
    "comment-only stream yields nothing": Case((b": ping\n\n: ping\n\n",)),
    "no space after colon": Case((b"data:a\n\n",), (msg("a"),)),
    "only one space is dropped": Case((b"data:  a \n\n",), (msg(" a "),)),
    "colons in the value are kept": Case((b"data: a: b:c\n\n",), (msg("a: b:c"),)),
    "no colon means empty value": Case((b"data\n\n",), (msg(""),)),
    "empty data still dispatches": Case((b"data:\n\n",), (msg(""),)),
    "multi-line data joined with lf": Case((b"data: a\ndata:\ndata: c\n\n",), (msg("a\n\nc"),)),
    "field names are case-sensitive": Case((b"Data: a\nDATA: b\n\n",)),
    "unknown fields are ignored": Case((b"foo: x\ndata: a\nbar\n\n",), (msg("a"),)),
    # event
    "event sets the type": Case((b"event: chunk\ndata: a\n\n",), (msg("a", "chunk"),)),
    "last event line wins": Case((b"event: x\nevent: y\ndata: a\n\n",), (msg("a", "y"),)),
    "empty event means message": Case((b"event:\ndata: a\n\n",), (msg("a"),)),
    "event without colon means message": Case((b"event\ndata: a\n\n",), (msg("a"),)),
    "type resets after dispatch": Case(
        (b"event: x\ndata: a\n\ndata: b\n\n",), (msg("a", "x"), msg("b"))
    ),
    # Blank lines without data.
    "no data means no dispatch": Case((b"event: x\nid: 1\n\n\n\n",)),
    "type does not leak past an empty event": Case((b"event: x\n\ndata: a\n\n",), (msg("a"),)),
    # id
    "id persists across events": Case(
        (b"id: 7\ndata: a\n\ndata: b\n\n",), (msg("a", id="7"), msg("b", id="7"))
    ),
    "id set by an event without data persists": Case(
        (b"id: 7\n\ndata: a\n\n",), (msg("a", id="7"),)
    ),
    "id with nul is ignored": Case((b"id: 1\n\nid: 2\x003\ndata: a\n\n",), (msg("a", id="1"),)),
    "empty id clears it": Case(
        (b"id: 1\ndata: a\n\nid\ndata: b\n\n",), (msg("a", id="1"), msg("b"))
    ),
    # retry
    "retry digits": Case(
        (b"retry: 1500\ndata: a\n\ndata: b\n\n",), (msg("a", retry=1500), msg("b"))
    ),
    "retry non-digits ignored": Case(
        (b"retry: 15s\nretry: -1\nretry: 1.5\nretry\ndata: a\n\n",), (msg("a"),)
    ),
    "retry non-ascii digits ignored": Case(
        ("retry: ١٢\nretry: ²\ndata: a\n\n".encode(),), (msg("a"),)
    ),
    "retry absurdly long ignored": Case(
        (b"retry: " + b"9" * 5000 + b"\ndata: a\n\n",), (msg("a"),)
    ),
    "last valid retry wins": Case(
        (b"retry: 1\nretry: x\nretry: 2\ndata: a\n\n",), (msg("a", retry=2),)
    ),
    # End of stream (liberal: deliver what has data).
    "close delivers a pending event": Case((b"data: a\n",), closed=(msg("a"),)),
    "close delivers an unterminated last line": Case(
        (b"data: a\n\nevent: e\ndata: b",), (msg("a"),), (msg("b", "e"),)
    ),
    "close after cr delivers": Case((b"data: a\r",), closed=(msg("a"),)),
    "close drops an event without data": Case((b"event: e\nid: 1",)),
    "empty stream": Case(()),
    "empty chunks are harmless": Case((b"", b"data: a\n", b"", b"\n"), (msg("a"),)),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_rules(case: Case) -> None:
    parser = SSEParser()
    fed = [event for chunk in case.chunks for event in parser.feed(chunk)]
    assert fed == list(case.fed)
    assert parser.close() == list(case.closed)
    assert parser.close() == []


def test_parser_remembers_last_id_and_retry() -> None:
    parser = SSEParser()
    parser.feed(b"id: abc\nretry: 3000\n\n")
    assert (parser.last_event_id, parser.retry) == ("abc", 3000)


# --- Property: the same events whatever the split, and the ones that were encoded. ---

_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\r\n\0"))
_LINE_ENDINGS = st.sampled_from(["\n", "\r", "\r\n"])


@dataclass
class _Model:
    """What the generated stream must decode to; built alongside the bytes."""

    events: list[SSEEvent] = field(default_factory=list)
    last_id: str | None = None


@st.composite
def _field_line(draw: st.DrawFn) -> tuple[str, str, str]:
    """(name, value, line text) for one field; the line uses a random colon form."""
    name = draw(st.sampled_from(["data", "data", "event", "id", "retry", "foo", "Data", "data "]))
    if name == "retry":
        value = draw(st.one_of(st.integers(0, 10**9).map(str), _TEXT))
    elif name == "id":
        value = draw(st.one_of(_TEXT, _TEXT.map(lambda t: t + "\0")))
    else:
        value = draw(_TEXT)
    forms = [f"{name}: {value}"]
    if not value.startswith(" "):
        forms.append(f"{name}:{value}")
    if not value:
        forms.append(name)
    return name, value, draw(st.sampled_from(forms))


@st.composite
def _streams(draw: st.DrawFn) -> tuple[bytes, list[SSEEvent]]:
    """A random valid event stream and the events it encodes."""
    model = _Model()
    lines: list[str] = []
    blocks = draw(st.integers(0, 6))
    for index in range(blocks):
        event_type, data, retry = "", [], None
        for _ in range(draw(st.integers(0, 5))):
            if draw(st.booleans()) and draw(st.booleans()):
                lines.append(":" + draw(_TEXT))
                continue
            name, value, line = draw(_field_line())
            lines.append(line)
            if name == "data":
                data.append(value)
            elif name == "event":
                event_type = value
            elif name == "id" and "\0" not in value:
                model.last_id = value or None
            elif name == "retry" and value.isascii() and value.isdigit() and len(value) <= 10:
                retry = int(value)
        last = index == blocks - 1
        if not (last and draw(st.booleans())):  # the last block may omit its blank line
            lines.append("")
        if data:
            model.events.append(
                SSEEvent(event_type or "message", "\n".join(data), model.last_id, retry)
            )
    text = ""
    previous_end = ""
    for position, line in enumerate(lines):
        end = draw(_LINE_ENDINGS)
        if previous_end == "\r" and not line and end.startswith("\n"):
            end = "\r"  # "\r" + "\n" would be one line ending, not two
        if position == len(lines) - 1 and line and draw(st.booleans()):
            end = ""  # unterminated last line
        text += line + end
        previous_end = end
    bom = "\ufeff" if draw(st.booleans()) else ""
    return (bom + text).encode(), model.events


def _parse(chunks: list[bytes]) -> list[SSEEvent]:
    parser = SSEParser()
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    return events + parser.close()


@settings(max_examples=300, deadline=None)
@given(stream=_streams(), data=st.data())
def test_any_split_gives_the_encoded_events(stream: tuple[bytes, list[SSEEvent]], data) -> None:
    raw, expected = stream
    cuts = sorted(data.draw(st.sets(st.integers(0, len(raw)), max_size=12)))
    bounds = [0, *cuts, len(raw)]
    chunks = [raw[a:b] for a, b in itertools.pairwise(bounds)]
    assert _parse([raw]) == expected
    assert _parse(chunks) == expected


@settings(max_examples=100, deadline=None)
@given(stream=_streams())
def test_every_two_way_split_gives_the_encoded_events(
    stream: tuple[bytes, list[SSEEvent]],
) -> None:
    raw, expected = stream
    for cut in range(len(raw) + 1):
        assert _parse([raw[:cut], raw[cut:]]) == expected, cut


@settings(max_examples=50, deadline=None)
@given(stream=_streams())
def test_byte_by_byte_gives_the_encoded_events(stream: tuple[bytes, list[SSEEvent]]) -> None:
    raw, expected = stream
    assert _parse([raw[i : i + 1] for i in range(len(raw))]) == expected


# --- Property: any soup of lines, split anywhere, parses as the rules read whole. ---

# The shapes the fast path takes (runs of alike blocks) mixed with everything that must
# make it step aside: other types, ids, retry, comments, colon forms, multi-line data,
# stray blank lines, every line ending, invalid and split UTF-8, a BOM.
_TOKENS = st.sampled_from(
    [
        "event: message\ndata: {}\n\n",
        "event: chunk\ndata: x\n\n",
        "data: a\n\n",
        "data: b\r\n\r\n",
        "event: \ndata: e\n\n",
        "event:  sp\ndata:  two\n\n",
        "event: message\n",
        "data: ",
        "data:x",
        "data",
        "id: 7\n",
        "id\n",
        "id: a\x00\n",
        "retry: 250\n",
        ": c\n",
        "é☕",
        "\n",
        "\r",
        "\r\n",
        "\ufeff",
    ]
).map(str.encode) | st.sampled_from([b"\xff", b"\xe2\x98", b"\xef\xbb\xbf"])


def _rules(raw: bytes) -> list[SSEEvent]:
    """The WHATWG rules applied to a whole stream at once (plus the liberal close)."""
    text = raw.decode("utf-8", "replace").removeprefix("\ufeff")
    events: list[SSEEvent] = []
    kind, data, last_id, retry = "", [], None, None
    for line in [*re.split("\r\n|\r|\n", text), ""]:
        if not line:
            if data:
                events.append(SSEEvent(kind or "message", "\n".join(data), last_id, retry))
            kind, data, retry = "", [], None
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if line.startswith(":"):
            continue
        if name == "data":
            data.append(value)
        elif name == "event":
            kind = value
        elif name == "id" and "\0" not in value:
            last_id = value or None
        elif name == "retry" and re.fullmatch("[0-9]{1,10}", value):
            retry = int(value)
    return events


@settings(max_examples=400, deadline=None)
@given(tokens=st.lists(_TOKENS, max_size=40), data=st.data())
def test_any_line_soup_split_anywhere_follows_the_rules(tokens: list[bytes], data) -> None:
    raw = b"".join(tokens)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(raw)), max_size=8)))
    chunks = [raw[a:b] for a, b in itertools.pairwise([0, *cuts, len(raw)])]
    assert _parse(chunks) == _rules(raw)


def test_long_runs_of_alike_events_in_any_read_size() -> None:
    """The backends' shapes, many events per read, with reads cut at every offset."""
    widget = b"".join(b'event: message\ndata: {"n": %d}\n\n' % n for n in range(300))
    openai = b"".join(b"data: %d\n\n" % n for n in range(300))
    for raw, kind in ((widget, "message"), (openai, "message")):
        expected = _rules(raw)
        assert len(expected) == 300 and {event.event for event in expected} == {kind}
        for size in (1, 7, 64, 1400, len(raw)):
            assert _parse([raw[i : i + size] for i in range(0, len(raw), size)]) == expected


def test_importing_the_parser_loads_only_the_standard_library() -> None:
    """Tools and tests load the parser without the HTTP stack (aiohttp, settings, metrics)."""
    code = (
        "import sys; before = set(sys.modules); import bridge.backends.sse; "
        "print(*sorted(set(sys.modules) - before))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    ours = {"bridge", "bridge.backends", "bridge.backends.sse", "bridge.errors"}
    others = [
        name
        for name in loaded
        if name not in ours and name.partition(".")[0].lstrip("_") not in _stdlib()
    ]
    assert "bridge.backends.sse" in loaded
    assert others == []


def _stdlib() -> set[str]:
    return {name.lstrip("_") for name in sys.stdlib_module_names}


# --- Size cap and cost. ---


def test_event_over_cap_raises() -> None:
    parser = SSEParser(max_event_bytes=1000)
    parser.feed(b"data: " + b"x" * 400 + b"\n" + b"data: " + b"x" * 400 + b"\n")
    with pytest.raises(SSEError):
        parser.feed(b"data: " + b"x" * 400 + b"\n")


def test_cap_resets_per_event_and_ignores_comments() -> None:
    parser = SSEParser(max_event_bytes=1000)
    chunk = b": " + b"c" * 900 + b"\ndata: " + b"x" * 900 + b"\n\n"
    events = [event for _ in range(5) for event in parser.feed(chunk)]
    assert events == [msg("x" * 900)] * 5


def test_cap_counts_bytes_not_characters() -> None:
    parser = SSEParser(max_event_bytes=1000)
    with pytest.raises(SSEError):
        parser.feed(("data: " + "é" * 600 + "\n").encode())


def test_unterminated_line_over_cap_raises_while_feeding() -> None:
    parser = SSEParser(max_event_bytes=1000)
    parser.feed(b"data: ")
    with pytest.raises(SSEError):
        for _ in range(2000):
            parser.feed(b"x")
    assert len(parser._buffer) <= 1001  # buffered no further than the cap


def test_default_cap_is_one_mebibyte() -> None:
    assert MAX_EVENT_BYTES == 1 << 20
    within = b"data: " + b"x" * (MAX_EVENT_BYTES - 6) + b"\n\n"
    assert SSEParser().feed(within) == [msg("x" * (MAX_EVENT_BYTES - 6))]
    with pytest.raises(SSEError):
        SSEParser().feed(b"data: " + b"x" * MAX_EVENT_BYTES)


def test_cap_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SSEParser(max_event_bytes=0)


@pytest.mark.timeout(60)
def test_one_byte_feeds_of_a_long_stream_stay_linear() -> None:
    """A quadratic parser needs billions of byte copies here and hits the timeout;
    a linear one takes well under a second."""
    line = b"data: " + b"y" * 100_000 + b"\n"
    stream = line + b"data: " + "é".encode() * 20_000 + b"\r\n\r\n"
    parser = SSEParser()
    events = [event for i in range(len(stream)) for event in parser.feed(stream[i : i + 1])]
    assert events == [msg("y" * 100_000 + "\n" + "é" * 20_000)]
