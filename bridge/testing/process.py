"""`python -m bridge COMMAND` as a real subprocess, for the ops tests and benchmarks."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

import aiohttp

# Generous: the subprocess imports slack_bolt and discord on a busy 2-core machine.
WAIT_SECONDS = 45.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BridgeProcess:
    """`python -m bridge COMMAND` with its output collected (drained continuously, so a
    chatty debug log can never fill the pipe and stall the process)."""

    def __init__(self, command: str, env: dict[str, str], cwd: Path) -> None:
        self.command = command
        self.env = env
        self.cwd = cwd
        self.url = f"http://127.0.0.1:{env.get('PORT', '')}"
        self.output = bytearray()
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bridge",
            self.command,
            env=self.env,
            cwd=self.cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read())

    async def wait_for_log(self, text: str) -> None:
        async with asyncio.timeout(WAIT_SECONDS):
            while text not in self.text:
                assert self._reader is not None and not self._reader.done(), self.text
                self._changed.clear()
                await self._changed.wait()

    async def wait_for_status(self, session: aiohttp.ClientSession, path: str, status: int) -> None:
        """Poll `path` until it answers `status` (the port may not be open yet)."""
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                assert self.proc is not None and self.proc.returncode is None, self.text
                try:
                    async with session.get(self.url + path) as response:
                        if response.status == status:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)

    async def wait_for_event(self, event: asyncio.Event) -> None:
        """Wait for `event`; fail with the output if the process ends first."""
        assert self._reader is not None
        waiter = asyncio.create_task(event.wait())
        try:
            async with asyncio.timeout(WAIT_SECONDS):
                await asyncio.wait({waiter, self._reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        assert event.is_set(), self.text

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while chunk := await self.proc.stdout.read(65536):
            self.output += chunk
            self._changed.set()
        self._changed.set()

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    async def terminate(self) -> int:
        """SIGTERM, then wait for a clean exit."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await self.wait()

    async def wait(self) -> int:
        assert self.proc is not None and self._reader is not None
        async with asyncio.timeout(WAIT_SECONDS):
            code = await self.proc.wait()
            await self._reader
        return code

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await self._reader
