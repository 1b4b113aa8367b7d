"""Minimum-Bayes-risk selection among several noise draws of a stochastic reader (``decode.flow.samples``,
``decode.readout.samples``).

The flow from noise and the readout of noise both start from a noise draw, and different draws give different
token sequences. Decoding with ``samples: K`` runs the reader on K draws of every utterance at once (the batch
repeated K times) and keeps, per utterance, the draw whose tokens are nearest to the others: the one with the
smallest sum of token edit distances to the other K - 1 (ties go to the earliest draw). This is the MBR decoding
that diffusion text generators use (Diffusion-LM, DiffuSeq): the tokens still come from one draw of the reader,
chosen by the draws' agreement, with no other model or score involved. It costs K times the reader's forwards.
"""
from __future__ import annotations

from typing import Callable

import torch

from elfs2t.analysis.align import levenshtein_align

__all__ = ["edit_distance", "mbr_index", "decode_mbr"]


def edit_distance(a: list[int], b: list[int]) -> int:
    """Levenshtein distance between two token lists (unit costs)."""
    return sum(op.op != "C" for op in levenshtein_align(a, b))


def mbr_index(draws: list[list[int]]) -> int:
    """Index of the draw with the smallest sum of edit distances to the others (the earliest among ties)."""
    risk = [0] * len(draws)
    for i in range(len(draws)):
        for j in range(i + 1, len(draws)):
            d = edit_distance(draws[i], draws[j])
            risk[i] += d
            risk[j] += d
    return min(range(len(draws)), key=lambda i: (risk[i], i))


def decode_mbr(read: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], cond: torch.Tensor,
               cond_mask: torch.Tensor, samples: int, special: set[int]) -> torch.Tensor:
    """Token ids ``(B, L)``: ``read(cond, cond_mask)`` on the batch repeated ``samples`` times (each utterance's
    draws next to each other), the MBR draw of each utterance kept; ``special`` ids (EOS, padding, BOS) are left
    out of the distances. ``samples`` 1 is ``read`` itself."""
    if samples == 1:
        return read(cond, cond_mask)
    ids = read(cond.repeat_interleave(samples, dim=0), cond_mask.repeat_interleave(samples, dim=0))
    rows = [[i for i in row if i not in special] for row in ids.cpu().tolist()]
    keep = [b * samples + mbr_index(rows[b * samples:(b + 1) * samples]) for b in range(cond.shape[0])]
    return ids[torch.tensor(keep, device=ids.device)]

