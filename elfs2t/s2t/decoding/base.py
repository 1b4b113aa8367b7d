"""What a decoding strategy is, and the registry that ``decode.strategy`` names.

A strategy turns the audio condition of a batch into token ids laid out as the text space lays them out
(``[BOS] tokens EOS EOS ...``, ``(B, L)``); :meth:`ElfS2T.generate` decodes them to strings. Each strategy says
which of the model's readers produced its tokens (:attr:`Decoding.reader`), and its :meth:`Decoding.tag` names
exactly what ran (the folder ``decode_<tag>``, the results tables' rows, the benchmark's rows).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Optional, Protocol

import torch

if TYPE_CHECKING:  # the model imports nothing from here
    from elfs2t.s2t.elf_s2t import ElfS2T

__all__ = ["Decoding", "STRATEGIES", "register", "require_ctc", "fmt"]


class Decoding(Protocol):
    """One decoding strategy, built from its config section (``decode.<strategy>``)."""

    name: ClassVar[str]
    """The registry key (``decode.strategy``)."""
    reader: ClassVar[str]
    """What produced the tokens, as the results tables say it (e.g. ``flow from noise``, ``CTC readout``)."""

    def tag(self) -> str:
        """The inference tag: names every setting that shapes the output."""

    def __call__(self, model: "ElfS2T", cond: torch.Tensor, cond_mask: torch.Tensor,
                 generator: Optional[torch.Generator]) -> torch.Tensor:
        """Token ids ``(B, L)`` for the condition ``cond (B, C, H)`` / ``cond_mask (B, C)``."""


#: ``decode.strategy`` -> the strategy class (its constructor takes the strategy's config, or nothing).
STRATEGIES: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: add a strategy to :data:`STRATEGIES` under its ``name``."""
    if cls.name in STRATEGIES:
        raise ValueError(f"decoding strategy {cls.name!r} is registered twice")
    STRATEGIES[cls.name] = cls
    return cls


def require_ctc(model_cfg, what: str) -> None:
    """Raise ValueError unless the model was trained with the auxiliary CTC (``what`` reads its draft)."""
    if model_cfg.ctc_weight <= 0:
        raise ValueError(f"{what} needs a model trained with the auxiliary CTC (elf.ctc_weight > 0)")


def fmt(value: float) -> str:
    """A number as tags write it (``0.8``, ``2``, ``0.05``)."""
    return f"{value:g}"
