"""``decode.strategy: rescore`` -- the CTC draft rescored by both of ELF-S2T's readouts (beyond the paper): the draft
and its one-token variants (each draft token with a CTC confidence below ``threshold`` replaced by its frame's
runner-up, or dropped) are scored by the CTC NLL plus the token head's NLL on the text slots (the candidate's latents
at each signal level of ``levels``, ``draws`` noise draws each, at its CTC frames); the best is kept
(:mod:`elfs2t.s2t.draft_rescore`). The flow's sampler is not involved."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from elfs2t.config import config_check
from elfs2t.s2t.draft_rescore import Candidate, best_per_row, ctc_nll, draft_candidates, runner_up, text_nll
from elfs2t.s2t.ctc_aux import ctc_greedy
from elfs2t.s2t.decoding.base import fmt, register, require_ctc

__all__ = ["RescoreConfig", "RescoreDecoding"]


@dataclass(kw_only=True)
class RescoreConfig:
    """Which candidates, and how the text slots score them."""

    threshold: float = 0.95
    """Each draft token whose CTC confidence is below this gives one more candidate."""
    levels: list[float] = field(default_factory=lambda: [0.05, 0.2])
    """Signal levels ``lam`` of the candidates' latents, ``z = lam x + (1 - lam) sigma_d eps``, at which the token
    head scores them (the decoding rows were trained around ``sigmoid(flow.mu_dec)``)."""
    draws: int = 4
    """Noise draws per level."""

    def validate(self) -> None:
        config_check(0 <= self.threshold <= 1, "threshold", self.threshold, "must be in [0, 1]")
        config_check(len(self.levels) > 0 and all(0 <= v < 1 for v in self.levels), "levels", self.levels,
                     "must be a non-empty list of signal levels in [0, 1)")
        config_check(self.draws >= 1, "draws", self.draws, "must be >= 1")


@register
class RescoreDecoding:
    """Draft candidates scored by CTC + text slots (module docstring)."""

    name = "rescore"
    reader = "CTC draft rescored by the CTC and the text slots"

    def __init__(self, cfg: RescoreConfig, model_cfg) -> None:
        require_ctc(model_cfg, "decode.strategy: rescore")
        self.cfg = cfg
        self.aligned = model_cfg.text_positions == "ctc"

    def tag(self) -> str:
        levels = "-".join(fmt(v) for v in self.cfg.levels)
        return f"rescore_k{fmt(self.cfg.threshold)}_l{levels}_d{self.cfg.draws}"

    def __call__(self, model, cond: torch.Tensor, cond_mask: torch.Tensor,
                 generator: Optional[torch.Generator]) -> torch.Tensor:
        ids, score, cands = self.candidates(model, cond, cond_mask, generator)
        return ids[best_per_row(score, cands, cond.shape[0])]

    def candidates(self, model, cond: torch.Tensor, cond_mask: torch.Tensor,
                   generator: Optional[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor, list[Candidate]]:
        """Every candidate (n-best lists): ids ``(N, L)``, scores ``(N,)`` (lower is better; the first of equals,
        a row's draft first, wins) and the candidates (``.row``: which row each belongs to)."""
        audio = model.draft_readout(cond, cond_mask, generator)
        readout, cond_hidden = audio.ctc, audio.cond_hidden
        top, idx = readout.log_probs.topk(2, dim=-1)
        best, prob, blank = idx[..., 0], top[..., 0].exp(), readout.vocab.blank
        tokens, confs, frames, peaks = ctc_greedy(best, prob, readout.in_lens, blank)
        cands = draft_candidates(tokens, frames, confs, runner_up(idx[..., 1], peaks), self.cfg.threshold, blank)
        ids, text_pos = model.lay_out(readout.vocab.ids, [c.tokens for c in cands], [c.frames for c in cands])
        local, _ = readout.vocab.index(ids.flatten())
        rows = torch.tensor([c.row for c in cands])
        slots = None
        if self.aligned:
            slots = model.text_slots(cond_hidden[rows.to(cond_hidden.device)], text_pos.to(cond.device),
                                     [min(len(c.tokens), model.max_text_tokens) for c in cands])
        score = ctc_nll(readout.log_probs, readout.in_lens, cands, blank) + text_nll(
            model.denoiser, model.encode_ids(ids), local.view(ids.shape), rows, cond, cond_mask,
            vocab_ids=readout.vocab.ids, levels=self.cfg.levels, draws=self.cfg.draws, sigma_d=model.cfg.flow.sigma_d,
            slots=slots, generator=generator, cond_cache=audio.cond_cache)
        return ids, score, cands
