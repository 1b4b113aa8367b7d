"""``decode.strategy: draft`` -- the CTC readout of the audio slots (a model trained with the auxiliary CTC,
``elf.ctc_weight > 0``): one decoding-mode forward read per audio slot -- greedily (argmax per slot, repeats merged,
blanks dropped) or, with ``beam >= 1``, by CTC prefix beam search (:mod:`elfs2t.s2t.ctc_beam`: the most probable
labelling, summed over its alignments). No flow and no text slot is involved: this is the auxiliary CTC head's
output."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from elfs2t.config import config_check
from elfs2t.s2t.ctc_beam import PRUNE
from elfs2t.s2t.decoding.base import fmt, register, require_ctc

__all__ = ["DraftConfig", "DraftDecoding"]


@dataclass(kw_only=True)
class DraftConfig:
    """How the CTC readout is read."""

    beam: int = 0
    """0: greedy CTC; >= 1: prefix beam search with that many prefixes."""
    prune: float = PRUNE
    """Prefix beam search expands at each frame only the labels with at least this log-probability."""

    def validate(self) -> None:
        config_check(self.beam >= 0, "beam", self.beam, "must be >= 0 (0: greedy)")
        config_check(self.prune < 0, "prune", self.prune, "must be a log-probability < 0")


@register
class DraftDecoding:
    """The CTC draft (module docstring)."""

    name = "draft"
    reader = "CTC readout of the audio slots"

    def __init__(self, cfg: DraftConfig, model_cfg) -> None:
        require_ctc(model_cfg, "decode.strategy: draft")
        self.cfg = cfg

    def tag(self) -> str:
        if self.cfg.beam == 0:
            return "draft"
        return f"draft_beam{self.cfg.beam}" + (f"_p{fmt(self.cfg.prune)}" if self.cfg.prune != PRUNE else "")

    def __call__(self, model, cond: torch.Tensor, cond_mask: torch.Tensor,
                 generator: Optional[torch.Generator]) -> torch.Tensor:
        return model.draft(cond, cond_mask, generator, beam=self.cfg.beam, prune=self.cfg.prune).ids
