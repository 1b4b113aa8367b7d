"""Time distributions and sampling grids of the flow (docs/design.md §2.3, §2.4).

t = 0 is noise, t = 1 is data. Training draws ``t = sigmoid(n)``, ``n ~ N(mean, std^2)`` (ELF: mean -1.5,
std 0.8, biased toward noise); sampling walks a grid of ``steps + 1`` increasing times from 0 to 1.
"""
from __future__ import annotations

from typing import Literal, Optional

import torch

__all__ = ["sample_logit_normal", "time_grid"]


def sample_logit_normal(
    shape: int | tuple[int, ...],
    mean: float,
    std: float,
    *,
    generator: Optional[torch.Generator] = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``sigmoid(n)`` with ``n ~ N(mean, std^2)``; drawn on the generator's device (CPU), moved to ``device``."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    n = torch.randn(shape, generator=generator) * std + mean
    return torch.sigmoid(n).to(device)


def time_grid(
    steps: int,
    kind: Literal["logit_normal", "uniform"] = "logit_normal",
    *,
    mean: float = -1.5,
    std: float = 0.8,
    seed: int = 0,
) -> torch.Tensor:
    """Increasing times ``(steps + 1,)`` (float64) with ``grid[0] = 0`` and ``grid[-1] = 1``.

    ``logit_normal`` (ELF): ``steps - 1`` sorted draws from the training time distribution (seeded, so a
    given seed always gives the same grid) plus 0 and 1; ``uniform``: ``linspace(0, 1, steps + 1)``.
    """
    if steps < 1:
        raise ValueError(f"time_grid: steps={steps} must be >= 1")
    if kind == "uniform":
        return torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    if kind != "logit_normal":
        raise ValueError(f"time_grid: unknown kind {kind!r} (logit_normal | uniform)")
    gen = torch.Generator().manual_seed(seed)
    inner = torch.sigmoid(torch.randn(steps - 1, generator=gen, dtype=torch.float64) * std + mean)
    inner, _ = torch.sort(inner)
    return torch.cat([torch.zeros(1, dtype=torch.float64), inner, torch.ones(1, dtype=torch.float64)])
