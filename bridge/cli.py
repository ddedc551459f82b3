"""Command line: `bridge run|serve|demo|ask|check|routes|migrate|report|mock-backend|
discord-invite`.

Each command's work lives in the module that owns it; this file only parses arguments,
loads settings and turns errors into one readable line and a documented exit code:

    0    done (or shut down cleanly)
    1    the work failed: an answer failed, `bridge check` found problems
    2    could not start: bad arguments or configuration, a rejected token, a port in use
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import sys
from collections.abc import Callable, Sequence

from bridge.config import Settings, load_settings
from bridge.errors import BridgeError, ConfigError, StartupError

EXIT_FAILED = 1
EXIT_CONFIG = 2  # could not start (see the module docstring)
EXIT_INTERRUPTED = 130
MAX_PORT = 65535
# A bind that fails for one of these is the user's to fix, not a bug: no traceback.
_LISTEN_ERRORS = {
    errno.EADDRINUSE: "stop the program using it or pick another with --port",
    errno.EACCES: "ports below 1024 need root: pick another with --port",
    errno.EADDRNOTAVAIL: "use an address of this machine with --host, e.g. 127.0.0.1",
}


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.app import run_workers

    return asyncio.run(run_workers(settings))


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.app import serve_web

    if args.port is not None:
        settings = settings.model_copy(update={"port": args.port})
    return asyncio.run(serve_web(settings))


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.console import run_demo

    return asyncio.run(run_demo(backend=args.backend, once=args.once, delay=args.delay))


def _cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.ask import run_ask

    return asyncio.run(
        run_ask(settings, args.question, backend=args.backend, conversation_id=args.conversation)
    )


def _cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.check import run_check

    return asyncio.run(run_check(settings))


def _cmd_routes(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.routes import format_table, load_routes

    default = _default_chatbot(settings)
    if not settings.bridge_routes_file:
        print(f"BRIDGE_ROUTES_FILE is not set: every channel uses {default}")
        return 0
    print(format_table(load_routes(settings.bridge_routes_file), default))
    return 0


def _default_chatbot(settings: Settings) -> str:
    """The environment's backend in words, or why there is none."""
    try:
        name = settings.backend_name()
    except ConfigError:
        return "no environment backend (routes must name every chatbot)"
    if name == "wonderchat":
        return f"wonderchat chatbot {settings.wonderchat_chatbot_id}"
    return f"widget model {settings.widget_model} at {settings.widget_api_url}"


def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.app import DATABASE_START_FIX
    from bridge.errors import StoreError
    from bridge.store import migrate_database

    try:
        version = asyncio.run(migrate_database(settings.database_url))
    except StoreError as exc:  # the same one line and exit code as a failed start
        raise StartupError(f"{exc}; {DATABASE_START_FIX}") from exc
    print(f"database schema is at version {version}")
    return 0


def _cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.report import run_report

    print(asyncio.run(run_report(settings, args.since, args.format)), end="")
    return 0


def _cmd_mock_backend(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.testing.mock_backend import serve_forever

    try:
        return asyncio.run(serve_forever(host=args.host, port=args.port, delay=args.delay))
    except OSError as exc:
        fix = _LISTEN_ERRORS.get(exc.errno or 0)
        if fix is None:
            raise
        reason = os.strerror(exc.errno or 0).lower()
        raise StartupError(f"cannot listen on {args.host}:{args.port} ({reason}): {fix}") from exc


def _port(text: str, *, lowest: int = 1) -> int:
    """argparse type: a TCP port, so `--port 99999` is a usage line, not a traceback."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not lowest <= port <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"{port} is not a port: use {lowest} to {MAX_PORT}")
    return port


def _port_or_any(text: str) -> int:
    """argparse type: a TCP port, or 0 for any free one (the mock backend prints it)."""
    return _port(text, lowest=0)


def _seconds(text: str) -> float:
    """argparse type: a delay of zero or more seconds."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a delay: use 0 or more seconds")
    return seconds


def _cmd_discord_invite(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.discord.invite import invite_url

    print(invite_url(args.application_id))
    return 0


def _warn_about_unknown_variables(settings: Settings) -> None:
    from bridge.typos import unknown_variables

    for variable in unknown_variables(also_known=settings.routed_key_names()):
        print(f"bridge: warning: {variable.message()}", file=sys.stderr)


Handler = Callable[[argparse.Namespace, Settings], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bridge", description="Hosted AI chatbot in Slack and Discord."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    add("run", _cmd_run, "run the configured chat platforms (Slack Socket Mode, Discord)")
    serve = add("serve", _cmd_serve, "serve Slack HTTP events and /healthz, /readyz, /metrics")
    serve.add_argument("--port", type=_port, default=None, help="override $PORT")

    demo = add("demo", _cmd_demo, "offline chat in the terminal against a built-in mock backend")
    demo.add_argument("--backend", choices=["wonderchat", "widget"], default="wonderchat")
    demo.add_argument("--once", metavar="QUESTION", help="ask one question and exit")
    demo.add_argument(
        "--delay", type=_seconds, default=0.04, help="seconds between mock chunks (default 0.04)"
    )

    ask = add("ask", _cmd_ask, "ask the configured backend one question, streamed to the terminal")
    ask.add_argument("question")
    ask.add_argument("--backend", choices=["wonderchat", "widget"], default=None)
    ask.add_argument("--conversation", metavar="ID", default=None, help="continue a conversation")

    add("check", _cmd_check, "validate configuration and test every credential")
    add("routes", _cmd_routes, "print which chatbot answers where (BRIDGE_ROUTES_FILE)")
    add("migrate", _cmd_migrate, "create or upgrade the database schema")
    report = add(
        "report",
        _cmd_report,
        "questions, outcomes, times, votes and hand-offs per platform and channel",
    )
    report.add_argument(
        "--since", default="7d", help="period start: 30m, 24h, 7d, 2w or a date (default 7d)"
    )
    report.add_argument("--format", choices=["table", "csv", "json"], default="table")

    mock = add("mock-backend", _cmd_mock_backend, "run the mock Wonderchat + Widget backend")
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=_port_or_any, default=8090, help="0: any free port")
    mock.add_argument("--delay", type=_seconds, default=0.04, help="seconds between chunks")

    invite = add("discord-invite", _cmd_discord_invite, "print the Discord bot invite link")
    invite.add_argument("application_id", help="the application id from the Developer Portal")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.command != "check":  # `bridge check` lists them among its results
            _warn_about_unknown_variables(settings)
        return int(args.handler(args, settings) or 0)
    except (ConfigError, StartupError) as exc:
        print(f"bridge: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except BridgeError as exc:
        print(f"bridge: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, and keep Python from
        # complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
