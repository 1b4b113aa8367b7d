"""Output formats of ``python -m elfs2t.bin.transcribe`` (:class:`~elfs2t.inference.model.Transcript` lists).

* ``text``: ``<id> <text>`` per input (Kaldi style, the format of stage 5's ``text``);
* ``json``: one JSON object per input and line (id, source, task, duration, text, and per segment its start and
  end, text, n-best list with scores, word times, and ``full`` when the text reached the model's limit);
* ``ctm``: ``<id> 1 <start> <duration> <word> <confidence>`` per word (NIST CTM; times in seconds from the start
  of the input; the confidence is the word's mean CTC posterior; needs word times: ``word_times=True``).
"""
from __future__ import annotations

import json
from typing import Iterable, TextIO

from elfs2t.config import ConfigError

__all__ = ["FORMATS", "write_transcripts"]

FORMATS = ("text", "json", "ctm")


def write_transcripts(transcripts: Iterable, fh: TextIO, fmt: str = "text") -> None:
    """Write ``transcripts`` to ``fh`` in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt!r}: must be one of {list(FORMATS)}")
    for t in transcripts:
        if fmt == "text":
            fh.write(f"{t.id} {t.text}\n")
        elif fmt == "json":
            fh.write(json.dumps(t.to_dict(), ensure_ascii=False) + "\n")
        else:  # segments without word times (decoding warned about them) have no lines
            for w in (w for s in t.segments for w in (s.words or [])):
                fh.write(f"{t.id} 1 {w.start:.3f} {max(w.end - w.start, 0.0):.3f} {w.word} {w.conf:.3f}\n")
