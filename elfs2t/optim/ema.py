"""Exponential moving average of a model's weights, used for evaluation.

At update ``n`` (1-based) every tracked float tensor moves as ``ema <- d ema + (1 - d) value`` with
``d = decay``, or ``d = min(decay, (1 + n) / (10 + n))`` when ``warmup`` is on. Tracked are the trainable
parameters and the floating-point buffers; integer buffers are copied. Frozen parameters never change,
so they are not shadowed (a frozen text encoder costs no memory here).

Evaluate with the averaged weights::

    with ema.swapped(model):
        valid_loss = evaluate(model)
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import Tensor, nn

__all__ = ["unwrap_model", "Ema"]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside DDP / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


class Ema:
    """Weight EMA of ``model`` (DDP-wrapped or not); shadows live on the model's device, in float32."""

    def __init__(self, model: nn.Module, decay: float = 0.9999, warmup: bool = False) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"Ema: decay={decay} must be in [0, 1)")
        self.decay = decay
        self.warmup = warmup
        self.num_updates = 0
        self.shadow: dict[str, Tensor] = {
            name: value.detach().clone().float() if value.is_floating_point() else value.detach().clone()
            for name, value in self._tracked(model)
        }

    @staticmethod
    def _tracked(model: nn.Module) -> Iterator[tuple[str, Tensor]]:
        model = unwrap_model(model)
        for name, p in model.named_parameters():
            if p.requires_grad:
                yield name, p
        for name, b in model.named_buffers():
            yield name, b

    def current_decay(self) -> float:
        """The decay the next update will use."""
        n = self.num_updates + 1
        return min(self.decay, (1.0 + n) / (10.0 + n)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the shadows toward the model's current weights."""
        d = self.current_decay()
        shadows, values = [], []
        for name, value in self._tracked(model):
            shadow = self.shadow.get(name)
            if shadow is None:
                raise KeyError(f"Ema.update: the model has a tensor '{name}' the EMA was not built with")
            if shadow.is_floating_point():
                shadows.append(shadow)
                values.append(value.detach().float())
            else:
                shadow.copy_(value)
        if shadows:  # ema + (1 - d) (value - ema) = d ema + (1 - d) value, in one fused pass
            torch._foreach_lerp_(shadows, values, 1.0 - d)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Write the EMA weights into ``model`` (in place, keeping the model's dtypes)."""
        for name, value in self._tracked(model):
            value.copy_(self.shadow[name].to(value.dtype))

    @contextlib.contextmanager
    def swapped(self, model: nn.Module) -> Iterator[nn.Module]:
        """Within the block, ``model`` holds the EMA weights; its own weights come back afterwards."""
        backup = {name: value.detach().clone() for name, value in self._tracked(model)}
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, value in self._tracked(model):
                    value.copy_(backup[name])

    def state_dict(self) -> dict[str, Any]:
        """Decay settings, update count and the shadow tensors."""
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates,
                "shadow": {k: v.clone() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; the tracked names must match."""
        missing = sorted(set(self.shadow) - set(state["shadow"]))
        unexpected = sorted(set(state["shadow"]) - set(self.shadow))
        if missing or unexpected:
            raise KeyError(f"Ema.load_state_dict: missing {missing[:5]}, unexpected {unexpected[:5]}")
        self.decay = state["decay"]
        self.warmup = state["warmup"]
        self.num_updates = state["num_updates"]
        for name, value in state["shadow"].items():
            self.shadow[name].copy_(value)
