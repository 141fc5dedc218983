"""The ``evtrio`` command (also ``python -m evtrio``): demo servers and tools."""

from __future__ import annotations

__all__ = ("build_parser", "main")

import argparse
import logging
import sys
from functools import partial
from typing import TYPE_CHECKING

import trio

from ._version import __version__
from .demo import run_until_signalled, serve_echo

if TYPE_CHECKING:
    from collections.abc import Sequence

DEMO_ECHO_PORT = 5555


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``evtrio`` command, with one sub-command per service."""
    parser = argparse.ArgumentParser(
        prog="evtrio",
        description="evtrio: libevent's networking toolkit recast for Trio.",
    )
    parser.add_argument("--version", action="version", version=f"evtrio {__version__}")
    parser.add_argument(
        "--quiet", action="store_true", help="log warnings only (default: connections at INFO)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="start every demo service on loopback and print what to try",
        description="Start every demo service on loopback and print what to try. "
        "Ctrl-C shuts down gracefully.",
    )
    demo.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    demo.add_argument(
        "--echo-port", type=int, default=DEMO_ECHO_PORT, help="(default: %(default)s)"
    )

    echo = commands.add_parser(
        "echo",
        help="run the buffered echo server until Ctrl-C",
        description="Run the buffered echo server until Ctrl-C or SIGTERM "
        "(the first stops accepting and lets connections finish).",
    )
    echo.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    echo.add_argument("--port", type=int, default=DEMO_ECHO_PORT, help="0 picks a free port")
    echo.add_argument(
        "--max-connections", type=int, default=1024, help="connections served at once"
    )
    for sub in (demo, echo):
        sub.add_argument(
            "--grace", type=float, default=5.0, help="seconds connections get to finish on Ctrl-C"
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``evtrio`` command with *argv* (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
    )
    if args.command == "echo":
        services = [
            (
                "echo",
                partial(
                    serve_echo, args.port, host=args.host, max_connections=args.max_connections
                ),
            )
        ]
    else:
        services = [("echo", partial(serve_echo, args.echo_port, host=args.host))]
        print(f"evtrio {__version__} demo. Try, in another terminal:")
        print(
            f"  nc {args.host} {args.echo_port}      # type lines: the echo server sends them back"
        )
        print("Ctrl-C stops (gracefully; twice to stop at once).\n", flush=True)
    failures: list[BaseException] = []
    try:
        trio.run(partial(run_until_signalled, services, grace=args.grace))
    except* OSError as group:  # e.g. the port is taken: say so, without a traceback
        failures.extend(group.exceptions)
    for exc in failures:
        print(f"evtrio {args.command}: {exc}", file=sys.stderr)
    return 1 if failures else 0
