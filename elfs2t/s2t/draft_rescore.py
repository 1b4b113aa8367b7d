"""Rescoring the CTC draft's unsure tokens with both of ELF-S2T's readouts (``decode.strategy: rescore``).

ELF-S2T reads the same text out of the audio in two ways. The CTC readout of the audio slots decides each
frame alone (that is the draft); the token head on the *text* slots reads the audio too, but each text slot
also attends to the other slots' latents -- the sentence around it. Where the two disagree, a sum of their
negative log-likelihoods (a product of experts) is a better judge than either: on mini_synth's unseen accents
the draft writes "a" for a "the" that it heard as a short vowel, which the text slots, with the sentence
around it, do not believe.

Candidates (:func:`draft_candidates`): the draft, and for every content token whose CTC confidence is below a
threshold, the draft with that one token replaced by the runner-up of its most confident frame
(:func:`runner_up`) -- or dropped, when the runner-up is the blank. Each candidate is scored by

    score(y) = CTC NLL(y | audio slots) + mean over levels lam and draws eps of sum_i -log p_head(y_i | z, audio)
    z = lam * x(y) + (1 - lam) * sigma_d * eps          (x(y): the text encoder's latents of y)

with i over all L text slots of y laid out as the text space lays out ids (BOS, tokens, EOS tail: the
decoding rows' loss positions in training), so a candidate with a token dropped is not favoured for having
one term fewer.

i.e. the text slots see the candidate's latents under as much noise as the decoding rows saw in training
(``flow.mu_dec``: lam around 0.05), at the candidate's CTC-aligned positions; the candidates of one utterance
share their noise. The lowest score wins (:func:`best_per_row`); one candidate per row keeps the draft.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from elfs2t.flow.sampler import build_condition_cache, decoding_forward
from elfs2t.models.layout import ConditionCache, TextSlots

__all__ = ["Candidate", "runner_up", "draft_candidates", "ctc_nll", "text_nll", "best_per_row"]


class Candidate(NamedTuple):
    """One hypothesis of a row: its tokens (indices in the CTC vocabulary) and each token's first frame."""

    row: int
    tokens: list[int]
    frames: list[int]


def runner_up(second: torch.Tensor, peaks: list[list[int]]) -> list[list[int]]:
    """For each greedy CTC token (:func:`~elfs2t.s2t.ctc_aux.ctc_greedy`'s ``peaks``: the frame of its run
    where it is most probable), the second-best symbol ``second (B, T)`` at that frame."""
    second = second.cpu()
    return [[int(second[b, f]) for f in row] for b, row in enumerate(peaks)]


def draft_candidates(tokens: list[list[int]], frames: list[list[int]], confs: list[list[float]],
                     alts: list[list[int]], threshold: float, blank: int) -> list[Candidate]:
    """Per row: the draft, then one candidate for each token with confidence below ``threshold``: that token
    replaced by its runner-up ``alts``, or left out when the runner-up is ``blank`` (its frame goes with it)."""
    out = []
    for b, (tok, fr, conf, alt) in enumerate(zip(tokens, frames, confs, alts)):
        out.append(Candidate(b, list(tok), list(fr)))
        for k, (c, a) in enumerate(zip(conf, alt)):
            if c >= threshold:
                continue
            if a == blank:
                out.append(Candidate(b, tok[:k] + tok[k + 1:], fr[:k] + fr[k + 1:]))
            else:
                out.append(Candidate(b, tok[:k] + [a] + tok[k + 1:], list(fr)))
    return out


def ctc_nll(log_probs: torch.Tensor, lens: torch.Tensor, cands: list[Candidate], blank: int) -> torch.Tensor:
    """CTC negative log-likelihood ``(N,)`` of each candidate under its row's frame log-posteriors
    ``log_probs (B, T, K)`` (``lens (B,)`` real frames); an impossible alignment scores ``inf``."""
    rows = torch.tensor([c.row for c in cands], dtype=torch.long)
    lp = log_probs.float()[rows.to(log_probs.device)].transpose(0, 1)  # (T, N, K)
    target_lens = torch.tensor([len(c.tokens) for c in cands], dtype=torch.long)
    targets = torch.tensor([t for c in cands for t in c.tokens], dtype=torch.long)
    nll = F.ctc_loss(lp, targets.to(lp.device), lens.cpu()[rows], target_lens, blank=blank, reduction="none",
                     zero_infinity=False)
    return nll.cpu()


@torch.no_grad()
def text_nll(denoiser: nn.Module, x: torch.Tensor, local: torch.Tensor, rows: torch.Tensor,
             cond: torch.Tensor, cond_mask: torch.Tensor, *, vocab_ids: torch.Tensor, levels: list[float], draws: int,
             sigma_d: float, slots: TextSlots | None = None, generator: torch.Generator | None = None,
             cond_cache: ConditionCache | None = None) -> torch.Tensor:
    """The token head's negative log-likelihood ``(N,)`` of each candidate's ids at every text slot (the EOS
    tail too, as in training: candidates of different lengths are scored on the same slots), averaged over the
    signal ``levels`` and ``draws`` noise draws each.

    ``x (N, L, d)``: the candidates' latents; ``local (N, L)``: their ids as indices into ``vocab_ids`` (the
    token head's columns); ``rows (N,)``: each candidate's row
    of ``cond (B, C, H)`` / ``cond_mask (B, C)``; ``slots``: the text slots' positions and extra inputs, ``(N, L)`` rows (None: the
    denoiser's own). A draw is ``eps (B, L, d)`` from ``generator``, shared by the candidates of a row.
    ``cond_cache``: the condition's keys / values if the caller has them (the draft's), else built here.
    """
    dev = cond.device
    rows_d = rows.to(dev)
    # one condition pass for every candidate and draw
    cache = cond_cache if cond_cache is not None else build_condition_cache(denoiser, cond, cond_mask)
    condition = (dict(cond_cache=cache.rows(rows_d)) if cache is not None
                 else dict(cond=cond[rows_d], cond_mask=cond_mask[rows_d]))
    x = x.to(dev, cond.dtype)
    local, cols = local.to(dev), vocab_ids.to(dev)
    slots = None if slots is None else TextSlots(*(None if v is None else v.to(dev) for v in slots))
    nll = torch.zeros(x.shape[0])
    for lam in levels:
        for _ in range(draws):
            eps = torch.randn((cond.shape[0], *x.shape[1:]), generator=generator).to(dev, x.dtype)[rows_d]
            z = lam * x + (1.0 - lam) * sigma_d * eps
            hidden = decoding_forward(denoiser, z, slots=slots, **condition).hidden
            logp = denoiser.token_logits(hidden, cols).float().log_softmax(dim=-1)
            nll -= logp.gather(-1, local[..., None])[..., 0].sum(dim=-1).cpu()
    return nll / (len(levels) * draws)


def best_per_row(scores: torch.Tensor, cands: list[Candidate], num_rows: int) -> list[int]:
    """The index of the lowest-scoring candidate of each row (the first of equals: the draft wins ties)."""
    values = scores.tolist()
    best = [-1] * num_rows
    for i, c in enumerate(cands):
        if best[c.row] < 0 or values[i] < values[best[c.row]]:
            best[c.row] = i
    return best
