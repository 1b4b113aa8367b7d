"""``decode.strategy: draft`` -- the greedy CTC readout of the audio slots (a model trained with the auxiliary CTC,
``elf.ctc_weight > 0``): one decoding-mode forward, argmax per audio slot, repeats merged, blanks dropped. No flow
and no text slot is involved: this is the auxiliary CTC head's output."""
from __future__ import annotations

from typing import Optional

import torch

from elfs2t.s2t.decoding.base import register, require_ctc

__all__ = ["DraftDecoding"]


@register
class DraftDecoding:
    """The CTC draft (module docstring)."""

    name = "draft"
    reader = "CTC readout of the audio slots"

    def __init__(self, cfg: None, model_cfg) -> None:
        require_ctc(model_cfg, "decode.strategy: draft")

    def tag(self) -> str:
        return "draft"

    def __call__(self, model, cond: torch.Tensor, cond_mask: torch.Tensor,
                 generator: Optional[torch.Generator]) -> torch.Tensor:
        return model.draft(cond, cond_mask, generator).ids
