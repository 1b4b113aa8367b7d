"""Optimiser and schedule from :class:`OptimConfig`.

Parameter split for ``name: muon`` (docs/design.md §2.3: Muon for every 2-D weight, Adam for the rest):
every trainable parameter with exactly 2 dimensions goes to Muon — linear maps, but also embedding
tables and the token head — unless its name contains one of ``adam_patterns``; everything else (biases, norm
gains, scalars, >2-D tensors such as the learned prefix tokens, shaped (1, n, H)) goes to Adam.
Set ``adam_patterns: [embed, token_head]`` to keep embeddings and heads on Adam, as some Muon
recipes do.

Learning rate: ``lr`` when given, else ``lr_per_256 * batch_size / 256`` with the global batch size
(samples per optimiser step, all processes and accumulation steps together). The schedule is warm-up, stable,
decay: the multiplier at optimiser step ``s`` (0-based) is ``min(1, (s + 1) / warmup_steps) * d(p)``, where ``p``
in [0, 1] is the run's progress (the trainer's: steps / max_steps or minutes / max_minutes, whichever is further)
and ``d`` is 1 until ``1 - decay_frac``, then falls linearly to ``min_lr_ratio`` at ``p = 1``. With
``decay_frac: 0`` (the default) the rate stays constant after the warm-up.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Literal, Optional

import torch
from torch import nn

from elfs2t.config import ConfigError, config_check
from elfs2t.optim.muon import Muon

log = logging.getLogger(__name__)

__all__ = ["OptimConfig", "resolve_lr", "split_params", "build_optimizer", "build_scheduler", "decay_factor", "OPTIMIZERS"]


@dataclass(kw_only=True)
class OptimConfig:
    """Optimiser, learning rate, schedule, clipping and EMA."""

    name: Literal["muon", "adamw", "adam"] = "muon"
    """muon: Muon for 2-D weights + Adam for the rest; adamw / adam: one torch optimiser for all."""
    lr: Optional[float] = None
    """Absolute learning rate; null: lr_per_256 x global batch / 256."""
    lr_per_256: float = 1e-3
    """Learning rate per 256 samples of global batch (used when lr is null)."""
    muon_lr: Optional[float] = None
    """Learning rate of the Muon groups; null: the same as lr."""
    momentum: float = 0.95
    """Muon momentum."""
    nesterov: bool = True
    """Nesterov momentum (with bias correction) in Muon."""
    ns_steps: int = 5
    """Newton-Schulz iterations in Muon."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam / AdamW betas (also Muon's Adam groups)."""
    eps: float = 1e-8
    """Adam epsilon."""
    weight_decay: float = 0.0
    """Decoupled weight decay (Muon, AdamW); L2 penalty for plain Adam."""
    adam_patterns: list[str] = field(default_factory=list)
    """Name substrings of 2-D parameters kept on Adam under muon (e.g. [embed, token_head])."""
    warmup_steps: int = 1000
    """Linear warm-up length in optimiser steps (0: none)."""
    decay_frac: float = 0.0
    """Final fraction of the run (steps or wall time, see TrainConfig) with a linear decay to min_lr_ratio x lr."""
    min_lr_ratio: float = 0.0
    """Learning-rate multiplier reached at the end of the decay."""
    clip: float = 1.0
    """Gradient-norm clipping threshold (0: no clipping)."""
    ema_decay: float = 0.9999
    """EMA decay of the weights used for evaluation (0: no EMA)."""
    ema_warmup: bool = True
    """Use min(ema_decay, (1 + n) / (10 + n)) at EMA update n, so short runs get a useful EMA."""

    def validate(self) -> None:
        config_check(self.lr is None or self.lr > 0, "lr", self.lr, "must be positive or null")
        config_check(self.lr_per_256 > 0, "lr_per_256", self.lr_per_256, "must be positive")
        config_check(self.muon_lr is None or self.muon_lr > 0, "muon_lr", self.muon_lr, "must be positive or null")
        config_check(0.0 <= self.momentum < 1.0, "momentum", self.momentum, "must be in [0, 1)")
        config_check(self.ns_steps >= 1, "ns_steps", self.ns_steps, "must be >= 1")
        config_check(all(0.0 <= b < 1.0 for b in self.betas), "betas", self.betas, "each must be in [0, 1)")
        config_check(self.eps > 0, "eps", self.eps, "must be positive")
        config_check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0")
        config_check(self.warmup_steps >= 0, "warmup_steps", self.warmup_steps, "must be >= 0")
        config_check(0.0 <= self.decay_frac <= 1.0, "decay_frac", self.decay_frac, "must be in [0, 1]")
        config_check(0.0 <= self.min_lr_ratio <= 1.0, "min_lr_ratio", self.min_lr_ratio, "must be in [0, 1]")
        config_check(self.clip >= 0, "clip", self.clip, "must be >= 0 (0 disables)")
        config_check(0.0 <= self.ema_decay < 1.0, "ema_decay", self.ema_decay, "must be in [0, 1)")


def resolve_lr(cfg: OptimConfig, batch_size: Optional[int] = None) -> float:
    """The base learning rate: ``cfg.lr``, or ``lr_per_256 * batch_size / 256``."""
    if cfg.lr is not None:
        return cfg.lr
    if batch_size is None or batch_size <= 0:
        raise ConfigError(
            f"optim.lr=None: give an absolute lr, or the global batch size (got {batch_size!r}) "
            "so that lr = lr_per_256 x batch / 256"
        )
    return cfg.lr_per_256 * batch_size / 256


def split_params(model: nn.Module, adam_patterns: list[str] = ()) -> tuple[list[tuple[str, nn.Parameter]], list[tuple[str, nn.Parameter]]]:
    """Trainable (name, param) pairs for Muon (2-D, not matching adam_patterns) and for Adam (the rest)."""
    muon, adam = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim == 2 and not any(pat in name for pat in adam_patterns):
            muon.append((name, p))
        else:
            adam.append((name, p))
    return muon, adam


def _build_muon(model: nn.Module, cfg: OptimConfig, lr: float) -> torch.optim.Optimizer:
    muon, adam = split_params(model, cfg.adam_patterns)
    muon_lr = cfg.muon_lr if cfg.muon_lr is not None else lr
    log.info("muon: %d matrices (%d values) on Muon lr %.3g, %d tensors (%d values) on Adam lr %.3g",
             len(muon), sum(p.numel() for _, p in muon), muon_lr, len(adam), sum(p.numel() for _, p in adam), lr)
    groups = []
    if muon:
        groups.append({"params": [p for _, p in muon], "use_muon": True, "lr": muon_lr})
    if adam:
        groups.append({"params": [p for _, p in adam], "use_muon": False, "lr": lr})
    return Muon(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov, ns_steps=cfg.ns_steps,
                betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)


def _build_adamw(model: nn.Module, cfg: OptimConfig, lr: float) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)


def _build_adam(model: nn.Module, cfg: OptimConfig, lr: float) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.Adam(params, lr=lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)


OPTIMIZERS = {"muon": _build_muon, "adamw": _build_adamw, "adam": _build_adam}
"""Registry: OptimConfig.name -> builder(model, cfg, lr)."""


def build_optimizer(model: nn.Module, cfg: OptimConfig, batch_size: Optional[int] = None) -> torch.optim.Optimizer:
    """One optimiser over the trainable parameters of ``model`` (unwrap DDP first or pass the wrapper)."""
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"build_optimizer: {type(model).__name__} has no trainable parameters")
    lr = resolve_lr(cfg, batch_size)
    return OPTIMIZERS[cfg.name](model, cfg, lr)


def decay_factor(progress: float, decay_frac: float, min_ratio: float) -> float:
    """1 before ``1 - decay_frac``, then linear to ``min_ratio`` at progress 1 (clamped to [0, 1])."""
    if decay_frac <= 0:
        return 1.0
    into = (min(max(progress, 0.0), 1.0) - (1.0 - decay_frac)) / decay_frac
    return 1.0 if into <= 0 else 1.0 - (1.0 - min_ratio) * into


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig,
                    progress: Optional[Callable[[int], float]] = None) -> torch.optim.lr_scheduler.LambdaLR:
    """Warm-up, stable, decay: multiplier ``min(1, (s + 1) / warmup_steps) * decay_factor(progress(s))``.

    ``progress(step)`` is the run's progress in [0, 1] (the trainer passes steps or wall time against its
    budget); without it there is no decay.
    """
    warmup = cfg.warmup_steps
    if cfg.decay_frac > 0 and progress is None:
        raise ValueError("build_scheduler: decay_frac > 0 needs progress(step), the run's progress in [0, 1]")

    def factor(step: int) -> float:
        warm = 1.0 if warmup <= 0 else min(1.0, (step + 1) / warmup)
        if progress is None:
            return warm
        return warm * decay_factor(progress(step), cfg.decay_frac, cfg.min_lr_ratio)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
