"""Kaldi-style text files: one ``<utt-id> <text>`` per line.

Format (what :func:`read_text` accepts and :func:`write_text` produces):

* the id is the first whitespace-free field at the very start of the line; the text is the rest of
  the line after the first run of whitespace, with surrounding whitespace stripped;
* a line holding only an id means an empty text (an empty hypothesis is a valid hypothesis);
* blank lines, lines that start with whitespace (no id) and repeated ids are errors that name the
  file and line;
* files are UTF-8; :func:`write_text` sorts by id and writes atomically (temp file, then rename).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping
from elfs2t import atomic

__all__ = ["TextFileError", "read_text", "write_text"]


class TextFileError(ValueError):
    """A text file is malformed; the message names the file and line."""


def read_text(path: str | Path) -> dict[str, str]:
    """Read a Kaldi text file into ``{utt_id: text}`` (file order kept)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"text file not found: {path}")
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the final newline (or an empty file)
    out: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for lineno, line_bytes in enumerate(lines, start=1):
        try:
            line = line_bytes.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as exc:
            raise TextFileError(f"{path}:{lineno}: not valid UTF-8 ({exc.reason})") from exc
        if not line.strip():
            raise TextFileError(f"{path}:{lineno}: empty line (expected '<utt-id> <text>')")
        if line[0].isspace():
            raise TextFileError(f"{path}:{lineno}: line starts with whitespace, no utterance id: {line!r}")
        parts = line.split(maxsplit=1)
        utt_id = parts[0]
        text = parts[1].strip() if len(parts) > 1 else ""
        if utt_id in out:
            raise TextFileError(
                f"{path}:{lineno}: duplicate utterance id {utt_id!r} (first seen on line {first_line[utt_id]})"
            )
        out[utt_id] = text
        first_line[utt_id] = lineno
    return out


def write_text(path: str | Path, texts: Mapping[str, str]) -> Path:
    """Write ``{utt_id: text}`` sorted by id, atomically; returns the path.

    Ids must be non-empty and free of whitespace; texts must fit on one line.
    """
    path = Path(path)
    lines = []
    for utt_id in sorted(texts):
        text = texts[utt_id]
        if not utt_id or any(ch.isspace() for ch in utt_id):
            raise ValueError(f"{path}: utterance id {utt_id!r} is empty or contains whitespace")
        if text is None:
            raise ValueError(f"{path}: text of {utt_id!r} is None")
        if "\n" in text or "\r" in text:
            raise ValueError(f"{path}: text of {utt_id!r} contains a line break: {text!r}")
        text = text.strip()
        lines.append(f"{utt_id} {text}\n" if text else f"{utt_id}\n")
    atomic.write_text(path, "".join(lines))
    return path
