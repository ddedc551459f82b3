"""Starting a local aiohttp server, shared by the mock backend and the fake platforms."""

from __future__ import annotations

from typing import Any

from aiohttp import web


async def serve_app(
    app: web.Application, host: str = "127.0.0.1", port: int = 0, **runner_options: Any
) -> tuple[web.AppRunner, int]:
    """Serve `app` on host:port (port 0 picks a free one).

    Returns the runner, whose `cleanup()` stops the server, and the port actually bound.
    """
    runner = web.AppRunner(app, **runner_options)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, runner.addresses[0][1]
