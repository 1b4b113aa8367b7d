"""ELF samplers (DESIGN §2.4): Euler ODE / churned SDE over a time grid, CFG, self-cond guidance, decoding.

Start ``z = sigma_n eps`` at t = 0 and ``c = 0``; for each grid step ``t -> t_next`` (``h = t_next - t``):

* ``ode``: ``x_hat = F(z, t, c)``, ``v = (x_hat - z) / max(1 - t, t_clamp)``, ``z <- z + h v``;
* ``sde`` (churn ``gamma``): ``alpha = clip(1 - gamma h, 0, 1)``, go back to ``t_b = alpha t`` with
  ``z_b = alpha z + (1 - alpha) sigma_n eps``, then the Euler step from ``t_b`` to ``t_next``
  (``h_b = t_next - t_b``). Check: if ``z = t x + (1 - t) sigma_n e1``, then ``z_b`` has signal ``alpha t x =
  t_b x`` and noise coefficients summing to ``alpha (1 - t) + (1 - alpha) = 1 - t_b``, i.e. ``z_b`` is on the
  path at ``t_b`` when the two noises coincide; with independent noises its noise std is
  ``sigma_n sqrt(alpha^2 (1 - t)^2 + (1 - alpha)^2) <= sigma_n (1 - t_b)``, slightly less noisy than the
  marginal at ``t_b`` (ELF's formula, kept as is). ``gamma = 0`` gives ``alpha = 1``: exactly the ODE step;
* the last step (to t = 1) is always an ODE step; when ``1 - t >= t_clamp`` it lands exactly on ``x_hat``;
* after each step ``c <- x_hat`` (the guided one); the self-cond guidance scale ``w`` goes in through the
  guidance tokens and costs no extra forward (``w = 1``: no self-cond guidance);
* classifier-free guidance with scale ``g``: ``v = v_u + g (v_c - v_u)`` and ``x_hat = x_u + g (x_c - x_u)``,
  the unconditional branch having zeros in the condition slots; both branches run in one batched forward.
  ``g = 1`` (or no condition) runs the conditional branch only.

Decoding: one forward in decoding mode at t = 1 (self-cond zeros, guidance 1) on the final ``z`` — or on the
last guided ``x_hat`` (``decode_from: x_hat``) — then argmax; cutting at the first EOS is
``TextLatentSpace.decode``'s job.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch
from torch import nn

from elfs2t.config import config_check
from elfs2t.flow.objective import velocity
from elfs2t.flow.time import time_grid

__all__ = ["SamplerConfig", "guided_forward", "sample_latents", "decode_tokens", "generate_ids"]


@dataclass(kw_only=True)
class SamplerConfig:
    """How to sample text latents from the denoiser and decode them."""

    steps: int = 32
    """Number of denoising steps N (N network forwards, plus one decoding forward)."""
    method: Literal["ode", "sde"] = "ode"
    """Euler ODE steps, or SDE steps with churn gamma (the last step is always ODE)."""
    gamma: float = 0.0
    """SDE churn: alpha = clip(1 - gamma h, 0, 1) per step of size h."""
    grid: Literal["logit_normal", "uniform"] = "logit_normal"
    """Time grid: N-1 sorted draws of the training time distribution plus 0 and 1, or uniform."""
    t_mean: float = -1.5
    """Mean of n in t = sigmoid(n) for the logit_normal grid (the training value)."""
    t_std: float = 0.8
    """Standard deviation of n for the logit_normal grid."""
    guidance: float = 1.0
    """Classifier-free guidance scale g (1: conditional only, no extra forward)."""
    self_cond_scale: float = 1.0
    """Self-conditioning guidance scale w fed to the guidance tokens (1: none)."""
    sigma_n: float = 2.0
    """Noise scale of the start z = sigma_n eps and of SDE churn (the training sigma_n)."""
    t_clamp: float = 0.05
    """Velocities divide by max(1 - t, t_clamp) (the training value)."""
    decode_from: Literal["z", "x_hat"] = "z"
    """Decode the final z (ELF) or the last guided x_hat."""
    seed: int = 0
    """Seed of the logit_normal grid, and of the start and churn noise when no generator is given."""

    def validate(self) -> None:
        config_check(self.steps >= 1, "steps", self.steps, "must be >= 1")
        config_check(self.gamma >= 0, "gamma", self.gamma, "must be >= 0")
        config_check(self.t_std > 0, "t_std", self.t_std, "must be > 0")
        config_check(self.sigma_n > 0, "sigma_n", self.sigma_n, "must be > 0")
        config_check(0 < self.t_clamp <= 1, "t_clamp", self.t_clamp, "must be in (0, 1]")
        config_check(self.self_cond_scale > 0, "self_cond_scale", self.self_cond_scale, "must be > 0")


def guided_forward(
    denoiser: nn.Module,
    z: torch.Tensor,
    t: torch.Tensor,
    c: torch.Tensor,
    w: torch.Tensor,
    *,
    guidance: float = 1.0,
    cond: Optional[torch.Tensor] = None,
    cond_mask: Optional[torch.Tensor] = None,
    text_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """CFG-guided ``x_hat (B, L, d)``: ``x_u + g (x_c - x_u)`` from ONE forward over ``2B`` rows.

    Guiding ``x_hat`` is the same as guiding ``v`` (``v`` is affine in ``x_hat`` for fixed ``z, t``).
    With ``g == 1`` or no condition only the conditional branch runs.
    """
    if cond is None or guidance == 1.0:
        return denoiser(z, t, self_cond=c, guidance=w, decode=None, cond=cond, cond_mask=cond_mask,
                        text_mask=text_mask).x_hat
    B = z.shape[0]

    def two(v: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        return None if v is None else torch.cat([v, v], dim=0)

    cond2 = torch.cat([cond, torch.zeros_like(cond)], dim=0)  # (2B, C, H): conditional | unconditional
    x2 = denoiser(two(z), two(t), self_cond=two(c), guidance=two(w), decode=None, cond=cond2,
                  cond_mask=two(cond_mask), text_mask=two(text_mask)).x_hat
    x_c, x_u = x2[:B], x2[B:]
    return x_u + guidance * (x_c - x_u)


@torch.no_grad()
def sample_latents(
    denoiser: nn.Module,
    cfg: SamplerConfig,
    *,
    batch_size: int,
    length: int,
    latent_dim: int,
    cond: Optional[torch.Tensor] = None,
    cond_mask: Optional[torch.Tensor] = None,
    text_mask: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Run the sampler; returns the latents to decode ``(B, L, d)``: the final ``z`` or the last ``x_hat``.

    Noise is drawn on CPU from ``generator`` (default: seeded with ``cfg.seed``), so results do not
    depend on the device. ``cond (B, C, H)`` / ``cond_mask (B, C)``: optional condition tokens.
    """
    try:
        param = next(denoiser.parameters())
        device, dtype = param.device, param.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    gen = generator if generator is not None else torch.Generator().manual_seed(cfg.seed)
    B, L, d = batch_size, length, latent_dim
    grid = time_grid(cfg.steps, cfg.grid, mean=cfg.t_mean, std=cfg.t_std, seed=cfg.seed).tolist()
    z = (cfg.sigma_n * torch.randn((B, L, d), generator=gen)).to(device, dtype)  # (B, L, d)
    c = torch.zeros_like(z)
    w = torch.full((B,), cfg.self_cond_scale, device=device, dtype=dtype)
    x_hat = z
    for i in range(cfg.steps):
        t, t_next = grid[i], grid[i + 1]
        last = i == cfg.steps - 1
        if cfg.method == "sde" and not last:
            alpha = min(max(1.0 - cfg.gamma * (t_next - t), 0.0), 1.0)
            noise = torch.randn((B, L, d), generator=gen).to(device, dtype)
            z = alpha * z + (1.0 - alpha) * cfg.sigma_n * noise
            t = alpha * t
        t_vec = torch.full((B,), t, device=device, dtype=dtype)
        x_hat = guided_forward(denoiser, z, t_vec, c, w, guidance=cfg.guidance, cond=cond, cond_mask=cond_mask,
                               text_mask=text_mask)
        z = z + (t_next - t) * velocity(x_hat, z, t_vec, cfg.t_clamp)
        c = x_hat
    return x_hat if cfg.decode_from == "x_hat" else z


@torch.no_grad()
def decode_tokens(
    denoiser: nn.Module,
    z: torch.Tensor,
    *,
    cond: Optional[torch.Tensor] = None,
    cond_mask: Optional[torch.Tensor] = None,
    text_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """One decoding-mode forward at t = 1 on ``z (B, L, d)`` (it sees the condition); argmax ids ``(B, L)``."""
    B = z.shape[0]
    ones = torch.ones(B, device=z.device, dtype=z.dtype)
    out = denoiser(z, ones, self_cond=torch.zeros_like(z), guidance=ones,
                   decode=torch.ones(B, dtype=torch.bool, device=z.device),
                   cond=cond, cond_mask=cond_mask, text_mask=text_mask)
    return denoiser.token_logits(out.hidden).argmax(dim=-1)


@torch.no_grad()
def generate_ids(
    denoiser: nn.Module,
    cfg: SamplerConfig,
    *,
    batch_size: int,
    length: int,
    latent_dim: int,
    cond: Optional[torch.Tensor] = None,
    cond_mask: Optional[torch.Tensor] = None,
    text_mask: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """:func:`sample_latents` then :func:`decode_tokens`: token ids ``(B, L)`` (not yet cut at EOS)."""
    z = sample_latents(denoiser, cfg, batch_size=batch_size, length=length, latent_dim=latent_dim, cond=cond,
                       cond_mask=cond_mask, text_mask=text_mask, generator=generator)
    return decode_tokens(denoiser, z, cond=cond, cond_mask=cond_mask, text_mask=text_mask)
