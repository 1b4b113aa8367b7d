"""Training-loop configuration, and the part common to the stage-3 text pre-training configs."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from elfs2t.config import config_check
from elfs2t.optim.build import OptimConfig

__all__ = ["TrainConfig", "TextPretrainConfig"]


@dataclass(kw_only=True)
class TrainConfig:
    """Length, accumulation, intervals, precision, seeds and data-loading workers of a training run."""

    max_steps: int = 10000
    """Stop after this many optimiser steps (0: no step limit, max_epochs must be set)."""
    max_epochs: int = 0
    """Stop after this many passes over the training data (0: no epoch limit)."""
    max_minutes: float = 0.0
    """Wall-time budget of the run in minutes, the training time of resumed invocations included (checkpoints
    carry it); a checkpoint is written at the stop (0: none). The schedule (rate decay, ``begin_step`` curricula)
    follows the further of steps / max_steps and minutes / max_minutes: with a max_steps this machine reaches in
    time, the minutes are only a cap and a run repeats itself; once the clock leads, the trainer logs it."""
    grad_accum: int = 1
    """Batches per optimiser step (gradient accumulation)."""
    log_every: int = 50
    """Log averaged loss, stats, learning rate and throughput every this many steps."""
    valid_every: int = 1000
    """Validation loss (with EMA weights) and the on_validate hook every this many steps (0: only at the end)."""
    valid_max_batches: int = 0
    """Use at most this many validation batches per process (0: all)."""
    save_every: int = 1000
    """Write a checkpoint every this many steps (and always at the end)."""
    keep_last: int = 2
    """Keep this many checkpoint-<step>.pt files (>= 2 keeps the previous one); ``--average N`` (decode, export,
    ``elfs2t.load``) averages the last N of them."""
    keep_best: int = 0
    """Also keep the this many checkpoints with the lowest validation loss (``--average N --average-by best``;
    only checkpoints written at a validation step have one: make save_every a multiple of valid_every)."""
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """Autocast: auto = bfloat16 on CUDA, float32 on CPU."""
    seed: int = 1234
    """Seed of the initial weights (``elfs2t.bin.train``, ``pretrain_text``: the same on every
    process) and of the training randomness (each process adds its rank)."""
    num_workers: int = 0
    """DataLoader worker processes."""
    pin_memory: bool = False
    """Pin host memory of batches (CUDA)."""
    find_unused_parameters: bool = False
    """DDP: allow parameters that get no gradient in a step."""
    progress: bool = True
    """Show a tqdm progress bar (main process)."""

    def validate(self) -> None:
        for key in ("max_steps", "max_epochs", "valid_every", "valid_max_batches", "num_workers", "keep_best"):
            value = getattr(self, key)
            config_check(value >= 0, key, value, "must be >= 0")
        config_check(self.max_steps > 0 or self.max_epochs > 0, "max_steps", self.max_steps,
                     "set max_steps or max_epochs (both are 0: training would never stop)")
        config_check(self.max_minutes >= 0, "max_minutes", self.max_minutes, "must be >= 0")
        for key in ("grad_accum", "log_every", "save_every", "keep_last"):
            value = getattr(self, key)
            config_check(value >= 1, key, value, "must be >= 1")


@dataclass(kw_only=True)
class TextPretrainConfig:
    """Common part of the stage-3 pre-training configs on a text corpus (the text ELF).

    A subclass gives ``model`` its type (it stays the first key of the dumped config) and may add
    sections; optimiser, loop, batch size and the periodic samples, and their checks, are shared.
    """

    model: Any = None
    """The model section; its type is set by the subclass."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimiser, schedule, clipping, EMA."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Loop length, logging/validation/checkpoint intervals; samples are logged at every validation."""
    batch_size: int = 64
    """Sentences per batch."""
    num_samples: int = 4
    """Sentences sampled (with the EMA weights) and logged at every validation."""

    def validate(self) -> None:
        config_check(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        config_check(self.num_samples >= 0, "num_samples", self.num_samples, "must be >= 0")
