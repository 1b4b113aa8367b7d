"""``decode.strategy: flow`` -- the paper's generator: text latents sampled from pure noise by the flow (N Euler
ODE / SDE steps with classifier-free guidance), then one decoding-mode forward reads the tokens.

The slots' positions and the text's length come from :mod:`.layout` (``slots``: by default what the model was
trained with -- for ``elf.text_positions: ctc`` the CTC alignment of the audio gives the positions and the number
of content tokens, and the flow gives every token).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal, Optional

import torch

from elfs2t.config import config_check
from elfs2t.flow.sampler import SamplerConfig, generate_ids
from elfs2t.s2t.decoding.base import fmt, register
from elfs2t.s2t.decoding.draft import DraftConfig
from elfs2t.s2t.decoding.layout import resolve_slots, slot_layout, slots_tag, slots_words

__all__ = ["FlowDecodeConfig", "FlowDecoding", "sampler_tag"]

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class FlowDecodeConfig(SamplerConfig):
    """The flow from noise: the sampler's settings (:class:`~elfs2t.flow.sampler.SamplerConfig`) and the slots."""

    slots: Optional[Literal["ctc", "prior"]] = None
    """Where the text slots sit and who decides the length (:mod:`elfs2t.s2t.decoding.layout`): ``ctc`` -- the CTC
    alignment of the audio; ``prior`` -- ``round(i * text_pos_scale)``, the text ends at its first EOS; null: what
    the model was trained with (``elf.text_positions``)."""
    slot_draft: DraftConfig = field(default_factory=DraftConfig)
    """With ``slots: ctc``: how the CTC draft that places the slots and gives the length is read (the settings of
    ``decode.draft``; default greedy). Only the slots and the length come from it: the tokens are the flow's."""

    read_level: float = 1.0
    """Signal level lambda at which the decoding forward reads the final latents: ``lambda z + (1 - lambda)
    sigma_d eps`` (:mod:`elfs2t.flow.sampler`). 1: the latents as they are; lower: the token head weighs them
    against the audio, as on its training rows (0: the readout of noise, the flow ignored)."""

    def validate(self) -> None:
        super().validate()
        config_check(self.slots in (None, "ctc", "prior"), "slots", self.slots, "must be ctc, prior or null")
        config_check(0 <= self.read_level <= 1, "read_level", self.read_level, "must be in [0, 1]")


def sampler_tag(cfg: SamplerConfig) -> str:
    """The sampler settings in a tag: ``<steps>_g<g>`` and what differs from the defaults (SDE churn, a uniform grid,
    self-conditioning guidance, overridden path constants)."""
    tag = f"{cfg.steps}_g{fmt(cfg.guidance)}"
    if cfg.method == "sde":
        tag += f"_sde{fmt(cfg.gamma)}"
    if cfg.grid != "logit_normal":
        tag += f"_{cfg.grid}"
    if cfg.self_cond_scale != 1.0:
        tag += f"_w{fmt(cfg.self_cond_scale)}"
    for key, value in cfg.overrides().items():
        tag += f"_{key.replace('_', '')}{fmt(value)}"
    return tag


@register
class FlowDecoding:
    """Sampling from noise (module docstring)."""

    name = "flow"

    def __init__(self, cfg: FlowDecodeConfig, model_cfg) -> None:
        self.cfg = cfg
        self.slots = resolve_slots(cfg.slots, model_cfg)
        if cfg.overrides():
            log.info("flow decoding overrides the model's path constants: %s", cfg.overrides())

    @property
    def reader(self) -> str:
        read = f", read at signal level {fmt(self.cfg.read_level)}" if self.cfg.read_level != 1.0 else ""
        return "flow from noise" + read + slots_words(self.slots, self.cfg.slot_draft)

    def tag(self) -> str:
        read = f"_read{fmt(self.cfg.read_level)}" if self.cfg.read_level != 1.0 else ""
        return f"flow{sampler_tag(self.cfg)}_{slots_tag(self.slots, self.cfg.slot_draft)}{read}"

    def __call__(self, model, cond: torch.Tensor, cond_mask: torch.Tensor,
                 generator: Optional[torch.Generator]) -> torch.Tensor:
        layout = slot_layout(model, self.slots, cond, cond_mask, generator, self.cfg.slot_draft,
                             "decode.flow.slot_draft")
        space = model.text_space
        ids = generate_ids(model.denoiser, self.cfg, model.cfg.flow, batch_size=cond.shape[0], length=space.max_len,
                           latent_dim=space.dim, cond=cond, cond_mask=cond_mask, generator=generator, vocab=model.vocab,
                           slots=layout.slots, slots_uncond=layout.slots_uncond, read_level=self.cfg.read_level,
                           cond_cache=layout.cond_cache)
        return ids if layout.lengths is None else model.keep_content(ids, layout.lengths)
