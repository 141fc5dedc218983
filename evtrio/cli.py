"""The ``evtrio`` command (also ``python -m evtrio``): demo servers and tools."""

from __future__ import annotations

__all__ = ("build_parser", "main")

import argparse
import sys
from typing import TYPE_CHECKING

from ._version import __version__

if TYPE_CHECKING:
    from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``evtrio`` command, with one sub-command per service."""
    parser = argparse.ArgumentParser(
        prog="evtrio",
        description="evtrio: libevent's networking toolkit recast for Trio.",
    )
    parser.add_argument("--version", action="version", version=f"evtrio {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "demo",
        help="start every demo service on loopback and print what to try",
        description="Start every demo service on loopback and print what to try.",
    )
    return parser


def _demo(out: argparse.ArgumentParser) -> int:
    print(f"evtrio {__version__}: no network services have landed yet.")
    print("What you can try today, in a Python shell of this environment:")
    print('  >>> import evtrio; buf = evtrio.Buffer(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")')
    print("  >>> buf.readln()          # b'GET / HTTP/1.1'")
    print()
    out.print_help()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``evtrio`` command with *argv* (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo(parser)
    parser.print_help(sys.stderr)
    return 2
