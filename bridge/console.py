"""Terminal adapter and `bridge demo`: the whole relay, offline, against the mock backend.

The console surface goes through the same renderer as Slack and Discord, so what the
demo shows — placeholder, progressive edits, streaming marker, sources — is what the
platforms get. On a terminal the reply is redrawn in place; when output is piped (tests,
CI logs) only the final text of each message is printed, plus a one-line edit count.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from bridge.backends.events import Source
from bridge.config import Settings
from bridge.model import Question, ThreadKey
from bridge.relay import Outcome, Relay
from bridge.runtime import open_runtime
from bridge.safety import plain_sources_block
from bridge.surface import Draft, EditKind, SurfaceLimits
from bridge.testing.mock_backend import MockBackend

CONSOLE_LIMITS = SurfaceLimits(max_message_chars=100_000, min_edit_interval=0.1)
DEMO_THREAD = ThreadKey(platform="console", workspace="local", channel="terminal", thread="demo")
DEMO_QUESTION = "What can you do, and where do your answers come from?"
PROMPT_HELP = "Type a question; 'reset' starts a new conversation; Ctrl-D quits.\n\n"
EXIT_INTERRUPTED = 130  # as for any program ended by Ctrl-C (128 + SIGINT)
RESET_WORDS = frozenset({"reset", "/reset"})
QUIT_WORDS = frozenset({"quit", "exit", "/quit", "/exit"})
# Backend text could carry terminal escape sequences; keep newlines and tabs only.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class ConsoleSurface:
    """A `ReplySurface` drawing one answer in a terminal."""

    limits = CONSOLE_LIMITS

    def __init__(self, out: TextIO, *, live: bool) -> None:
        self._out = out
        self._live = live
        self._messages: dict[str, str] = {}
        self._drawn_rows = 0
        self._stopped = False
        self.edits = 0

    @property
    def channel(self) -> str:
        return DEMO_THREAD.channel

    async def post(self, text: str, *, kind: EditKind, draft: Draft | None = None) -> str:
        message_id = str(len(self._messages) + 1)
        if not self._stopped:
            self._messages[message_id] = text
            self._redraw()
        return message_id

    async def edit(
        self, message_id: str, text: str, *, kind: EditKind, draft: Draft | None = None
    ) -> None:
        if self._stopped:
            return
        self._messages[message_id] = text
        self.edits += 1
        self._redraw()

    def neutralize(self, text: str) -> str:
        return _CONTROL_CHARS.sub("", text)

    def render_sources(self, sources: Sequence[Source]) -> str:
        return plain_sources_block(sources)

    async def close(self) -> None:
        """Nothing to release; the final text is printed by `print_final` when piped."""

    def stop(self) -> None:
        """Ctrl-C: keep what is shown (printing it when piped) and draw nothing more. The
        relay still ends the answer as interrupted, with the chat platforms' notice
        ("interrupted by a restart"), which is not what happened in a terminal."""
        if not self._live:
            self._out.write(self._text() + "\n")
        self._stopped = True

    def print_final(self) -> None:
        """When not live, print what the reply ended as (live output is already there)."""
        if not self._live:
            self._out.write(self._text() + "\n")
            self._out.write(f"(streamed with {self.edits} edits)\n")
            self._out.flush()

    def _text(self) -> str:
        return "\n\n".join(self._messages.values())

    def _redraw(self) -> None:
        if not self._live:
            return
        text = "bot> " + self._text()
        if self._drawn_rows:
            # Move to the first row of the previous drawing and clear everything below.
            self._out.write(f"\x1b[{self._drawn_rows}F\x1b[J")
        self._out.write(text + "\n")
        self._out.flush()
        self._drawn_rows = _rows(text, shutil.get_terminal_size().columns)


def _rows(text: str, columns: int) -> int:
    """Terminal rows `text` occupies once wrapped at `columns`."""
    width = max(columns, 1)
    return sum(max(1, -(-len(line) // width)) for line in text.split("\n"))


def demo_settings(backend: str, mock: MockBackend, database: Path) -> Settings:
    """Settings that point every backend at the in-process mock; no tokens needed."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        bridge_backend=backend,
        wonderchat_chatbot_id=mock.chatbot_id,
        wonderchat_api_url=mock.url,
        widget_api_url=mock.url,
        widget_api_key=mock.api_key,
        database_url=f"sqlite:///{database}",
        bridge_edit_interval=CONSOLE_LIMITS.min_edit_interval,
        bridge_allowed_channels=frozenset(),
        bridge_allowed_guilds=frozenset(),
        bridge_allowed_users=frozenset(),
        bridge_user_rate_per_minute=0,
    )


class ConsoleChat:
    """One terminal conversation: each line typed is a question in the same thread."""

    def __init__(self, relay: Relay, out: TextIO, *, live: bool) -> None:
        self._relay = relay
        self._out = out
        self._live = live
        self._turn = 0
        self._answering: ConsoleSurface | None = None

    async def ask(self, text: str) -> Outcome:
        self._turn += 1
        surface = ConsoleSurface(self._out, live=self._live)
        question = Question(
            thread=DEMO_THREAD,
            user_id="you",
            text=text,
            event_id=f"console-{self._turn}",
            is_dm=True,
        )
        self._answering = surface
        try:
            outcome = await self._relay.answer(question, surface)
        finally:
            self._answering = None
        surface.print_final()
        return outcome

    def stop(self) -> None:
        """Ctrl-C: stop drawing the answer in progress, if any, and say how it ended."""
        if self._answering is None:
            self._out.write("\n")  # end the prompt's line
        else:
            self._answering.stop()
            after_echo = "\n" if self._live else ""  # the terminal echoed ^C on a new line
            self._out.write(f"{after_echo}(stopped by Ctrl-C; the answer was not finished)\n")
        self._out.flush()

    async def reset(self) -> None:
        await self._relay.reset(DEMO_THREAD)
        self._out.write("(conversation reset — the next question starts a new one)\n")


async def run_demo(
    *, backend: str = "wonderchat", once: str | None = None, delay: float = 0.04
) -> int:
    """`bridge demo`: start the mock backend and chat with it through the real relay.

    Returns 0 when done, 1 when the `--once` answer failed, 130 after Ctrl-C."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    ctrl_c = _CtrlC(asyncio.current_task())
    try:
        with ctrl_c:
            return await _demo(backend, once, delay, ctrl_c)
    except asyncio.CancelledError:
        if not ctrl_c.pressed:
            raise
        return EXIT_INTERRUPTED


async def _demo(backend: str, once: str | None, delay: float, ctrl_c: _CtrlC) -> int:
    out = sys.stdout
    live = out.isatty()
    with tempfile.TemporaryDirectory(prefix="bridge-demo-") as tmp:
        async with MockBackend(delay=delay) as mock:
            settings = demo_settings(backend, mock, Path(tmp) / "demo.db")
            async with open_runtime(settings) as runtime:
                chat = ConsoleChat(runtime.relay, out, live=live)
                ctrl_c.chat = chat
                out.write(f"bridge demo — offline, mock {backend} backend at {mock.url}\n")
                if once is not None:
                    out.write(f"\nyou> {once}\n")
                    out.flush()
                    outcome = await chat.ask(once)
                    conversation = await runtime.store.get_conversation(DEMO_THREAD)
                    if conversation is not None:
                        out.write(f"(conversation id: {conversation.conversation_id})\n")
                    return 0 if outcome is Outcome.DONE else 1
                out.write(PROMPT_HELP)
                await _interactive(chat, out)
    return 0


class _CtrlC:
    """Ctrl-C ends the demo at once, and the terminal shows how: asyncio's own handling
    would cancel the answer as a shutdown does, and print nothing after the prompt."""

    def __init__(self, task: asyncio.Task[object] | None) -> None:
        self._task = task
        self.chat: ConsoleChat | None = None
        self.pressed = False

    def __enter__(self) -> _CtrlC:
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, self._pressed)
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)

    def _pressed(self) -> None:
        if self.pressed or self._task is None:
            return
        self.pressed = True
        if self.chat is not None:
            self.chat.stop()
        self._task.cancel()


async def _interactive(chat: ConsoleChat, out: TextIO) -> None:
    """Open with a sample question so the streaming shows at once, then read lines
    (typed, or piped in) until end of input."""
    out.write(f"you> {DEMO_QUESTION}\n")
    await chat.ask(DEMO_QUESTION)
    out.write("\n")
    while True:
        try:
            line = await _read_line("you> ")
        except EOFError:
            out.write("\n")
            return
        text = line.strip()
        if text.lower() in QUIT_WORDS:
            return
        if text.lower() in RESET_WORDS:
            await chat.reset()
            continue
        if text:
            await chat.ask(text)
            out.write("\n")


async def _read_line(prompt: str) -> str:
    """`input()` on a daemon thread: Ctrl-C at the prompt ends the demo at once, where an
    executor thread would keep `asyncio.run` waiting for the next Enter. Piped input is
    read on the event loop instead: a daemon thread blocked in `sys.stdin.readline` holds
    its lock, and Python aborts at exit when it finds it taken."""
    if not sys.stdin.isatty():
        return await _PIPED_STDIN.line(prompt)
    loop = asyncio.get_running_loop()
    line: asyncio.Future[str] = loop.create_future()

    def settle(result: str | BaseException) -> None:
        if line.done():
            return
        if isinstance(result, BaseException):
            line.set_exception(result)
        else:
            line.set_result(result)

    def read() -> None:
        try:
            result: str | BaseException = input(prompt)
        except BaseException as exc:  # EOFError above all; handed to the awaiting task
            result = exc
        loop.call_soon_threadsafe(settle, result)

    threading.Thread(target=read, name="demo-input", daemon=True).start()
    return await line


class _PipedStdin:
    """Lines of piped stdin, read on the event loop: no thread, no lock held."""

    def __init__(self) -> None:
        self._buffer = bytearray()  # read beyond the last line returned

    async def line(self, prompt: str) -> str:
        sys.stdout.write(prompt)
        sys.stdout.flush()
        loop = asyncio.get_running_loop()
        fd = sys.stdin.fileno()
        while b"\n" not in self._buffer:
            readable = loop.create_future()
            loop.add_reader(fd, readable.set_result, None)
            try:
                await readable
            finally:
                loop.remove_reader(fd)
            chunk = os.read(fd, 4096)
            if not chunk:
                if not self._buffer:
                    raise EOFError
                break
            self._buffer.extend(chunk)
        line, _newline, rest = bytes(self._buffer).partition(b"\n")
        self._buffer[:] = rest
        return line.decode(errors="replace")


_PIPED_STDIN = _PipedStdin()
