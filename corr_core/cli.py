"""The ``corr`` command: one subcommand per job, each defined in ``corr_core.commands.<job>``.

Each command module exposes ``add_parser(subparsers)``, which registers its parser and sets
``func`` (a callable taking the parsed namespace and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from corr_core.errors import CorrError

# Order shown in `corr --help`.
COMMANDS = ["generate", "train", "eval", "bag", "bench", "export", "demo"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corr",
        description="Self-supervised visual correspondence: generate data, train, evaluate, serve.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"corr_core.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"corr_core.commands.{name}":
                continue  # command not part of this build
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse stops filling a trailing ``overrides`` positional at the first option, so
    # ``corr train recipe.yaml --out d key=value`` leaves key=value over: take such words back
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except CorrError as exc:
        print(f"corr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"corr {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
