"""Two decodings of the same utterances compared pair by pair: word error rates and a bootstrap interval.

A difference of a few tenths of a WER point between two decodings (two readers of one model, two noise draws, two
settings) is the size of what one noise draw or one training seed moves; whether it is real needs the pairing. Each
*pair* is two decode folders (``exp/<tag>/decode_<name>``) that decoded the same set; several pairs (seeds, noise
draws) add up. Per utterance, the word errors of A minus those of B are summed over the pairs; the 95% interval of
the WER difference comes from resampling the utterances with replacement (the paired bootstrap of Bisani and Ney,
"Bootstrap estimates for confidence intervals in ASR performance evaluation", ICASSP 2004)::

    diff* = sum_u (E_A(u) - E_B(u)) / sum_u N(u)      over a resample of the utterances u

with E the word errors (substitutions + deletions + insertions) and N the reference words, each summed over the
pairs. The texts go through the scorer's normaliser (:mod:`elfs2t.text.normalize`), as ``elfs2t.bin.score`` does.
A missing hypothesis counts as empty (and is counted); the two folders of a pair must hold the same references.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from elfs2t.errors import InputError
from elfs2t.score import align
from elfs2t.text.normalize import get_normalizer
from elfs2t.textfile import read_text

__all__ = ["PairedResult", "utterance_errors", "read_decoded_set", "paired_bootstrap", "compare_pairs", "format_paired"]


@dataclass
class PairedResult:
    """A against B on one set (or on all sets together), summed over the pairs."""

    set_name: str
    num_utts: int
    """Utterances (each counted once however many pairs decoded it)."""
    ref_words: int
    """Reference words over all pairs."""
    errors_a: int
    errors_b: int
    low: float
    """Lower end of the 95% interval of WER(A) - WER(B), in points."""
    high: float
    """Upper end."""
    p_a_not_better: float
    """Share of the resamples in which A has at least as many errors as B."""
    missing: int = 0
    """Hypotheses missing from either side (scored as empty)."""

    @property
    def wer_a(self) -> float:
        return 100.0 * self.errors_a / max(self.ref_words, 1)

    @property
    def wer_b(self) -> float:
        return 100.0 * self.errors_b / max(self.ref_words, 1)

    @property
    def diff(self) -> float:
        return self.wer_a - self.wer_b


def utterance_errors(ref: str, hyp: str, normalize) -> tuple[int, int]:
    """``(word errors, reference words)`` of one utterance after ``normalize``."""
    r, h = normalize(ref), normalize(hyp)
    if not r.split():
        return len(h.split()), 0
    return sum(op != "C" for op, _, _ in align(r, h)), len(r.split())


def read_decoded_set(decode_dir: str | Path, set_name: str) -> tuple[dict[str, str], dict[str, str]]:
    """``(refs, hyps)`` of ``decode_dir/set_name/{ref,text}`` (Kaldi text files, as stage 5 writes them)."""
    folder = Path(decode_dir) / set_name
    paths = [folder / "ref", folder / "text"]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (is {decode_dir} a decode folder with the set {set_name}?)")
    refs, hyps = (read_text(p) for p in paths)
    if not refs:
        raise InputError(f"{paths[0]}: no utterances to compare")
    return refs, hyps


def paired_bootstrap(diff: np.ndarray, words: np.ndarray, resamples: int = 2000, seed: int = 0,
                     chunk: int = 200) -> tuple[float, float, float]:
    """95% interval of ``sum(diff) / sum(words)`` (in points) over utterance resamples, and the share of resamples
    with ``sum(diff) >= 0``. ``diff``: per-utterance error differences; ``words``: reference words."""
    diff, words = np.asarray(diff, dtype=np.int64), np.asarray(words, dtype=np.int64)
    if diff.shape != words.shape or diff.ndim != 1 or diff.size == 0:
        raise ValueError(f"paired_bootstrap: diff {diff.shape} and words {words.shape} must be the same non-empty 1-D shape")
    if resamples < 1:
        raise ValueError(f"paired_bootstrap: resamples={resamples} must be >= 1")
    rng = np.random.default_rng(seed)
    rates, not_better = [], 0
    for start in range(0, resamples, chunk):  # chunks keep a large set's index matrix small
        idx = rng.integers(0, diff.size, size=(min(chunk, resamples - start), diff.size))
        d, n = diff[idx].sum(axis=1), words[idx].sum(axis=1)
        rates.append(100.0 * d / np.maximum(n, 1))
        not_better += int((d >= 0).sum())
    rate = np.concatenate(rates)
    return float(np.percentile(rate, 2.5)), float(np.percentile(rate, 97.5)), not_better / resamples


def compare_pairs(pairs: Sequence[tuple[str | Path, str | Path]], sets: Sequence[str], normalizer: str = "default",
                  resamples: int = 2000, seed: int = 0) -> list[PairedResult]:
    """A (the first folder of each pair) against B on each set, and on all sets together (``all``, when several)."""
    if not pairs:
        raise ValueError("compare_pairs: no pairs of decode folders")
    if not sets:
        raise ValueError("compare_pairs: no sets")
    normalize = get_normalizer(normalizer)
    per_set: dict[str, dict[str, list[int]]] = {}  # set -> utt -> [errors A, errors B, words]
    missing: dict[str, int] = {}
    for set_name in sets:
        utts = per_set.setdefault(set_name, {})
        for dir_a, dir_b in pairs:
            refs_a, hyps_a = read_decoded_set(dir_a, set_name)
            refs_b, hyps_b = read_decoded_set(dir_b, set_name)
            if refs_a != refs_b:
                diff = sorted(set(refs_a) ^ set(refs_b)) or [u for u in refs_a if refs_a[u] != refs_b[u]]
                raise InputError(f"{dir_a} and {dir_b} ({set_name}): different references, e.g. utterance {diff[0]!r}: "
                                 "a pair must decode the same utterances")
            for utt, ref in refs_a.items():
                missing[set_name] = missing.get(set_name, 0) + (utt not in hyps_a) + (utt not in hyps_b)
                e_a, n = utterance_errors(ref, hyps_a.get(utt, ""), normalize)
                e_b, _ = utterance_errors(ref, hyps_b.get(utt, ""), normalize)
                acc = utts.setdefault(utt, [0, 0, 0])
                acc[0] += e_a
                acc[1] += e_b
                acc[2] += n
    groups = [(s, [per_set[s]]) for s in sets] + ([("all", [per_set[s] for s in sets])] if len(sets) > 1 else [])
    results = []
    for name, tables in groups:
        rows = np.array([v for t in tables for v in t.values()], dtype=np.int64).reshape(-1, 3)
        low, high, p = paired_bootstrap(rows[:, 0] - rows[:, 1], rows[:, 2], resamples, seed)
        results.append(PairedResult(
            set_name=name, num_utts=len(rows), ref_words=int(rows[:, 2].sum()), errors_a=int(rows[:, 0].sum()),
            errors_b=int(rows[:, 1].sum()), low=low, high=high, p_a_not_better=p,
            missing=sum(missing[s] for s in (sets if name == "all" else [name]))))
    return results


def format_paired(results: Sequence[PairedResult], label_a: str = "A", label_b: str = "B",
                  num_pairs: Optional[int] = None) -> str:
    """A Markdown table of :func:`compare_pairs`' results."""
    head = f"{label_a} (A) against {label_b} (B)" + (f", {num_pairs} pairs of decodes" if num_pairs else "")
    lines = [head, "", "| set | utts | WER A (%) | WER B (%) | A - B | 95% interval | P(A >= B) | missing hyps |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.set_name} | {r.num_utts} | {r.wer_a:.2f} | {r.wer_b:.2f} | {r.diff:+.2f} | "
                     f"[{r.low:+.2f}, {r.high:+.2f}] | {r.p_a_not_better:.3f} | {r.missing} |")
    return "\n".join(lines) + "\n"
