"""`bridge ask`: one question to the configured backend, streamed to the terminal.

It is the quickest way to check a backend's settings without any chat platform: the
answer text goes to stdout as it arrives, progress lines to stderr, then the sources and
the conversation id to continue with.
"""

from __future__ import annotations

import shlex
import sys
from contextlib import aclosing
from typing import TextIO

import aiohttp

from bridge.backends import build_backend
from bridge.backends.events import (
    AnswerDone,
    AnswerEvent,
    AnswerFailed,
    ConversationStarted,
    Source,
    StatusUpdate,
    TextDelta,
)
from bridge.config import Settings
from bridge.errors import ConfigError
from bridge.logs import configure_logging
from bridge.relay.admission import length_refusal
from bridge.relay.dispatch import EMPTY_ANSWER_REASON
from bridge.safety import plain_sources_block

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EMPTY_QUESTION = (
    'the question is empty: ask something, e.g. bridge ask "What are your opening hours?"'
)
_DIM, _RESET = "\x1b[2m", "\x1b[0m"


class _TerminalAnswer:
    """Prints one answer's events: text as it streams, status lines aside."""

    def __init__(self, out: TextIO, err: TextIO, conversation_id: str | None) -> None:
        self.out = out
        self.err = err
        self.conversation_id = conversation_id
        self._streamed: list[str] = []
        self._dim = err.isatty()

    @property
    def streamed(self) -> bool:
        """Whether any answer text arrived."""
        return any(part.strip() for part in self._streamed)

    def show(self, event: AnswerEvent) -> None:
        match event:
            case TextDelta(text=text):
                self._streamed.append(text)
                self.out.write(text)
                self.out.flush()
            case StatusUpdate(text=text):
                line = f"… {text}"
                self.err.write(f"{_DIM}{line}{_RESET}\n" if self._dim else f"{line}\n")
                self.err.flush()
            case ConversationStarted(conversation_id=conversation_id):
                self.conversation_id = conversation_id
            case AnswerDone() as done:
                self._finish_text(done.text)
                self.conversation_id = done.conversation_id or self.conversation_id
                self._sources(done.sources)
            case AnswerFailed() as failed:
                self._end_line()
                self._sources(failed.sources)

    def _finish_text(self, final: str) -> None:
        """`done.text` is authoritative: print what the stream left out, or the whole final
        text again when it differs from what was streamed."""
        streamed = "".join(self._streamed)
        if final.startswith(streamed):
            self.out.write(final[len(streamed) :])
        elif final.strip():
            self.out.write("\n\n--- final answer ---\n" + final)
        self._streamed = [final]
        self._end_line()

    def _end_line(self) -> None:
        streamed = "".join(self._streamed)
        if streamed and not streamed.endswith("\n"):
            self.out.write("\n")
        self.out.flush()

    def _sources(self, sources: tuple[Source, ...]) -> None:
        block = plain_sources_block(sources)  # the same lines as `bridge demo`
        if block:
            self.out.write(block.removeprefix("\n") + "\n")
            self.out.flush()


async def run_ask(
    settings: Settings,
    question: str,
    *,
    backend: str | None = None,
    conversation_id: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Ask one question and print the answer; returns the process exit code.

    Returns:
        0 when the answer completed, 1 when the backend failed (reason on stderr),
        2 when no backend is configured (the variables to set on stderr).
    """
    out = out or sys.stdout
    err = err or sys.stderr
    if backend is not None:
        settings = settings.model_copy(update={"bridge_backend": backend})
    # The relay's admission rules, before anything else (the backend answers HTTP 400).
    problem = EMPTY_QUESTION if not question.strip() else None
    problem = problem or length_refusal(question.strip(), settings.bridge_max_question_chars)
    if problem:
        err.write(f"bridge: {problem}\n")
        return EXIT_CONFIG
    try:
        name = settings.backend_name()
    except ConfigError as exc:
        err.write(f"bridge: {exc}\n")
        return EXIT_CONFIG
    # Retry notes and warnings only; the outcome itself is printed below.
    quiet = settings.model_copy(update={"log_level": "warning"})
    configure_logging(settings if settings.log_level == "debug" else quiet, err)
    terminal: AnswerEvent | None = None
    answer = _TerminalAnswer(out, err, conversation_id)
    async with aiohttp.ClientSession() as session:
        client = build_backend(settings, session, name)
        async with aclosing(client.stream_answer(question, conversation_id)) as events:
            async for event in events:
                answer.show(event)
                terminal = event
    if answer.conversation_id:
        again = "bridge ask" + (f" --backend {backend}" if backend else "")
        out.write(
            f"\nconversation: {answer.conversation_id} (continue with: {again} "
            f'--conversation {shlex.quote(answer.conversation_id)} "…")\n'
        )
        out.flush()
    if isinstance(terminal, AnswerFailed):
        err.write(f"bridge: the answer failed: {terminal.reason}\n")
        return EXIT_FAILED
    if isinstance(terminal, AnswerDone) and not (terminal.text.strip() or answer.streamed):
        err.write(f"bridge: the answer failed: {EMPTY_ANSWER_REASON}\n")  # as in chat
        return EXIT_FAILED
    return EXIT_OK
