"""ELF-S2T's decoding strategies, one module each, behind a registry keyed by ``decode.strategy``.

| strategy | tokens from | config |
|---|---|---|
| ``flow`` | the flow from noise (the paper's generator): N steps, CFG g; slots / length from the CTC alignment for models trained with ``text_positions: ctc`` (of the draft that ``slot_draft`` names: greedy by default) | ``decode.flow`` |
| ``readout`` | the text slots' token head on pure noise, no flow step (the baseline the flow must beat) | ``decode.readout`` |
| ``draft`` | the CTC readout of the audio slots: greedy, or prefix beam search (optionally fused with the experiment's token n-gram) | ``decode.draft`` |
| ``refine`` | the CTC draft put on the flow's path at ``t_start`` and moved by the flow | ``decode.refine`` |
| ``rescore`` | the CTC draft and its one-token variants scored by the CTC and the text slots | ``decode.rescore`` |

:func:`build_decoding` makes the strategy that a :class:`DecodingConfig` names, for a model's config.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from elfs2t.config import config_check
from elfs2t.s2t.decoding.base import STRATEGIES, Decoding
from elfs2t.s2t.decoding.draft import DraftConfig, DraftDecoding
from elfs2t.s2t.decoding.flow import FlowDecodeConfig, FlowDecoding
from elfs2t.s2t.decoding.readout import ReadoutConfig, ReadoutDecoding
from elfs2t.s2t.decoding.refine import RefineConfig, RefineDecoding
from elfs2t.s2t.decoding.rescore import RescoreConfig, RescoreDecoding

__all__ = ["STRATEGIES", "Decoding", "DecodingConfig", "build_decoding", "FlowDecodeConfig", "ReadoutConfig",
           "RefineConfig", "RescoreConfig", "DraftConfig", "DraftDecoding", "FlowDecoding", "ReadoutDecoding",
           "RefineDecoding", "RescoreDecoding"]


@dataclass(kw_only=True)
class DecodingConfig:
    """ELF-S2T decoding: the strategy and each strategy's settings (only the chosen one's are used)."""

    strategy: str = "flow"
    """A key of :data:`STRATEGIES`: flow, readout, draft, refine, rescore."""
    flow: FlowDecodeConfig = field(default_factory=FlowDecodeConfig)
    """``strategy: flow``: sampler settings and slots."""
    readout: ReadoutConfig = field(default_factory=ReadoutConfig)
    """``strategy: readout``: slots."""
    draft: DraftConfig = field(default_factory=DraftConfig)
    """``strategy: draft``: greedy or prefix beam search, with or without the n-gram."""
    refine: RefineConfig = field(default_factory=RefineConfig)
    """``strategy: refine``: sampler settings, t_start, threshold."""
    rescore: RescoreConfig = field(default_factory=RescoreConfig)
    """``strategy: rescore``: threshold, levels, draws."""

    def validate(self) -> None:
        config_check(self.strategy in STRATEGIES, "strategy", self.strategy, f"must be one of {sorted(STRATEGIES)}")


def build_decoding(cfg: DecodingConfig, model_cfg) -> Decoding:
    """The strategy ``cfg.strategy`` with its settings, for a model of config ``model_cfg`` (ElfS2TConfig)."""
    return STRATEGIES[cfg.strategy](getattr(cfg, cfg.strategy, None), model_cfg)
