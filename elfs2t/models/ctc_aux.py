"""Auxiliary CTC loss on the audio condition slots of the ELF denoiser (an alignment aid for ELF-S2T).

ELF-S2T is non-autoregressive: every text slot must find *its* word in the audio prefix. A CTC loss on
the denoiser's own outputs at the audio slots (the residual stream of the same trained forward, read by
the same factored token head as the text slots) gives every frame a token-level training signal from the
first step on, so the audio states become token-discriminative and ordered quickly; the text slots then
only have to read them out. It adds no parameters and no forward pass.

Cost control: the token head's vocabulary is large (MiniLM 30522, t5 32100) and the audio has many more
slots than the text, so the CTC softmax runs over the token ids present in the batch's targets plus a
blank (a *batch-restricted* softmax). As an auxiliary loss this keeps its alignment signal at a fraction
of the cost; the flow and decoding losses still use the full vocabulary. The blank is the text
tokenizer's padding id, which never occurs inside a target (the text tail is EOS).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["ctc_targets", "restricted_ctc_loss"]


def ctc_targets(ids: torch.Tensor, num_tokens: list[int], offset: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Content token ids of each row of ``ids (B, L)`` (``offset`` = 1 after a BOS/CLS, else 0).

    Returns the concatenated targets ``(sum n,)`` and the lengths ``(B,)``, each ``n`` cut to what fits in
    ``L`` (the text slots hold at most ``L - offset - 1`` content tokens).
    """
    room = ids.shape[1] - offset - 1
    lens = [min(n, room) for n in num_tokens]
    flat = torch.cat([ids[b, offset:offset + n] for b, n in enumerate(lens)]) if lens else ids.new_zeros(0)
    return flat, torch.tensor(lens, dtype=torch.long)


def restricted_ctc_loss(
    logits_fn,
    cond_hidden: torch.Tensor,
    cond_mask: torch.Tensor,
    targets: torch.Tensor,
    target_lens: torch.Tensor,
    blank_id: int,
    rows: torch.Tensor | None = None,
    vocab: torch.Tensor | None = None,
) -> tuple[torch.Tensor, int]:
    """Summed CTC negative log-likelihood over the selected rows and the number of target tokens.

    ``logits_fn(hidden (N, H), vocab_ids (K,)) -> (N, K)`` is the token head restricted to ``vocab_ids``;
    ``cond_hidden (B, C, H)`` the audio slots, ``cond_mask (B, C)`` which are real; ``targets`` /
    ``target_lens`` from :func:`ctc_targets`; ``rows (B,)`` bool selects the rows that count (e.g. not the
    rows whose condition was dropped). Rows with no target token or too few frames are left out.
    ``vocab (K,)``: token ids (a shortlist) to normalise over instead of the batch's own ids -- the softmax the
    CTC readout decodes with; rows with a target id outside it (validation text) are left out (a restricted
    token head, :meth:`~elfs2t.models.denoiser.ElfDenoiser.restrict_head`, holds no other ids).
    """
    B = cond_hidden.shape[0]
    rows = torch.ones(B, dtype=torch.bool) if rows is None else rows.to("cpu", torch.bool)
    in_lens = cond_mask.sum(dim=1).to("cpu")
    starts = torch.cumsum(target_lens, 0) - target_lens
    # CTC needs T >= n + (repeats): require T >= 2n + 1 to be safe, and at least one token.
    ok = rows & (target_lens > 0) & (in_lens >= 2 * target_lens + 1)
    if vocab is not None:  # rows with a target id outside the shortlist (validation text) are left out
        vocab = vocab.to("cpu")
        vocab = vocab[vocab != blank_id]
        pos = torch.searchsorted(vocab, targets.cpu()).clamp_max(max(vocab.numel() - 1, 0))
        missing = (vocab[pos] != targets.cpu()).long() if vocab.numel() else torch.ones_like(targets.cpu())
        row_of = torch.repeat_interleave(torch.arange(B), target_lens)
        ok &= torch.zeros(B, dtype=torch.long).index_add_(0, row_of, missing) == 0
    if not bool(ok.any()):
        return cond_hidden.sum() * 0.0, 0
    sel = ok.nonzero(as_tuple=True)[0]
    tgt = torch.cat([targets[starts[b]:starts[b] + target_lens[b]] for b in sel.tolist()])
    if vocab is None:
        vocab, local = torch.unique(tgt, return_inverse=True)  # (K,), (sum n,)
    else:
        local = torch.searchsorted(vocab, tgt)
    vocab = torch.cat([vocab.new_tensor([blank_id]), vocab]).to(cond_hidden.device)  # blank at index 0
    local = (local + 1).to(cond_hidden.device)
    h = cond_hidden[sel.to(cond_hidden.device)]  # (b, C, H)
    logits = logits_fn(h.reshape(-1, h.shape[-1]), vocab).reshape(h.shape[0], h.shape[1], -1)
    log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # (C, b, K+1)
    nll = F.ctc_loss(log_probs, local, in_lens[sel], target_lens[sel], blank=0, reduction="sum", zero_infinity=True)
    return nll, int(target_lens[sel].sum())
