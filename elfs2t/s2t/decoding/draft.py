"""``decode.strategy: draft`` -- the CTC readout of the audio slots (a model trained with the auxiliary CTC,
``elf.ctc_weight > 0``): one decoding-mode forward read per audio slot -- greedily (argmax per slot, repeats merged,
blanks dropped) or, with ``beam >= 1``, by CTC prefix beam search (:mod:`elfs2t.s2t.ctc_beam`: the most probable
labelling, summed over its alignments), optionally fused with the experiment's token n-gram model of its training
texts (``lm_weight > 0``: ``ngram.json`` in the experiment folder, :mod:`elfs2t.bin.train_ngram`). No flow and no
text slot is involved: this is the auxiliary CTC head's output (and, fused, the n-gram's)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from elfs2t.config import config_check
from elfs2t.s2t.ctc_beam import PRUNE, LmFusion
from elfs2t.s2t.decoding.base import fmt, register, require_ctc

__all__ = ["DraftConfig", "DraftDecoding", "draft_tag", "run_draft"]


@dataclass(kw_only=True)
class DraftConfig:
    """How the CTC readout is read."""

    beam: int = 0
    """0: greedy CTC; >= 1: prefix beam search with that many prefixes."""
    prune: float = PRUNE
    """Prefix beam search expands at each frame only the labels with at least this log-probability."""
    lm_weight: float = 0.0
    """> 0: the weight of the experiment's n-gram model (``ngram.json``) fused into the prefix beam search."""
    lm_bonus: float = 0.0
    """With ``lm_weight``: a score added per token, which offsets the n-gram's cost of each word."""

    def validate(self) -> None:
        config_check(self.beam >= 0, "beam", self.beam, "must be >= 0 (0: greedy)")
        config_check(self.prune < 0, "prune", self.prune, "must be a log-probability < 0")
        config_check(self.lm_weight >= 0, "lm_weight", self.lm_weight, "must be >= 0 (0: no language model)")
        config_check(self.lm_weight == 0 or self.beam >= 1, "lm_weight", self.lm_weight,
                     "fuses the n-gram into the prefix beam search: set decode.draft.beam >= 1")
        config_check(self.lm_weight > 0 or self.lm_bonus == 0, "lm_bonus", self.lm_bonus,
                     "is the fused n-gram's: set decode.draft.lm_weight > 0")


def draft_tag(cfg: DraftConfig) -> str:
    """``draft``, ``draft_beam<k>[_p<prune>][_lm<w>_b<bonus>]``: what a draft setting names."""
    if cfg.beam == 0:
        return "draft"
    tag = f"draft_beam{cfg.beam}" + (f"_p{fmt(cfg.prune)}" if cfg.prune != PRUNE else "")
    return tag + (f"_lm{fmt(cfg.lm_weight)}_b{fmt(cfg.lm_bonus)}" if cfg.lm_weight > 0 else "")


def run_draft(model, cfg: DraftConfig, cond: torch.Tensor, cond_mask: torch.Tensor,
              generator: Optional[torch.Generator], key: str = "decode.draft"):
    """The model's :class:`~elfs2t.s2t.elf_s2t.CtcDraft` of a batch, read as ``cfg`` (the config section ``key``)
    says: the strategy's output, and where ``slots: ctc`` puts the text slots of the flow and the readout."""
    lm = None
    if cfg.lm_weight > 0:
        if model.ngram is None:
            raise ValueError(f"{key}.lm_weight={fmt(cfg.lm_weight)}: the model has no n-gram model "
                             "(ngram.json in its experiment folder: python -m elfs2t.bin.train_ngram --exp-dir EXP)")
        lm = LmFusion(model.ngram, cfg.lm_weight, cfg.lm_bonus)
    return model.draft(cond, cond_mask, generator, beam=cfg.beam, prune=cfg.prune, lm=lm)


@register
class DraftDecoding:
    """The CTC draft (module docstring)."""

    name = "draft"

    def __init__(self, cfg: DraftConfig, model_cfg) -> None:
        require_ctc(model_cfg, "decode.strategy: draft")
        self.cfg = cfg

    @property
    def reader(self) -> str:
        fused = " fused with a token n-gram of the training texts" if self.cfg.lm_weight > 0 else ""
        search = f" (prefix beam search, {self.cfg.beam} prefixes)" if self.cfg.beam > 0 else ""
        return "CTC readout of the audio slots" + fused + search

    def tag(self) -> str:
        return draft_tag(self.cfg)

    def __call__(self, model, cond: torch.Tensor, cond_mask: torch.Tensor,
                 generator: Optional[torch.Generator]) -> torch.Tensor:
        return run_draft(model, self.cfg, cond, cond_mask, generator).ids
