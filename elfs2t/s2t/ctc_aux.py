"""Auxiliary CTC loss on the audio condition slots of the ELF denoiser (an alignment aid for ELF-S2T).

ELF-S2T is non-autoregressive: every text slot must find *its* word in the audio prefix. A CTC loss on
the denoiser's own outputs at the audio slots (the residual stream of the same trained forward, read by
the same factored token head as the text slots) gives every frame a token-level training signal from the
first step on, so the audio states become token-discriminative and ordered quickly; the text slots then
only have to read them out. It adds no parameters and no forward pass.

Cost control: the token head's vocabulary is large (MiniLM 30522, t5 32100) and the audio has many more
slots than the text, so the CTC softmax runs over a *CTC vocabulary* (:func:`ctc_vocab`): the token-head
shortlist when the model has one (the softmax the CTC draft decodes with), else the token ids of the batch's
targets plus the blank (a *batch-restricted* softmax). The blank is the text tokenizer's padding id, which never
occurs inside a target (the text tail is EOS). One readout (:func:`ctc_readout`, with gradients) serves both the
loss (:func:`ctc_loss`) and the forced alignment of the true text (``text_positions: ctc``), so the token head
runs once per step on the audio slots.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = ["CtcReadout", "CtcVocab", "ctc_greedy", "ctc_loss", "ctc_readout", "ctc_targets", "ctc_vocab"]


class CtcVocab(NamedTuple):
    """The token ids a CTC readout normalises over and where the blank is among them."""

    ids: torch.Tensor
    """(K,) sorted token ids, the blank among them (on the CPU)."""
    blank: int
    """Index of the blank in ``ids``."""

    def index(self, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices of the token ids ``targets (n,)`` in :attr:`ids` and which of them are there at all."""
        targets = targets.cpu()
        pos = torch.searchsorted(self.ids, targets).clamp_max(self.ids.numel() - 1)
        return pos, self.ids[pos] == targets


class CtcReadout(NamedTuple):
    """The audio slots read out by the token head over a :class:`CtcVocab`."""

    log_probs: torch.Tensor
    """(B, C, K) frame log-posteriors (float32, with gradients when the hidden states had them)."""
    in_lens: torch.Tensor
    """(B,) real frames per row (on the CPU)."""
    vocab: CtcVocab


def ctc_vocab(shortlist: torch.Tensor | None, targets: torch.Tensor, blank_id: int) -> CtcVocab:
    """The sorted ``shortlist (K,)`` -- which must hold ``blank_id`` -- or, without one, the ids in ``targets``
    plus the blank."""
    if shortlist is None:
        ids = torch.unique(torch.cat([targets.cpu().long(), torch.tensor([blank_id])]))
    else:
        ids = shortlist.cpu().long()
    blank = int(torch.searchsorted(ids, torch.tensor(blank_id)))
    if blank >= ids.numel() or int(ids[blank]) != blank_id:
        raise ValueError(f"CTC: the token shortlist ({ids.numel()} ids) lacks the blank (the padding id {blank_id})")
    return CtcVocab(ids, blank)


def ctc_readout(logits_fn, hidden: torch.Tensor, mask: torch.Tensor, vocab: CtcVocab) -> CtcReadout:
    """``logits_fn(hidden (B, C, H), ids (K,)) -> (B, C, K)`` (the token head over those ids) as log-posteriors,
    with the real frames per row of ``mask (B, C)``."""
    logits = logits_fn(hidden, vocab.ids.to(hidden.device))
    return CtcReadout(F.log_softmax(logits.float(), dim=-1), mask.sum(dim=1).cpu(), vocab)


def ctc_targets(ids: torch.Tensor, num_tokens: list[int], offset: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Content token ids of each row of ``ids (B, L)`` (``offset`` = 1 after a BOS/CLS, else 0).

    Returns the concatenated targets ``(sum n,)`` and the lengths ``(B,)``, each ``n`` cut to what fits in
    ``L`` (the text slots hold at most ``L - offset - 1`` content tokens).
    """
    room = ids.shape[1] - offset - 1
    lens = [min(n, room) for n in num_tokens]
    flat = torch.cat([ids[b, offset:offset + n] for b, n in enumerate(lens)]) if lens else ids.new_zeros(0)
    return flat, torch.tensor(lens, dtype=torch.long)


def ctc_loss(readout: CtcReadout, targets: torch.Tensor, target_lens: torch.Tensor,
             rows: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """Summed CTC negative log-likelihood over the selected rows and the number of target tokens.

    ``targets`` / ``target_lens`` from :func:`ctc_targets`; ``rows (B,)`` bool selects the rows that count (e.g.
    not the rows whose condition was dropped). Rows with no target token, too few frames or a target id outside
    the readout's vocabulary (validation text against a shortlist) are left out.
    """
    log_probs, in_lens, vocab = readout
    B = log_probs.shape[0]
    rows = torch.ones(B, dtype=torch.bool) if rows is None else rows.to("cpu", torch.bool)
    local, known = vocab.index(targets)
    row_of = torch.repeat_interleave(torch.arange(B), target_lens)
    unknown = torch.zeros(B, dtype=torch.long).index_add_(0, row_of, (~known).long())
    # CTC needs T >= n + (repeats): require T >= 2n + 1 to be safe, and at least one token.
    ok = rows & (target_lens > 0) & (in_lens >= 2 * target_lens + 1) & (unknown == 0)
    if not bool(ok.any()):
        return log_probs.sum() * 0.0, 0
    sel = ok.nonzero(as_tuple=True)[0]
    keep = ok[row_of]
    lp = log_probs[sel.to(log_probs.device)].transpose(0, 1)  # (C, b, K)
    nll = F.ctc_loss(lp, local[keep].to(lp.device), in_lens[sel], target_lens[sel], blank=vocab.blank,
                     reduction="sum", zero_infinity=True)
    return nll, int(target_lens[sel].sum())


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
