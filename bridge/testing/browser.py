"""A real headless Chromium, driven over its DevTools protocol (CDP) with aiohttp.

Enough to walk through web pages as a person would: open a URL, click a link or
button, read text and the current address, and see cookies. The browser is the
system's (`apt-get install chromium`); nothing is downloaded. Every wait is bounded.

    async with Chromium.launch("/usr/bin/chromium") as page:
        await page.goto("http://127.0.0.1:8080/slack/install")
        await page.click("#add-to-slack")
        print(await page.text("h1"), await page.url())
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

# Chromium writes its DevTools port here once it listens; a cold start takes a second
# or two, a loaded CI machine longer.
START_SECONDS = 30.0
# A page load on 127.0.0.1 takes milliseconds; this only bounds a broken test.
LOAD_SECONDS = 15.0
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # tests run as root in containers, where the sandbox cannot start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--remote-debugging-port=0",
)


class BrowserError(Exception):
    """Chromium did not start, or a page did not do what the test expected."""


class Page:
    """One tab, over one CDP websocket."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._loaded = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name="cdp-reader")

    async def _read(self) -> None:
        async for message in self._socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            elif data.get("method") == "Page.loadEventFired":
                self._loaded.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BrowserError("the browser closed the connection"))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One CDP command; its `result`."""
        number = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[number] = future
        await self._socket.send_str(json.dumps({"id": number, "method": method, "params": params}))
        async with asyncio.timeout(LOAD_SECONDS):
            reply = await future
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error'].get('message')}")
        return dict(reply.get("result", {}))

    async def _until_loaded(self, action: Any) -> None:
        self._loaded.clear()
        await action
        async with asyncio.timeout(LOAD_SECONDS):
            await self._loaded.wait()

    async def goto(self, url: str) -> None:
        """Open `url` and wait until the page (after any redirects) has loaded."""
        await self._until_loaded(self.send("Page.navigate", url=url))

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"script failed: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    async def click(self, selector: str) -> None:
        """Click the element and wait for the page it leads to."""
        script = f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
        script += " if (!e) return false; e.click(); return true; })()"

        async def click() -> None:
            if not await self.evaluate(script):
                raise BrowserError(f"nothing matches {selector!r} on {await self.url()}")

        await self._until_loaded(click())

    async def text(self, selector: str = "body") -> str:
        value = await self.evaluate(
            f"document.querySelector({json.dumps(selector)})?.innerText ?? ''"
        )
        return str(value)

    async def url(self) -> str:
        return str(await self.evaluate("location.href"))

    async def close(self) -> None:
        await self._socket.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


class Chromium:
    """Starts and stops one headless Chromium with a throwaway profile."""

    @staticmethod
    @contextlib.asynccontextmanager
    async def launch(executable: str | Path) -> AsyncIterator[Page]:
        """A fresh browser's one tab; the browser and its profile are gone afterwards."""
        profile = Path(tempfile.mkdtemp(prefix="bridge-chromium-"))
        process = await asyncio.create_subprocess_exec(
            str(executable),
            *FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            port = await _devtools_port(profile, process)
            async with aiohttp.ClientSession() as session:
                page = await _open_tab(session, port)
                try:
                    await page.send("Page.enable")
                    yield page
                finally:
                    await page.close()
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    async with asyncio.timeout(10):
                        await process.wait()
                except TimeoutError:
                    process.kill()
                    await process.wait()
            shutil.rmtree(profile, ignore_errors=True)


async def _devtools_port(profile: Path, process: asyncio.subprocess.Process) -> int:
    marker = profile / "DevToolsActivePort"
    async with asyncio.timeout(START_SECONDS):
        while True:
            if process.returncode is not None:
                raise BrowserError(f"chromium exited at start (status {process.returncode})")
            with contextlib.suppress(OSError, ValueError, IndexError):
                return int(marker.read_text().split()[0])
            await asyncio.sleep(0.05)


async def _open_tab(session: aiohttp.ClientSession, port: int) -> Page:
    async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
        targets = await response.json()
    pages = [t for t in targets if t.get("type") == "page"]
    if not pages:
        raise BrowserError("chromium has no page open")
    socket = await session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
    return Page(socket)
