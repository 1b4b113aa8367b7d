"""What the stages, ``elfs2t.load`` and the export need to know about one model type.

A :class:`ModelKind` builds its model from an :class:`~elfs2t.experiment.ExperimentConfig`, says how its texts are
cased, prepares it on the training texts, and decodes batches (the batch dict of docs/contracts.md) into ranked
hypotheses (:class:`Hyp`). It also answers what the stages would otherwise ask of the model's type: the decode
folder's tag and what ``timing.json`` records of the decoding, the extra decodings of each validation, whether the
training needs every parameter to get gradients, the CFG scale that the audio-reliance sweep varies, the word
spaces the error analysis reads, and the names and columns of the results table. Optional abilities -- word timestamps, n-best lists -- raise a one-line
:class:`~elfs2t.config.ConfigError` naming what the model lacks. A kind that names frozen pieces loaded from
outside its weights (a text encoder, a tokenizer) lists their config keys, so an export can replace machine paths
by portable references (:mod:`elfs2t.inference.export`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import torch
from torch import nn

from elfs2t.config import ConfigError

if TYPE_CHECKING:
    from elfs2t.experiment import ExperimentConfig

__all__ = ["Hyp", "Word", "ModelSpaces", "ModelKind", "DecodeFn"]


@dataclass
class Hyp:
    """One hypothesis of an utterance."""

    text: str
    """The decoded text."""
    score: Optional[float] = None
    """The model's score (higher is better: a log-likelihood, see the kind); None where it has none."""
    full: bool = False
    """The text reached the model's text limit (text slots, or the generation limit): it may be cut."""


@dataclass
class Word:
    """A word of a hypothesis and where it sits in the audio."""

    word: str
    start: float
    """Seconds from the start of the audio."""
    end: float
    """Seconds from the start of the audio (after ``start``)."""
    conf: float
    """Mean of its tokens' highest CTC posteriors."""


@dataclass
class ModelSpaces:
    """The word spaces a trained model holds, for the error analysis (:mod:`elfs2t.analysis.sources`)."""

    latent: Optional[Any]
    """Its own text latent space (a :class:`~elfs2t.text.latent.TextLatentSpace`); None: it has none, the analysis
    needs a text encoder of its own."""
    latent_note: str
    """What the analysis says of that latent space: whose it is, or that the model has none."""
    tokenizer: Any
    """The tokenizer of the token embedding."""
    token_weight: torch.Tensor
    """The token embedding table ``(V, d)`` (or ``(K, d)`` with ``token_ids``)."""
    token_source: str
    """What the table is (shown in the analysis' reports)."""
    token_ids: Optional[torch.Tensor] = None
    """``(K,)``: the token ids of the table's rows when it holds only some; None: row ``i`` is token id ``i``."""


DecodeFn = Callable[[dict], list[list[Hyp]]]
"""``batch -> per row, its hypotheses, best first`` (the first is what stage 5 writes)."""


class ModelKind:
    """One model type: a subclass per type, registered in :data:`elfs2t.experiment.MODELS`."""

    name: str = ""
    """The ``model:`` value of an experiment config."""
    section_key: str = ""
    """The config section of the model's own settings (``elf``, ``ar``)."""
    title: str = ""
    """Its name in the results table (``ELF-S2T``, ``AR``)."""
    display_name: str = ""
    """Its name on an exported model's card."""
    backbone_key: str = ""
    """Dotted config key of the pre-trained model it starts from (a stage-3 exp dir or a file in one), whose
    training time the results table shows."""
    table_settings: tuple[str, ...] = ()
    """The decoding settings of the results table (``steps``, ``guidance``, ``beam_size``) that it has: the others
    are left empty even where a dumped ``decode_config.yaml`` holds a default for them."""

    def __call__(self, cfg: "ExperimentConfig") -> nn.Module:
        return self.build(cfg)

    def build(self, cfg: "ExperimentConfig") -> nn.Module:
        """The model, trainable parts initialised per ``cfg.init``."""
        raise NotImplementedError

    def section(self, cfg: "ExperimentConfig") -> Any:
        return getattr(cfg, self.section_key)

    def lowercase(self, cfg: "ExperimentConfig") -> bool:
        """Targets are lower-cased (hypotheses are scored against lower-cased references)."""
        return bool(self.section(cfg).lowercase)

    def prepare(self, model: nn.Module, cfg: "ExperimentConfig", train_texts: list[str]) -> None:
        """Fix what the model takes from its training texts before training (nothing by default)."""

    def decode_fn(self, model: nn.Module, cfg: "ExperimentConfig", generator: torch.Generator,
                  nbest: int = 1) -> DecodeFn:
        """Decoding with ``cfg.decode``: up to ``nbest`` hypotheses per row; ``generator`` draws the sampling
        noise (the same draws as stage 5 for the same batches)."""
        raise NotImplementedError

    def decode_tag(self, cfg: "ExperimentConfig") -> str:
        """The folder tag of ``cfg.decode`` for this model, before the audio-diagnostic suffix
        (:func:`elfs2t.experiment.decode_tag`)."""
        raise NotImplementedError

    def decode_record(self, cfg: "ExperimentConfig") -> dict[str, Any]:
        """What stage 5's ``timing.json`` records of ``cfg.decode`` (:func:`elfs2t.results.decode_info`): the
        ``reader`` (which part of the model produced the tokens) and the settings the results table shows."""
        raise NotImplementedError

    def valid_decodings(self, cfg: "ExperimentConfig") -> dict[str, "ExperimentConfig"]:
        """The decodings besides ``cfg.decode`` whose WER on the dev examples each validation logs
        (``wer_<name>``), each as the experiment config to decode with (none by default)."""
        return {}

    def has_ctc_warmup(self, cfg: "ExperimentConfig") -> bool:
        """Training starts with steps that leave part of the model without gradients (so DDP needs
        ``train.find_unused_parameters``)."""
        return False

    def guidance_section(self, cfg: "ExperimentConfig") -> Any:
        """The settings section of ``cfg.decode`` that holds the CFG scale (``guidance``) the audio-reliance sweep
        varies; None when this decoding takes none."""
        return None

    def word_spaces(self, model: nn.Module, cfg: "ExperimentConfig") -> Optional[ModelSpaces]:
        """The word spaces of a trained model for the error analysis; None: none defined for this type."""
        return None

    def word_times(self, model: nn.Module, cfg: "ExperimentConfig", batch: dict, texts: list[str],
                   frame_shift: float) -> list[Optional[list[Word]]]:
        """Per row, the words of ``texts[b]`` with their times (``frame_shift``: seconds per encoder frame); None
        for a row that cannot be aligned."""
        raise ConfigError(f"model={self.name}: has no alignment to time words with (CTM); "
                          "ELF-S2T trained with the auxiliary CTC (elf.ctc_weight > 0) has")

    def loads_from(self, cfg: "ExperimentConfig") -> dict[str, Optional[str]]:
        """``{dotted config key: value}`` of every hub id or path the model's build reads (besides its weights)."""
        return {}

    def frozen_models(self, cfg: "ExperimentConfig") -> dict[str, Optional[str]]:
        """The part of :meth:`loads_from` that an export references by name (frozen pre-trained models) instead of
        copying."""
        return {}

    def frozen_fingerprints(self, model: nn.Module, cfg: "ExperimentConfig") -> dict[str, str]:
        """``{dotted key of frozen_models: fingerprint of the loaded weights}`` (:mod:`elfs2t.fingerprint`)."""
        return {}

    def portable(self, model: nn.Module, cfg: "ExperimentConfig", out_dir: Path) -> dict[str, str]:
        """Copy into ``out_dir`` what the model needs at load time that is neither its weights nor a frozen
        model referenced by name (e.g. a recipe-trained tokenizer); returns ``{dotted key: path relative to
        out_dir}`` to put in the exported config."""
        return {}

    def build_for_weights(self, cfg: "ExperimentConfig") -> nn.Module:
        """The model's structure, to load trained weights into (no initialisation from other checkpoints)."""
        return self.build(cfg)
