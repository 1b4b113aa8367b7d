"""CTC prefix beam search: the most probable labelling of a CTC readout, not the labelling of its most probable path.

Greedy CTC (:func:`~elfs2t.s2t.ctc_aux.ctc_greedy`) reads the argmax of every frame; a label whose probability is
spread over several frames, each below the blank's, is dropped although the labelling that contains it can be the
more probable one once all its alignments are summed. Prefix beam search (Graves 2012; Hannun et al. 2014) keeps
the ``beam`` most probable prefixes after every frame, each with two probabilities -- of its alignments that end in
a blank and of those that end in its last label -- and returns the prefix with the highest sum at the last frame.
``beam = 1`` is not greedy CTC: even one prefix sums its alignments.

With a token language model (:class:`LmFusion`, shallow fusion as in Hannun et al.) a prefix is ranked by its CTC
log-probability plus the weighted language-model log-probability of its tokens and a bonus per token, and the
labelling is chosen with the end of sentence scored too; the CTC probabilities themselves are not changed.

Per frame only the labels with a log-probability of at least ``prune`` are expanded (the blank always); a
prefix's own last label is continued whenever it passes the threshold. The search returns labellings, not
alignments: where the tokens sit is the forced (Viterbi) alignment's business (:func:`~elfs2t.s2t.ctc_align.ctc_align`,
what training places the text slots by).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional, Sequence

import torch

from elfs2t.text.ngram import EOS, NgramLM

__all__ = ["PRUNE", "LmFusion", "ctc_prefix_beam"]

_NEG = float("-inf")
PRUNE = -8.0
"""The default pruning threshold: labels under ``exp(-8)`` (3e-4) at a frame are not expanded."""


def _logadd(a: float, b: float) -> float:
    if a == _NEG:
        return b
    if b == _NEG:
        return a
    if a < b:
        a, b = b, a
    return a + math.log1p(math.exp(b - a))


@dataclass
class LmFusion:
    """Shallow fusion of a token language model: a prefix is ranked by its CTC log-probability plus ``weight``
    times its language-model log-probability plus ``bonus`` per token (the bonus offsets the language model's cost
    of every token, which otherwise favours dropping words); the end of sentence is scored at the last frame."""

    lm: NgramLM
    weight: float
    bonus: float = 0.0
    ids: Optional[Sequence[int]] = None
    """The language model's token id of each CTC index (None: the same ids)."""

    def over(self, ids: Sequence[int]) -> "LmFusion":
        """This fusion for a CTC vocabulary whose index ``i`` is the language model's token ``ids[i]``."""
        return replace(self, ids=list(ids))

    def _id(self, k: int) -> int:
        return k if self.ids is None else self.ids[k]

    def _context(self, prefix: tuple[int, ...]) -> tuple[int, ...]:
        n = self.lm.order - 1
        return tuple(self._id(i) for i in prefix[len(prefix) - n:]) if n else ()

    def step(self, prefix: tuple[int, ...], k: int) -> float:
        """The fused score of ``prefix`` grown by the CTC index ``k``, over ``prefix``'s."""
        return self.weight * self.lm.logprob(self._context(prefix), self._id(k)) + self.bonus

    def end(self, prefix: tuple[int, ...]) -> float:
        """The fused score of ending the sentence after ``prefix``."""
        return self.weight * self.lm.logprob(self._context(prefix), EOS)


def ctc_prefix_beam(log_probs: torch.Tensor, lens: torch.Tensor, blank: int, beam: int = 4,
                    prune: float = PRUNE, lm: Optional[LmFusion] = None) -> tuple[list[list[int]], list[float]]:
    """Prefix beam search of each row of ``log_probs (B, T, K)`` (frame log-posteriors over the CTC vocabulary,
    ``lens (B,)`` real frames): per row the best labelling's tokens and its log-probability (the sum over its
    alignments kept by the beam; with ``lm``, plus the fused language model's score, its end included)."""
    if beam < 1:
        raise ValueError(f"beam={beam} must be >= 1")
    lp = log_probs.detach().float().cpu()
    tokens, scores = [], []
    for b in range(lp.shape[0]):
        n = int(lens[b])
        row = lp[b, :n]
        keep = row >= prune
        keep[:, blank] = False
        expand: list[list[tuple[int, float]]] = [[] for _ in range(n)]
        for (t, k), v in zip(keep.nonzero().tolist(), row[keep].tolist()):  # frame order
            expand[t].append((k, v))
        blank_lp = row[:, blank].tolist()
        # prefix -> [log p(its alignments ending in a blank), log p(those ending in its last label)]
        beams: dict[tuple[int, ...], list[float]] = {(): [0.0, _NEG]}
        fused: dict[tuple[int, ...], float] = {(): 0.0}  # each prefix's language-model score (0 without one)
        for t in range(n):
            nxt: dict[tuple[int, ...], list[float]] = {}
            for prefix, (pb, pnb) in beams.items():
                total = _logadd(pb, pnb)
                entry = nxt.setdefault(prefix, [_NEG, _NEG])
                entry[0] = _logadd(entry[0], total + blank_lp[t])
                last = prefix[-1] if prefix else -1
                for k, v in expand[t]:
                    if k == last:  # the label goes on (same prefix), or starts again after a blank
                        entry[1] = _logadd(entry[1], pnb + v)
                        grown = pb + v
                    else:
                        grown = total + v
                    if grown > _NEG:
                        longer = prefix + (k,)
                        new = nxt.setdefault(longer, [_NEG, _NEG])
                        new[1] = _logadd(new[1], grown)
                        if lm is not None and longer not in fused:
                            fused[longer] = fused[prefix] + lm.step(prefix, k)
            ranked = sorted(nxt.items(), key=lambda kv: _logadd(*kv[1]) + fused.get(kv[0], 0.0), reverse=True)
            beams = dict(ranked[:beam])
        end = (lambda p: fused[p] + lm.end(p)) if lm is not None else (lambda p: 0.0)
        best, (pb, pnb) = max(beams.items(), key=lambda kv: _logadd(*kv[1]) + end(kv[0]))
        tokens.append(list(best))
        scores.append(_logadd(pb, pnb) + end(best))
    return tokens, scores
