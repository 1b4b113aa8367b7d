"""Muon: momentum orthogonalised by Newton-Schulz, with Adam for the parameters Muon does not suit.

One :class:`Muon` object holds both kinds of parameter groups (``use_muon=True`` / ``False``), so a
training loop sees a single optimiser whose ``state_dict`` / ``load_state_dict`` round-trip as usual.

Muon update for a 2-D weight ``W`` of shape ``(fan_out, fan_in)`` with gradient ``G`` (step ``t``)::

    m_t   = beta m_{t-1} + (1 - beta) G                    # momentum buffer (beta = 0.95)
    m_hat = m_t / (1 - beta^t)                              # bias correction
    u     = beta m_hat + (1 - beta) G    (Nesterov)   or   m_hat
    O     = NS5(u)                                          # ~ U V^T of u's SVD
    W    <- W - lr (sqrt(max(1, fan_out / fan_in)) O + weight_decay W)

Adam groups use the usual bias-corrected Adam with decoupled weight decay (AdamW form).
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import torch
from torch import Tensor

__all__ = ["NS_COEFFS", "newton_schulz", "muon_scale", "Muon"]

NS_COEFFS: tuple[float, float, float] = (3.4445, -4.7750, 2.0315)
"""Quintic coefficients (a, b, c) of the Newton-Schulz iteration X <- a X + b (X X^T) X + c (X X^T)^2 X."""


def newton_schulz(g: Tensor, steps: int = 5, eps: float = 1e-7, dtype: torch.dtype | None = None) -> Tensor:
    """Approximately orthogonalise a matrix: map ``g = U S V^T`` to about ``U S' V^T`` with S' in ~[0.7, 1.2].

    g: (..., m, n). Runs in ``dtype`` (default bfloat16 on CUDA, float32 elsewhere) and returns g's dtype.
    The quintic's coefficients trade exact convergence for speed: singular values land in a band around 1,
    not on 1 exactly.
    """
    if g.ndim < 2:
        raise ValueError(f"newton_schulz needs a matrix, got shape {tuple(g.shape)}")
    a, b, c = NS_COEFFS
    if dtype is None:
        dtype = torch.bfloat16 if g.is_cuda else torch.float32
    x = g.to(dtype)
    transposed = g.size(-2) > g.size(-1)
    if transposed:  # iterate on the wide orientation: X X^T is the smaller Gram matrix
        x = x.mT
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + eps)  # spectral norm <= Frobenius norm <= 1
    for _ in range(steps):
        gram = x @ x.mT  # (..., m, m)
        poly = b * gram + c * (gram @ gram)
        x = a * x + poly @ x
    if transposed:
        x = x.mT
    return x.to(g.dtype)


def muon_scale(shape: torch.Size | tuple[int, ...]) -> float:
    """Update scale ``sqrt(max(1, fan_out / fan_in))`` for a weight of shape ``(fan_out, fan_in, ...)``."""
    fan_out = shape[0]
    fan_in = math.prod(shape[1:])
    return math.sqrt(max(1.0, fan_out / fan_in))


class Muon(torch.optim.Optimizer):
    """Muon for ``use_muon=True`` groups (matrices), Adam for ``use_muon=False`` groups, in one optimiser.

    Args:
        params: parameter groups (dicts with ``params`` and ``use_muon``; other keys override the defaults).
            A plain iterable of tensors is one Muon group.
        lr: learning rate of Muon groups (and default of Adam groups).
        momentum: Muon momentum beta.
        nesterov: Nesterov momentum for Muon.
        ns_steps: Newton-Schulz iterations.
        betas, eps: Adam moments and epsilon (Adam groups).
        weight_decay: decoupled weight decay (both kinds).
        ns_dtype: dtype of the Newton-Schulz iteration (None: bfloat16 on CUDA, float32 elsewhere).

    Muon parameters of more than 2 dimensions are flattened to ``(shape[0], -1)``.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        *,
        lr: float = 1e-3,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_steps: int = 5,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        ns_dtype: torch.dtype | None = None,
    ) -> None:
        if lr < 0:
            raise ValueError(f"Muon: lr={lr} must be >= 0")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"Muon: momentum={momentum} must be in [0, 1)")
        defaults = dict(
            lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps, betas=tuple(betas), eps=eps,
            weight_decay=weight_decay, use_muon=True,
        )
        super().__init__(params, defaults)
        self.ns_dtype = ns_dtype
        for group in self.param_groups:
            if group["use_muon"]:
                for p in group["params"]:
                    if p.ndim < 2:
                        raise ValueError(
                            f"Muon: a use_muon group holds a parameter of shape {tuple(p.shape)}; "
                            "put vectors and scalars in a use_muon=False (Adam) group"
                        )

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        """One update of every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group["use_muon"]:
                self._muon_group(group)
            else:
                self._adam_group(group)
        return loss

    def _muon_group(self, group: dict[str, Any]) -> None:
        beta = group["momentum"]
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = p.grad.float()
            state = self.state[p]
            if not state:
                state["step"] = torch.zeros((), dtype=torch.float32)
                state["momentum_buffer"] = torch.zeros_like(p, dtype=torch.float32)
            state["step"] += 1
            t = int(state["step"].item())
            buf = state["momentum_buffer"]
            buf.mul_(beta).add_(grad, alpha=1.0 - beta)
            m_hat = buf / (1.0 - beta**t)
            update = grad.mul(1.0 - beta).add_(m_hat, alpha=beta) if group["nesterov"] else m_hat
            ortho = newton_schulz(update.reshape(update.size(0), -1), steps=group["ns_steps"], dtype=self.ns_dtype)
            ortho = ortho.view_as(p).to(p.dtype)
            if group["weight_decay"]:
                p.mul_(1.0 - group["lr"] * group["weight_decay"])
            p.add_(ortho, alpha=-group["lr"] * muon_scale(p.shape))

    def _adam_group(self, group: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = p.grad.float()
            state = self.state[p]
            if not state:
                state["step"] = torch.zeros((), dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
                state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
            state["step"] += 1
            t = int(state["step"].item())
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            exp_avg.mul_(beta1).add_(grad, alpha=1.0 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
            denom = (exp_avg_sq / (1.0 - beta2**t)).sqrt_().add_(group["eps"])
            update = (exp_avg / (1.0 - beta1**t)) / denom
            if group["weight_decay"]:
                p.mul_(1.0 - group["lr"] * group["weight_decay"])
            p.add_(update.to(p.dtype), alpha=-group["lr"])
