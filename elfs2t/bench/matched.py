"""Speed at matched accuracy: each ELF-S2T setting against the fastest AR setting that is at least as accurate,
and the speed/accuracy (Pareto) frontier of every system.

Both read the rows of :func:`elfs2t.bench.decode.run_decode_bench` (``system``, ``family``, ``utt_s`` and, for a
trained system on real references, ``score``); rows without a score take no part. ``higher_better`` is the metric's
direction: False for WER (lower is better), True for BLEU. Scores are compared with a tolerance of ``1e-9`` (two
systems with the same hypotheses tie exactly; the tolerance only absorbs float noise).

Matched accuracy (:func:`matched_rows`), for each scored ELF-S2T row:

* ``fastest AR as accurate or better`` (the ``match`` key): among the AR rows whose score is equal or better
  (WER <=, BLEU >=), the fastest (most utterances/s; equal speed: the more accurate, then the first);
  ``x_utt_s`` = ELF-S2T utt/s / that AR's utt/s;
* ``none as accurate: most accurate AR``: no AR row is as accurate. Then the row names the most accurate AR row
  instead (equal accuracy: the faster) and ``x_utt_s`` is against it: the ELF-S2T setting is both more accurate
  and ``x_utt_s`` times as fast (or slower, below 1).

No scored AR rows: no matched rows. The frontier (:func:`pareto_frontier`) is the rows that no other row beats on
both axes: none is at least as fast and at least as accurate, and better on one.
"""
from __future__ import annotations

from typing import Sequence

__all__ = ["AS_ACCURATE", "MORE_ACCURATE", "MATCHED_COLUMNS", "at_least_as_accurate", "matched_rows",
           "pareto_frontier"]

AS_ACCURATE = "fastest AR as accurate or better"
"""``match`` of a matched row: the AR row is the fastest of those at least as accurate as the ELF-S2T row."""
MORE_ACCURATE = "none as accurate: most accurate AR"
"""``match`` of a matched row: no AR row is as accurate as the ELF-S2T row; the AR row is the most accurate one."""
EPS = 1e-9

MATCHED_COLUMNS = [("system", "ELF-S2T system", ""), ("score", "score", ".2f"), ("utt_s", "utt/s", ".1f"),
                   ("match", "AR row", ""), ("ar_system", "AR system", ""), ("ar_score", "AR score", ".2f"),
                   ("ar_utt_s", "AR utt/s", ".1f"), ("x_utt_s", "x utt/s (ELF/AR)", ".2f")]
"""``(key, header, format)`` of the matched table (:func:`elfs2t.bench.common.format_table`); ``score`` is
renamed to the metric by the caller."""


def at_least_as_accurate(a: float, b: float, higher_better: bool) -> bool:
    """Score ``a`` is equal to or better than ``b``."""
    return a >= b - EPS if higher_better else a <= b + EPS


def _scored(rows: Sequence[dict], family: str | None = None) -> list[dict]:
    return [r for r in rows if r.get("family") is not None and r.get("score") is not None
            and r.get("utt_s") is not None and (family is None or r["family"] == family)]


def _key(row: dict, higher_better: bool) -> float:
    """Larger is more accurate."""
    return row["score"] if higher_better else -row["score"]


def matched_rows(rows: Sequence[dict], *, higher_better: bool, family: str = "elf", against: str = "ar") -> list[dict]:
    """For each scored row of ``family`` (in order), the row of ``against`` it is compared with (see the module
    docstring): ``{system, score, utt_s, match, ar_system, ar_score, ar_utt_s, x_utt_s}``."""
    refs = _scored(rows, against)
    if not refs:
        return []
    out = []
    for row in _scored(rows, family):
        good = [r for r in refs if at_least_as_accurate(r["score"], row["score"], higher_better)]
        if good:  # fastest; equal speed: more accurate; then the first (max keeps the first of equals)
            ref, kind = max(good, key=lambda r: (r["utt_s"], _key(r, higher_better))), AS_ACCURATE
        else:  # most accurate; equal accuracy: faster
            ref, kind = max(refs, key=lambda r: (_key(r, higher_better), r["utt_s"])), MORE_ACCURATE
        out.append({"system": row["system"], "score": row["score"], "utt_s": row["utt_s"], "match": kind,
                    "ar_system": ref["system"], "ar_score": ref["score"], "ar_utt_s": ref["utt_s"],
                    "x_utt_s": row["utt_s"] / ref["utt_s"]})
    return out


def pareto_frontier(rows: Sequence[dict], *, higher_better: bool) -> list[dict]:
    """The scored rows that no other scored row dominates (at least as fast and at least as accurate, strictly
    better on one), fastest last (ordered by utt/s, then accuracy)."""
    scored = _scored(rows)

    def dominates(a: dict, b: dict) -> bool:
        faster_eq = a["utt_s"] >= b["utt_s"]
        acc_eq = at_least_as_accurate(a["score"], b["score"], higher_better)
        strictly = a["utt_s"] > b["utt_s"] or not at_least_as_accurate(b["score"], a["score"], higher_better)
        return faster_eq and acc_eq and strictly

    front = [r for r in scored if not any(dominates(o, r) for o in scored if o is not r)]
    return sorted(front, key=lambda r: (r["utt_s"], _key(r, higher_better)))
