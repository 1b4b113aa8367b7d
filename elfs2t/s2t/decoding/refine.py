"""``decode.strategy: refine`` -- the CTC draft refined by the flow (beyond the paper): the draft's ids, encoded by the
frozen text encoder, are put on the flow's path at ``t_start`` (``z = t_start x_draft + (1 - t_start) sigma_n eps``)
and moved by ``steps`` flow steps over ``[t_start, 1]``; then one decoding forward reads the tokens, and with
``threshold < 1`` only the draft's content tokens whose CTC confidence is below it take the refined token (the
others, and every non-content slot, keep the draft's). The text slots sit at the draft's token frames for a model
trained with ``elf.text_positions: ctc``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from elfs2t.config import config_check
from elfs2t.flow.sampler import SamplerConfig, generate_ids
from elfs2t.models.layout import TextSlots
from elfs2t.s2t.decoding.base import fmt, register, require_ctc
from elfs2t.s2t.decoding.flow import sampler_tag

__all__ = ["RefineConfig", "RefineDecoding"]


@dataclass(kw_only=True)
class RefineConfig(SamplerConfig):
    """The draft refined by the flow: the sampler's settings and where the draft enters the path."""

    steps: int = 1
    """Flow steps from ``t_start`` to 1."""
    t_start: float = 0.8
    """Time at which the draft enters the path."""
    threshold: float = 1.0
    """Only the draft's content tokens with a CTC confidence below this may change (1: every slot)."""

    def validate(self) -> None:
        super().validate()
        config_check(0 <= self.t_start < 1, "t_start", self.t_start, "must be in [0, 1)")
        config_check(0 <= self.threshold <= 1, "threshold", self.threshold, "must be in [0, 1]")


@register
class RefineDecoding:
    """Draft, then flow steps from ``t_start`` (module docstring)."""

    name = "refine"
    reader = "CTC draft refined by the flow"

    def __init__(self, cfg: RefineConfig, model_cfg) -> None:
        require_ctc(model_cfg, "decode.strategy: refine")
        self.cfg = cfg
        self.aligned = model_cfg.text_positions == "ctc"

    def tag(self) -> str:
        gate = f"_k{fmt(self.cfg.threshold)}" if self.cfg.threshold < 1 else ""
        return f"refine{sampler_tag(self.cfg)}_t{fmt(self.cfg.t_start)}{gate}"

    def __call__(self, model, cond: torch.Tensor, cond_mask: torch.Tensor,
                 generator: Optional[torch.Generator]) -> torch.Tensor:
        draft = model.draft(cond, cond_mask, generator)
        slots = model.draft_slots(draft) if self.aligned else None
        uncond = TextSlots(pos=model.prior_positions(cond.shape[0]).to(cond.device)) if self.aligned else None
        space = model.text_space
        ids = generate_ids(model.denoiser, self.cfg, model.cfg.flow, batch_size=cond.shape[0], length=space.max_len,
                           latent_dim=space.dim, cond=cond, cond_mask=cond_mask, generator=generator, vocab=model.vocab,
                           x_init=model.encode_ids(draft.ids).to(cond.device), t_start=self.cfg.t_start,
                           slots=slots, slots_uncond=uncond, cond_cache=draft.cond_cache)
        if self.cfg.threshold < 1:  # only the unsure draft tokens may change
            unsure = (draft.conf < self.cfg.threshold) & model.content_mask(draft.ids)
            ids = torch.where(unsure.to(ids.device), ids, draft.ids.to(ids.device))
        return ids
