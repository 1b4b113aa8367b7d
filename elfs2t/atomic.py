"""Atomic file writes, the one way every stage writes a file another stage (or a resumed run) reads.

A write goes to a temporary sibling of the target, optionally reaches the disk (``fsync``), and is renamed over the
target: a reader sees the old file or the whole new one, never half of one, and a killed writer leaves at most the
temporary file, which the next write replaces. The temporary name keeps the target's suffixes
(``.tmp.<pid>.<name>``), so writers that pick the format from the name (Lhotse's ``to_file``) write the same format.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

__all__ = ["atomic_path", "write_text", "write_manifest"]


@contextmanager
def atomic_path(path: str | Path, *, fsync: bool = False, tmp: Optional[str | Path] = None) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to; when the block ends without an error it is renamed
    over ``path`` (after an fsync with ``fsync``), otherwise removed. ``tmp`` names the temporary file where a
    caller must find leftovers by name (checkpoints); the default is ``.tmp.<pid>.<name>`` in the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tmp) if tmp is not None else path.with_name(f".tmp.{os.getpid()}.{path.name}")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_manifest(manifest, path: str | Path) -> Path:
    """Write a Lhotse manifest (cuts, recordings, supervisions) to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        manifest.to_file(tmp)
    return Path(path)
