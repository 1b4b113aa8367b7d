"""Mask-CTC refinement in the text latent space: re-predict the CTC draft's unsure tokens with the denoiser.

The CTC draft of ELF-S2T (the greedy readout of the audio slots) decides every token alone; its errors
are the non-autoregressive ones (a sound-alike word, a word the grammar does not allow there). Mask-CTC
(Higuchi et al., 2020) keeps the draft's confident tokens and re-predicts the others with a conditional
masked language model that sees the audio and the kept tokens. Here that model is the denoiser's decoding
forward, and a "masked" token is the text encoder's own mask token::

    draft, conf, frames, _ = ctc_greedy(best, prob, lens, blank)  # tokens, their CTC confidence and frame
    ids, conf = layout(draft), layout(conf)                        # (B, L) as the text space lays out ids
    ids = mask_predict(logits_fn, ids, conf < threshold, mask_id, iters=2)

* training (:func:`mask_tokens`): *mask rows* take the true ids with a random share ``r ~ U(0, 1]`` of the
  content tokens replaced by the mask id (at least one), encode them with the frozen text encoder and train
  the decoding forward's cross-entropy to the true ids -- the refinement's training input is exactly its
  inference input (a partly masked, encoder-made latent sequence with the audio), unlike a flow step's;
* inference (:func:`mask_predict`): the draft's tokens whose CTC confidence (the highest posterior of the
  token over its frames) is below a threshold are masked; each of ``iters`` forwards fills the most confident
  share of the masks still open (easy first, ``ceil(open / iters_left)`` per row), the last fills the rest.

The length of the draft is kept: Mask-CTC corrects substitutions, not dropped or extra words.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch

__all__ = ["mask_tokens", "ctc_greedy", "mask_predict"]


def mask_tokens(ids: torch.Tensor, content: torch.Tensor, mask_id: int,
                generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Training masks: per row, ``max(1, round(r * n))`` of its ``n`` content positions (``content (B, L)``
    bool) chosen uniformly, ``r ~ U(0, 1]``. Returns the masked ids (a copy) and the mask ``(B, L)`` bool;
    rows without content are left as they are."""
    if ids.shape != content.shape:
        raise ValueError(f"mask_tokens: ids {tuple(ids.shape)} and content {tuple(content.shape)} differ")
    B, L = ids.shape
    content = content.cpu()
    n = content.sum(dim=1)  # (B,)
    r = 1.0 - torch.rand(B, generator=generator)  # (0, 1]
    k = torch.where(n > 0, (r * n).round().long().clamp(min=1), torch.zeros_like(n))
    # random ranks among the content positions; mask the k lowest
    score = torch.rand((B, L), generator=generator).masked_fill(~content, 2.0)
    rank = score.argsort(dim=1).argsort(dim=1)  # (B, L): rank of each position's score in its row
    mask = (rank < k[:, None]) & content
    mask = mask.to(ids.device)
    return ids.masked_fill(mask, mask_id), mask


def ctc_greedy(best: torch.Tensor, prob: torch.Tensor, lens: torch.Tensor,
               blank: int) -> tuple[list[list[int]], list[list[float]], list[list[int]], list[list[int]]]:
    """Greedy CTC readout with token confidences and frames.

    ``best (B, T)`` argmax token ids per frame, ``prob (B, T)`` their posteriors, ``lens (B,)`` valid frames.
    Repeats are merged and blanks dropped; a token's confidence is the highest posterior over the frames of
    its run, its frame the run's first, its peak the frame of that highest posterior (the first of equals).
    Returns per row the token ids, their confidences, their frames and their peaks.
    """
    tokens, confs, frames, peaks = [], [], [], []
    best, prob = best.cpu(), prob.float().cpu()
    for b in range(best.shape[0]):
        n = int(lens[b])
        seq, p = best[b, :n].tolist(), prob[b, :n].tolist()
        row_t: list[int] = []
        row_c: list[float] = []
        row_f: list[int] = []
        row_p: list[int] = []
        prev = None
        for i, (tok, q) in enumerate(zip(seq, p)):
            if tok != prev and tok != blank:
                row_t.append(tok)
                row_c.append(q)
                row_f.append(i)
                row_p.append(i)
            elif tok == prev and tok != blank and q > row_c[-1]:
                row_c[-1] = q
                row_p[-1] = i
            prev = tok
        tokens.append(row_t)
        confs.append(row_c)
        frames.append(row_f)
        peaks.append(row_p)
    return tokens, confs, frames, peaks


@torch.no_grad()
def mask_predict(logits_fn: Callable[[torch.Tensor], torch.Tensor], ids: torch.Tensor, masked: torch.Tensor,
                 mask_id: int, iters: int) -> torch.Tensor:
    """Fill the ``masked (B, L)`` positions of ``ids (B, L)`` in ``iters`` forwards, easy first.

    ``logits_fn(ids) -> (ids_pred (B, L), prob (B, L))``: the best token id and its probability at every
    position, given ids in which the still-open positions hold ``mask_id``. Each forward fills, per row, the
    ``ceil(open / iters_left)`` open positions of highest probability; positions never masked are kept.
    """
    if iters < 1:
        raise ValueError(f"mask_predict: iters must be >= 1, got {iters}")
    out = ids.clone()
    open_ = masked.clone().to(ids.device)
    for it in range(iters):
        if not bool(open_.any()):
            break
        pred, prob = logits_fn(out.masked_fill(open_, mask_id))
        left = iters - it
        n_open = open_.sum(dim=1)
        n_fill = torch.div(n_open + left - 1, left, rounding_mode="floor")  # ceil(open / left)
        score = prob.float().masked_fill(~open_, -math.inf)
        rank = score.argsort(dim=1, descending=True).argsort(dim=1)
        fill = open_ & (rank < n_fill[:, None])
        out = torch.where(fill, pred.to(out.dtype), out)
        open_ = open_ & ~fill
    return out
