"""Where the text slots sit when ELF-S2T decodes, and how many of them hold the text.

A model trained with ``elf.text_positions: ctc`` saw each content slot at its token's CTC-aligned audio slot (the
forced alignment of the true text), and the rows whose audio was dropped (the unconditional branch of
classifier-free guidance) at the prior positions ``round(i * text_pos_scale)``. Decoding from noise does the same
with what the audio gives: ``slots: ctc`` puts the content slots at the greedy CTC readout's token frames, takes
the number of content tokens from it (or from the draft that ``slot_draft`` names: prefix beam search, fused with
the experiment's n-gram), and gives the unconditional branch the prior positions; the tokens
themselves come from the strategy (the flow, or the text slots' readout; a model trained with ``elf.slot_audio``
also gets each content slot's aligned audio state as input, the unconditional branch none), and only the first ``n`` content slots
are read (a slot read as EOS or another special token is dropped, not taken as the end of the text).
``slots: prior`` keeps the prior positions for both branches and lets the text end at its first EOS (the paper's
layout, and the only one for a model trained with ``text_positions: scale``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal, NamedTuple, Optional

import torch

from elfs2t.models.layout import ConditionCache, TextSlots
from elfs2t.s2t.decoding.base import require_ctc
from elfs2t.s2t.decoding.draft import DraftConfig, draft_tag, run_draft

if TYPE_CHECKING:
    from elfs2t.s2t.elf_s2t import ElfS2T, ElfS2TConfig

__all__ = ["SlotLayout", "resolve_slots", "slot_layout", "slots_tag", "slots_words"]

Slots = Literal["ctc", "prior"]


class SlotLayout(NamedTuple):
    """The text slots of one batch."""

    slots: Optional[TextSlots]
    """Positions (and, for ``elf.slot_audio``, extra inputs) of the conditional branch (None: the prior)."""
    slots_uncond: Optional[TextSlots]
    """Those of the unconditional branch (None: the conditional branch's positions)."""
    lengths: Optional[list[int]]
    """Content tokens per row to read (None: up to the first EOS)."""
    cond_cache: Optional[ConditionCache] = None
    """The condition's keys / values that the draft computed (``prefix_attention: self``), for the text slots'
    forwards that follow (None: they run the condition themselves)."""


def resolve_slots(slots: Optional[Slots], model_cfg: "ElfS2TConfig") -> Slots:
    """``slots`` as configured, or (None) what the model was trained with."""
    if slots is None:
        return "ctc" if model_cfg.text_positions == "ctc" else "prior"
    if slots == "ctc":
        require_ctc(model_cfg, "decoding with slots: ctc")
    return slots


def slot_layout(model: "ElfS2T", slots: Slots, cond: torch.Tensor, cond_mask: torch.Tensor,
                generator: Optional[torch.Generator], draft: DraftConfig, key: str) -> SlotLayout:
    """The :class:`SlotLayout` of a batch: from the CTC draft of its audio read as ``draft`` says (``ctc``; the
    config section ``key``) or the prior (``prior``)."""
    if slots == "prior":
        return SlotLayout(None, None, None)
    drafted = run_draft(model, draft, cond, cond_mask, generator, key=key)
    return SlotLayout(model.draft_slots(drafted), TextSlots(pos=model.prior_positions(cond.shape[0]).to(cond.device)),
                      drafted.lengths, drafted.cond_cache)


def slots_tag(slots: Slots, draft: DraftConfig) -> str:
    """``prior``, ``ctc`` (the greedy draft's slots) or ``ctc_beam<k>[...]`` (another draft's: its tag)."""
    return slots if slots == "prior" else "ctc" + draft_tag(draft)[len("draft"):]


def slots_words(slots: Slots, draft: DraftConfig) -> str:
    """Where the slots come from, as the results tables say it ("" for the prior)."""
    if slots == "prior":
        return ""
    if draft.beam == 0:
        return " (CTC-aligned slots and length)"
    return (" (slots and length from the CTC draft's beam search" + (" fused with the n-gram" if draft.lm_weight > 0
                                                                      else "") + ")")
