"""Word-level Levenshtein alignment of hypotheses to references, with the backtrace kept.

Texts go through the scoring normaliser first (:mod:`elfs2t.text.normalize`, the ``default`` one
unless told otherwise: lower-case, punctuation removed). Costs are 1 for a substitution, a deletion and
an insertion. The trace starts at the beginning of a table of suffix distances and, among equally cheap
moves, prefers the diagonal (correct / substitution), then a deletion, then an insertion: words are
paired as early as possible, e.g. ``a dog ran home`` against ``a dog run`` is ``C C S D`` (``ran -> run``,
``home`` deleted), not ``C C D S``. The total number of errors always equals jiwer's (stage 6); where
several alignments are optimal, jiwer's ``align.txt`` may pick another one (and so split the errors
differently into S, D and I).

Each operation keeps the word *positions* on both sides, so a substituted word can be looked up inside
its sentence (the in-context representations of :mod:`elfs2t.analysis.spaces`)::

    ops = levenshtein_align(["a", "b", "c", "d"], ["a", "x", "c"])
    # [AlignOp("C", 0, 0), AlignOp("S", 1, 1), AlignOp("C", 2, 2), AlignOp("D", 3, None)]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple, Optional

from elfs2t.text.normalize import get_normalizer
from elfs2t.textfile import read_text

__all__ = ["AlignOp", "UttAlignment", "levenshtein_align", "align_texts", "read_decode_dir"]


class AlignOp(NamedTuple):
    """One alignment column: ``op`` in C/S/D/I, the word index in the reference / hypothesis (None on the empty side)."""

    op: str
    ref: Optional[int]
    hyp: Optional[int]


@dataclass
class UttAlignment:
    """One utterance: normalised words of both sides and the alignment between them."""

    utt_id: str
    ref_words: list[str]
    hyp_words: list[str]
    ops: list[AlignOp] = field(default_factory=list)

    def count(self, op: str) -> int:
        """Number of columns with operation ``op`` (``C``, ``S``, ``D`` or ``I``)."""
        return sum(1 for o in self.ops if o.op == op)

    def substitutions(self) -> list[tuple[int, int]]:
        """``(ref_index, hyp_index)`` of every substitution."""
        return [(o.ref, o.hyp) for o in self.ops if o.op == "S"]


def levenshtein_align(ref: list[str], hyp: list[str]) -> list[AlignOp]:
    """Minimum-edit alignment of two word lists (unit costs), as a list of :class:`AlignOp`.

    The table holds suffix distances; the trace walks it from the start and, among optimal moves, takes the
    diagonal (correct / substitution) first, then a deletion, then an insertion.
    """
    n, m = len(ref), len(hyp)
    # dist[i][j]: edit distance between ref[i:] and hyp[j:]
    dist = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        dist[i][m] = n - i
    for j in range(m + 1):
        dist[n][j] = m - j
    for i in range(n - 1, -1, -1):
        row, nxt = dist[i], dist[i + 1]
        r = ref[i]
        for j in range(m - 1, -1, -1):
            row[j] = min(nxt[j + 1] + (r != hyp[j]), nxt[j] + 1, row[j + 1] + 1)
    ops: list[AlignOp] = []
    i = j = 0
    while i < n or j < m:
        if i < n and j < m and dist[i][j] == dist[i + 1][j + 1] + (ref[i] != hyp[j]):
            ops.append(AlignOp("C" if ref[i] == hyp[j] else "S", i, j))
            i, j = i + 1, j + 1
        elif i < n and dist[i][j] == dist[i + 1][j] + 1:
            ops.append(AlignOp("D", i, None))
            i += 1
        else:
            ops.append(AlignOp("I", None, j))
            j += 1
    return ops


def align_texts(refs: dict[str, str], hyps: dict[str, str], normalize: Callable[[str], str]) -> list[UttAlignment]:
    """Align every reference id (sorted) to its hypothesis; a missing hypothesis is an empty one (as in stage 6)."""
    out = []
    for utt in sorted(refs):
        r = normalize(refs[utt]).split()
        h = normalize(hyps.get(utt, "")).split()
        out.append(UttAlignment(utt, r, h, levenshtein_align(r, h)))
    return out


def read_decode_dir(decode_dir: str | Path, normalizer: str = "default") -> tuple[list[UttAlignment], int]:
    """Alignments of ``decode_dir/text`` against ``decode_dir/ref`` (stage-5 output) and the number of missing hypotheses."""
    decode_dir = Path(decode_dir)
    for name in ("text", "ref"):
        if not (decode_dir / name).is_file():
            raise FileNotFoundError(f"{decode_dir}: no '{name}' file (expected a stage-5 decode dir with text and ref)")
    refs = read_text(decode_dir / "ref")
    hyps = read_text(decode_dir / "text")
    if not refs:
        raise ValueError(f"{decode_dir / 'ref'}: no references")
    missing = sum(1 for u in refs if u not in hyps)
    return align_texts(refs, hyps, get_normalizer(normalizer)), missing
