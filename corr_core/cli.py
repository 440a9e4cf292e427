"""The ``corr`` command: one subcommand per job.

Built-in commands live in ``corr_core.commands.<job>``; other packages add commands through the
setuptools entry-point group :data:`PLUGIN_GROUP` (``corr.commands``), each entry point naming an
``add_parser(subparsers)`` function, e.g. in a ``setup.py``::

    entry_points={"corr.commands": ["demo = corr_ros.demo:add_parser"]}

Either way ``add_parser`` registers the command's parser and sets ``func`` (a callable taking the
parsed namespace and returning an exit code). Building the parser imports no torch, OpenCV,
MuJoCo or ONNX: commands import them when they run, so ``corr --help`` answers at once. A plugin
that fails to load (or names a command that exists already) is reported on stderr with its
name and skipped; the other commands keep working.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points

from corr_core.errors import CorrError

# Order shown in `corr --help`.
COMMANDS = ["generate", "train", "pcc", "eval", "bag", "bench", "export"]
#: Entry-point group of plugin commands (``add_parser(subparsers)`` functions).
PLUGIN_GROUP = "corr.commands"


def plugin_entry_points() -> Iterable[EntryPoint]:
    """The installed entry points of :data:`PLUGIN_GROUP`, by name."""
    return sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name)


def _add_plugins(sub: argparse._SubParsersAction) -> None:
    for ep in plugin_entry_points():
        if ep.name in sub.choices:
            logging.getLogger(__name__).debug("plugin command %s (%s): %r is built in; skipped",
                                              ep.name, ep.value, ep.name)
            continue
        try:
            add_parser = ep.load()
            add_parser(sub)
        except Exception as exc:  # a broken plugin must not take the other commands down
            print(f"corr: plugin command {ep.name!r} ({ep.value}) skipped: {type(exc).__name__}: {exc}",
                  file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    """The ``corr`` parser: built-in commands (:data:`COMMANDS`), then plugin commands."""
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
    _add_plugins(sub)
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
