"""How every entry point reports the errors a user can fix: the message alone, on one line, and an exit status.

    @entry_point
    def main(argv: list[str] | None = None) -> int:
        ...

    if __name__ == "__main__":
        sys.exit(main())

A :class:`~elfs2t.errors.ConfigError` (a bad option or config value; the message names it) prints
``<stage>: error: <message>`` on stderr and returns 2, like argparse's own usage errors; an
:class:`~elfs2t.errors.InputError` (a folder or file that cannot be used as it is) or a ``FileNotFoundError``
prints the same way and returns 1. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Callable, Optional

from elfs2t.errors import ConfigError, InputError

__all__ = ["entry_point", "named_path", "report"]

Main = Callable[[Optional[list[str]]], int]


def report(prog: str, exc: BaseException) -> None:
    """Print ``<prog>: error: <message>`` on stderr (the message as raised, without the traceback)."""
    print(f"{prog}: error: {exc}", file=sys.stderr, flush=True)


def entry_point(main: Main) -> Main:
    """Wrap ``main(argv) -> int``: config errors -> status 2, input errors -> status 1, each as one message."""
    @functools.wraps(main)
    def wrapped(argv: Optional[list[str]] = None) -> int:
        # the stage's name, also under "python -m" (where the module is __main__)
        file = getattr(sys.modules.get(main.__module__), "__file__", None)
        prog = Path(file).stem if file else main.__module__.rsplit(".", 1)[-1]
        try:
            return main(argv)
        except ConfigError as exc:
            report(prog, exc)
            return 2
        except (InputError, FileNotFoundError) as exc:
            report(prog, exc)
            return 1

    return wrapped


def named_path(value: str) -> Callable[[str], tuple[str, Path]]:
    """The argparse ``type`` of a ``NAME=<value>`` option (``--set asr_test=dump/.../cuts.jsonl.gz``): each item
    becomes a ``(name, Path)`` pair; an item without a name or a path is argparse's usage error (status 2)."""
    def parse(item: str) -> tuple[str, Path]:
        name, sep, path = item.partition("=")
        if not (sep and name and path):
            raise argparse.ArgumentTypeError(f"{item!r}: expected NAME={value}")
        return name, Path(path)

    parse.__name__ = f"NAME={value}"
    return parse
