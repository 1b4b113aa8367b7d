"""What the flow code hands to a denoiser besides the latents: where the text slots sit (:class:`TextSlots`) and
the cached keys / values of a condition that attends only to itself (:class:`ConditionCache`, made by the denoiser,
reused by the sampler at every step). Here, below the models, so that :mod:`elfs2t.flow` never imports
:mod:`elfs2t.models`."""
from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["ConditionCache", "TextSlots", "slot_kwargs", "stack_slots"]

KV = tuple[torch.Tensor, torch.Tensor]


class ConditionCache(NamedTuple):
    """Per-layer keys and values of the condition slots (``prefix_attention: self``), reusable at every step."""

    kv: tuple[KV, ...]
    """One ``(k, v)`` per block, each ``(B, heads, C, hd)`` (after QK-norm and RoPE)."""
    cond_mask: torch.Tensor
    """(B, C) bool, True = real condition slot."""

    @property
    def batch_size(self) -> int:
        """Rows B."""
        return self.cond_mask.shape[0]

    def rows(self, index: torch.Tensor | slice) -> "ConditionCache":
        """The cache of some rows (e.g. the conditional half of a CFG cache)."""
        return ConditionCache(kv=tuple((k[index], v[index]) for k, v in self.kv), cond_mask=self.cond_mask[index])


class TextSlots(NamedTuple):
    """Where the text slots of a batch sit and what is added to their inputs (ELF-S2T's aligned slots); the
    samplers and the objective hand it to the denoiser as keywords (:meth:`kwargs`), only what is set, so a
    denoiser without these inputs (docs/contracts.md) keeps working."""

    pos: torch.Tensor | None = None
    """(B, L) RoPE positions of the text slots (None: the denoiser's own)."""
    extra: torch.Tensor | None = None
    """(B, L, H) added to the text slots' input embeddings (None: nothing)."""

    def kwargs(self) -> dict:
        """The denoiser keywords ``text_pos`` / ``text_extra`` that are set."""
        out = {}
        if self.pos is not None:
            out["text_pos"] = self.pos
        if self.extra is not None:
            out["text_extra"] = self.extra
        return out

    def rows(self, index: torch.Tensor | slice) -> "TextSlots":
        """The slots of some rows."""
        return TextSlots(*(None if v is None else v[index] for v in self))

    def __bool__(self) -> bool:  # an empty TextSlots changes nothing
        return self.pos is not None or self.extra is not None


def slot_kwargs(slots: TextSlots | None) -> dict:
    """``slots.kwargs()``, or nothing for None."""
    return {} if slots is None else slots.kwargs()


def stack_slots(cond: TextSlots | None, uncond: TextSlots | None) -> TextSlots | None:
    """The slots of ``[conditional rows | unconditional rows]`` (CFG's ``2B`` rows), each half from its own
    TextSlots: an unconditional half without positions takes the conditional ones, a half without an extra input
    gets zeros."""
    cond, uncond = cond or TextSlots(), uncond or TextSlots()
    if cond.pos is None and uncond.pos is not None:
        raise ValueError("the unconditional branch has text positions but the conditional one has none")
    pos = None if cond.pos is None else torch.cat([cond.pos, (uncond.pos if uncond.pos is not None else cond.pos)
                                                   .to(cond.pos.device)])
    extra = None
    if cond.extra is not None or uncond.extra is not None:
        c = cond.extra if cond.extra is not None else torch.zeros_like(uncond.extra)
        u = uncond.extra if uncond.extra is not None else torch.zeros_like(c)
        extra = torch.cat([c, u.to(c.device)])
    out = TextSlots(pos, extra)
    return out if out else None
