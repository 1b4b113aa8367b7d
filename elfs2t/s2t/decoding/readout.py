"""``decode.strategy: readout`` -- the text slots' token head on pure noise: one decoding-mode forward (t = 1) on
``sigma_d eps`` (what the decoding rows saw at signal level 0), no flow step. Not a way to decode so much as the
baseline the flow must beat: at CTC-aligned slots the text slots can read the audio by themselves, so only a gain
of ``flow`` over ``readout`` shows that the flow's integration does the work. Slots as in :mod:`.flow`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

import torch

from elfs2t.config import config_check
from elfs2t.flow.sampler import decode_tokens
from elfs2t.s2t.decoding.base import register
from elfs2t.s2t.decoding.draft import DraftConfig
from elfs2t.s2t.decoding.layout import resolve_slots, slot_layout, slots_tag, slots_words

__all__ = ["ReadoutConfig", "ReadoutDecoding"]


@dataclass(kw_only=True)
class ReadoutConfig:
    """The text slots' readout of noise."""

    slots: Optional[Literal["ctc", "prior"]] = None
    """As ``decode.flow.slots``."""
    slot_draft: DraftConfig = field(default_factory=DraftConfig)
    """As ``decode.flow.slot_draft``."""

    def validate(self) -> None:
        config_check(self.slots in (None, "ctc", "prior"), "slots", self.slots, "must be ctc, prior or null")


@register
class ReadoutDecoding:
    """One decoding forward on noise (module docstring)."""

    name = "readout"

    def __init__(self, cfg: ReadoutConfig, model_cfg) -> None:
        self.cfg = cfg
        self.slots = resolve_slots(cfg.slots, model_cfg)

    @property
    def reader(self) -> str:
        return "text-slot readout of noise, no flow step" + slots_words(self.slots, self.cfg.slot_draft)

    def tag(self) -> str:
        return f"readout_{slots_tag(self.slots, self.cfg.slot_draft)}"

    def __call__(self, model, cond: torch.Tensor, cond_mask: torch.Tensor,
                 generator: Optional[torch.Generator]) -> torch.Tensor:
        layout = slot_layout(model, self.slots, cond, cond_mask, generator, self.cfg.slot_draft,
                             "decode.readout.slot_draft")
        space = model.text_space
        eps = torch.randn((cond.shape[0], space.max_len, space.dim), generator=generator).to(cond.device, cond.dtype)
        ids = decode_tokens(model.denoiser, model.cfg.flow.sigma_d * eps, cond=cond, cond_mask=cond_mask,
                            cond_cache=layout.cond_cache, vocab=model.vocab, slots=layout.slots)  # the draft's cache
        return ids if layout.lengths is None else model.keep_content(ids, layout.lengths)
