"""The parser and ``main``: which command runs, and how a refusal is printed (one line, status 2)."""

from __future__ import annotations

import importlib
import sys

from core.cli.util import Parser
from core.errors import UserError

# Each module has register(sub): its subcommands, their flags (from the rule book) and handlers.
COMMAND_MODULES = ("core.cli.data", "core.cli.predict", "core.cli.train", "core.cli.sweep", "core.cli.health")


def build_parser() -> Parser:
    """The parser of every command. Building it imports no torch: the flags come from the rule
    book and TrainConfig's field rules, which are plain data."""
    p = Parser(prog="python -m core", description="Mask-status dataset explorer and trainer (command line).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return p


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def main(argv: list[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(words)
        args.argv = words
        return args.func(args)
    except UserError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        # The environment, not a bug: a file removed or made unreadable while the command ran.
        print(f"error: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
