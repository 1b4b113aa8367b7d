"""The top-level speech-to-text experiment config (stages 4-5) and the model registry.

One YAML file per experiment composes the per-concern configs::

    model: elf_s2t            # or "ar": a key of MODELS
    elf: {...}                # ElfS2TConfig  (used when model == elf_s2t)
    ar: {...}                 # ArConfig      (used when model == ar)
    init: {...}               # where the denoiser / LM starts from
    data: {...}               # DataConfig: train / valid manifests, batching
    optim: {...}              # OptimConfig
    train: {...}              # TrainConfig
    decode: {...}             # DecodeConfig

Adding a model is adding a :class:`~elfs2t.kinds.base.ModelKind` to :data:`MODELS`, not editing the stages.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Literal, Optional

import torch
from torch import nn

from elfs2t.config import ANY, config_check
from elfs2t.data.dataset import SetSpec
from elfs2t.kinds.ar import ArKind
from elfs2t.kinds.base import ModelKind
from elfs2t.kinds.elf_s2t import ElfS2TKind
from elfs2t.baselines.ar import ArConfig
from elfs2t.s2t.elf_s2t import ElfS2TConfig
from elfs2t.optim.build import OptimConfig
from elfs2t.s2t.decoding import STRATEGIES, DecodingConfig
from elfs2t.train.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class DataConfig:
    """Training / validation manifests and batching."""

    train: list[SetSpec] = field(default_factory=list)
    """Training sets (cuts with cached features) and their targets."""
    valid: list[SetSpec] = field(default_factory=list)
    """Validation sets (loss and a few decoded examples during training)."""
    max_duration: float = 200.0
    """Seconds of audio per batch (per process) for the dynamic bucketing sampler."""
    num_buckets: int = 10
    """Duration buckets of the sampler."""
    max_utt_duration: float = 30.0
    """Utterances longer than this are dropped (counted in the log)."""
    shuffle: bool = True
    """Shuffle training batches."""

    def validate(self) -> None:
        config_check(self.max_duration > 0, "max_duration", self.max_duration, "must be positive")


@dataclass(kw_only=True)
class InitConfig:
    """Where trainable parts start from."""

    denoiser: Optional[str] = None
    """ELF-S2T: a stage-3 exp dir (ours), or a released ELF checkpoint (file, dir or hub id); None: scratch."""
    strict: bool = True
    """Refuse checkpoints whose keys or shapes do not match the model."""


@dataclass(kw_only=True)
class DecodeConfig(DecodingConfig):
    """Stage-5 decoding: ELF-S2T's strategy and its settings (:class:`~elfs2t.s2t.decoding.DecodingConfig`), the AR
    baseline's search, and what every model shares."""

    RETIRED: ClassVar[dict] = {"sampler": (ANY, "replaced by decode.strategy and its sections (decode.flow, "
                                                "decode.refine, decode.rescore); decoding settings never change the "
                                                "trained weights, so an old experiment's stored value is ignored")}
    beam_size: int = 1
    """AR baseline: beam size (1 = greedy)."""
    max_new_tokens: int = 64
    """AR baseline: longest hypothesis in tokens."""
    max_duration: float = 200.0
    """Seconds of audio per decoding batch."""
    use_ema: bool = True
    """Decode with the EMA weights."""
    audio: Literal["real", "zero", "noise", "swap"] = "real"
    """Audio-reliance diagnostics: decode the real features, zeros, Gaussian noise of the utterance's mean/std, or
    another utterance's features (elfs2t.analysis.audio)."""
    valid_strategies: list[str] = field(default_factory=list)
    """ELF-S2T: strategies (each with its section's settings) whose WER on the dev examples decoded at every
    validation is logged beside ``strategy``'s (``wer_<strategy>`` in train.log, for the learning curves)."""

    def validate(self) -> None:
        super().validate()
        bad = [s for s in self.valid_strategies if s not in STRATEGIES]
        config_check(not bad, "valid_strategies", self.valid_strategies, f"must be among {sorted(STRATEGIES)}")


@dataclass(kw_only=True)
class ExperimentConfig:
    """A stage-4/5 experiment: model, data, optimisation, training and decoding."""

    model: str = "elf_s2t"
    """Model type, a key of elfs2t.experiment.MODELS ("elf_s2t" or "ar")."""
    elf: ElfS2TConfig = field(default_factory=ElfS2TConfig)
    """ELF-S2T settings (model == elf_s2t)."""
    ar: ArConfig = field(default_factory=ArConfig)
    """AR speech-LLM settings (model == ar)."""
    init: InitConfig = field(default_factory=InitConfig)
    """Initialisation of the trainable parts."""
    data: DataConfig = field(default_factory=DataConfig)
    """Manifests and batching."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimiser and schedule."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Training loop."""
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    """Decoding."""

    def validate(self) -> None:
        config_check(self.model in MODELS, "model", self.model, f"must be one of {sorted(MODELS)}")
        check_tasks(self)


def task_tokens(cfg: ExperimentConfig) -> list[str]:
    """The task tokens of the configured model (``elf.tasks`` / ``ar.tasks``)."""
    return model_kind(cfg).section(cfg).tasks


def check_tasks(cfg: ExperimentConfig) -> None:
    """Raise ConfigError unless the model has a task token for every task of ``data.train`` / ``data.valid``: with
    task tokens configured, each set's task must be one of them; without, the training sets must share one task
    (a model without task tokens could not tell a transcript row from a translation row)."""
    tasks = task_tokens(cfg)
    key = f"{model_kind(cfg).section_key}.tasks"
    for name in ("train", "valid"):
        for i, spec in enumerate(getattr(cfg.data, name)):
            config_check(not tasks or spec.task_name in tasks, f"data.{name}[{i}].task", spec.task_name,
                         f"is not one of the model's tasks {tasks} ({key})")
    train_tasks = sorted({spec.task_name for spec in cfg.data.train})
    config_check(tasks or len(train_tasks) <= 1, key, tasks,
                 f"data.train mixes the tasks {train_tasks}: list them here, so that each row gets its task token")


def check_for_ddp(cfg: ExperimentConfig, world_size: int) -> None:
    """Raise ConfigError for settings that DDP over ``world_size`` processes cannot train: a CTC warm-up
    (``elf.ctc_warmup``) leaves the text path without gradients in its steps, so it needs
    ``train.find_unused_parameters``. One process trains either way (and decoding never cares)."""
    warmup = model_kind(cfg).has_ctc_warmup(cfg)
    config_check(world_size <= 1 or not warmup or cfg.train.find_unused_parameters, "train.find_unused_parameters",
                 cfg.train.find_unused_parameters, f"must be true with elf.ctc_warmup > 0 under DDP ({world_size} "
                 "processes): the warm-up steps leave the text path without gradients")


MODELS: dict[str, ModelKind] = {kind.name: kind for kind in (ElfS2TKind(), ArKind())}
"""The model registry: ``model:`` value -> its :class:`~elfs2t.kinds.base.ModelKind` (called with a config, it
builds the model)."""


def model_kind(cfg: ExperimentConfig) -> ModelKind:
    """The registry entry of ``cfg.model``."""
    return MODELS[cfg.model]


def build_model(cfg: ExperimentConfig) -> nn.Module:
    """Build the model named by ``cfg.model`` (trainable parts initialised per ``cfg.init``)."""
    model = MODELS[cfg.model](cfg)
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("built %s with %.2fM trainable parameters", cfg.model, n / 1e6)
    return model


def batch_seed(seed: int, cut_ids: list[str]) -> int:
    """The seed of a decoding batch's sampler noise, from ``seed`` and the batch's cut ids: the noise a batch gets
    does not depend on the batches decoded before it, so N decoding processes (each a share of the batches) give
    the hypotheses of one, and ``elfs2t.load(...).transcribe`` gives stage 5's for the same batches."""
    digest = hashlib.sha256("\n".join([str(seed), *cut_ids]).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def decode_tag(cfg: ExperimentConfig) -> str:
    """Folder name ``decode_<tag>`` of ``cfg.decode`` for this experiment's model: ELF-S2T's strategy tag
    (:mod:`elfs2t.s2t.decoding`), the AR baseline's ``beam<N>``; ``_audio<mode>`` appended unless ``audio`` is real."""
    audio = "" if cfg.decode.audio == "real" else f"_audio{cfg.decode.audio}"
    return model_kind(cfg).decode_tag(cfg) + audio


def hypothesis_fn(model: nn.Module, cfg: ExperimentConfig, seed: int = 0) -> Callable[[dict], list[str]]:
    """``batch -> hypotheses`` for :func:`elfs2t.decode.decode_cuts`; the sampler noise of a batch is seeded by
    ``seed`` and its cut ids (:func:`batch_seed`).

    The batch features first go through ``cfg.decode.audio`` (:class:`elfs2t.analysis.audio.AudioTransform`;
    ``real`` leaves them as they are), so the audio-reliance diagnostics hold for every model type.
    """
    from elfs2t.analysis.audio import AudioTransform

    audio = AudioTransform(cfg.decode.audio, seed=seed)
    gen = torch.Generator()  # sampler noise is drawn on CPU: device-independent results
    decode = MODELS[cfg.model].decode_fn(model, cfg, gen)

    def hypotheses(batch: dict) -> list[str]:
        gen.manual_seed(batch_seed(seed, batch["cut_ids"]))
        return [hyps[0].text for hyps in decode(audio(batch))]
    return hypotheses
