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

Prefix cache: when the denoiser has ``prefix_attention: self`` (its condition attends only to itself) and
``prefix_cache`` is on, the condition's keys/values at every layer are computed once per batch
(:func:`build_condition_cache`; ``2B`` rows ``[cond | zeros]`` with CFG) and every step -- and the decoding
forward, through :func:`generate_ids` -- runs only the prefix and text positions against them. The
outputs are those of the uncached sampler up to float rounding.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

import torch
from torch import nn

from elfs2t.config import config_check
from elfs2t.flow.objective import velocity
from elfs2t.flow.time import time_grid
from elfs2t.models.layout import ConditionCache, text_pos_kwargs

__all__ = ["SamplerConfig", "supports_prefix_cache", "build_condition_cache", "guided_forward", "sample_latents",
           "decoding_forward", "decode_tokens", "generate_ids"]


@dataclass(kw_only=True)
class SamplerConfig:
    """How to sample text latents from the denoiser and decode them."""

    steps: int = 32
    """Number of denoising steps N (N network forwards, plus one decoding forward); with a draft start
    (``init != noise``) 0 returns the draft itself (e.g. ELF-S2T's CTC readout, for comparison)."""
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
    init: Literal["noise", "ctc"] = "noise"
    """Where sampling starts: pure noise at t = 0 (ELF), or a draft -- ELF-S2T's CTC readout of the audio slots
    (``ctc_weight > 0``), encoded by the frozen text encoder -- put on the path at ``t_start`` and refined by the
    flow from there (draft-and-refine, beyond the paper; the caller passes the draft latents as ``x_init``)."""
    t_start: float = 0.6
    """Time at which a draft start enters the path (``init != noise``): ``z = t x_draft + (1 - t) sigma_n eps``;
    the steps then cover ``[t_start, 1]`` (the grid is mapped onto it)."""
    refine: Literal["flow", "mask", "rescore"] = "flow"
    """How a draft start (``init: ctc``) is refined: ``flow`` -- ``steps`` flow steps from ``t_start`` (above);
    ``mask`` -- Mask-CTC: the draft's tokens with a CTC confidence under ``mask_threshold`` are masked and
    re-predicted by ``steps`` decoding forwards, easy first (:mod:`elfs2t.models.mask_ctc`; the model needs
    mask rows in training, ``elf.draft_rows: mask``); ``rescore`` -- the draft and its variants with one token
    under ``rescore_threshold`` replaced by its runner-up (or dropped) are scored by the CTC plus the text slots'
    token head, ``steps`` noise draws at each of ``rescore_levels``, and the best kept
    (:mod:`elfs2t.models.draft_rescore`). ``steps: 0`` returns the draft whichever is set."""
    mask_threshold: float = 0.9
    """``refine: mask``: draft tokens whose CTC confidence (highest posterior over their frames) is below this
    are re-predicted."""
    rescore_threshold: float = 0.95
    """``refine: rescore``: each draft token whose CTC confidence is below this gives one more candidate."""
    rescore_levels: list[float] = field(default_factory=lambda: [0.05, 0.2])
    """``refine: rescore``: signal levels ``lam`` of the candidates' latents, ``z = lam x + (1 - lam) sigma_d eps``,
    at which the token head scores them (the decoding rows were trained around ``sigmoid(flow.mu_dec)``)."""
    flow_threshold: float = 1.0
    """``refine: flow``: only the draft's content tokens whose CTC confidence is below this take the refined
    token; the others, and every non-content slot, keep the draft's (1: every slot takes the refined token)."""
    prefix_cache: bool = True
    """Reuse the condition's keys/values across steps when the denoiser has prefix_attention=self
    (no effect otherwise; same outputs up to float rounding)."""

    def validate(self) -> None:
        config_check(self.steps >= (0 if self.init != "noise" else 1), "steps", self.steps,
                     "must be >= 1 (0 only with a draft start: the draft itself)")
        config_check(self.gamma >= 0, "gamma", self.gamma, "must be >= 0")
        config_check(self.t_std > 0, "t_std", self.t_std, "must be > 0")
        config_check(self.sigma_n > 0, "sigma_n", self.sigma_n, "must be > 0")
        config_check(0 < self.t_clamp <= 1, "t_clamp", self.t_clamp, "must be in (0, 1]")
        config_check(self.self_cond_scale > 0, "self_cond_scale", self.self_cond_scale, "must be > 0")
        config_check(self.init in ("noise", "ctc"), "init", self.init, "must be noise or ctc")
        config_check(0 <= self.t_start < 1, "t_start", self.t_start, "must be in [0, 1)")
        config_check(self.refine in ("flow", "mask", "rescore"), "refine", self.refine, "must be flow, mask or rescore")
        config_check(self.refine == "flow" or self.init == "ctc", "refine", self.refine,
                     f"{self.refine} refinement works on a CTC draft: set init: ctc")
        config_check(0 <= self.rescore_threshold <= 1, "rescore_threshold", self.rescore_threshold, "must be in [0, 1]")
        config_check(len(self.rescore_levels) > 0 and all(0 <= v < 1 for v in self.rescore_levels), "rescore_levels",
                     self.rescore_levels, "must be a non-empty list of signal levels in [0, 1)")
        config_check(0 <= self.mask_threshold <= 1, "mask_threshold", self.mask_threshold, "must be in [0, 1]")
        config_check(0 <= self.flow_threshold <= 1, "flow_threshold", self.flow_threshold, "must be in [0, 1]")


def supports_prefix_cache(denoiser: nn.Module) -> bool:
    """True when ``denoiser`` can cache its condition (an ELF denoiser with ``prefix_attention: self``)."""
    cfg = getattr(denoiser, "cfg", None)
    return getattr(cfg, "prefix_attention", "full") == "self" and hasattr(denoiser, "cache_condition")


@torch.no_grad()
def build_condition_cache(
    denoiser: nn.Module,
    cond: torch.Tensor,
    cond_mask: Optional[torch.Tensor] = None,
    *,
    guidance: float = 1.0,
) -> Optional[ConditionCache]:
    """The condition's per-layer keys/values for the sampler: rows ``[cond | zeros]`` (``2B``) when
    ``guidance != 1`` (the unconditional CFG branch), else ``cond``'s ``B`` rows; ``None`` when the
    denoiser cannot cache (``prefix_attention: full``).

    The zero condition is computed for ONE row and shared: with an all-zero input every slot of every
    row carries the same hidden state at every layer (each slot attends, among identical values, only
    to the condition), so rows differ only in their keys' RoPE positions (the same ``0 .. C-1``) and in
    which slots are real (``cond_mask``, applied when the text attends to them).
    """
    if not supports_prefix_cache(denoiser):
        return None
    cache = denoiser.cache_condition(cond, cond_mask)
    if guidance == 1.0:
        return cache
    b, n_cond = cond.shape[:2]
    zero = denoiser.cache_condition(torch.zeros_like(cond[:1]), torch.ones(1, n_cond, dtype=torch.bool, device=cond.device))
    kv = tuple((torch.cat([k, zk.expand(b, -1, -1, -1)]), torch.cat([v, zv.expand(b, -1, -1, -1)]))
               for (k, v), (zk, zv) in zip(cache.kv, zero.kv))
    return ConditionCache(kv=kv, cond_mask=torch.cat([cache.cond_mask, cache.cond_mask], dim=0))


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
    cond_cache: Optional[ConditionCache] = None,
    text_pos: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """CFG-guided ``x_hat (B, L, d)``: ``x_u + g (x_c - x_u)`` from ONE forward over ``2B`` rows.

    Guiding ``x_hat`` is the same as guiding ``v`` (``v`` is affine in ``x_hat`` for fixed ``z, t``).
    With ``g == 1`` or no condition only the conditional branch runs. ``cond_cache`` (from
    :func:`build_condition_cache` with the same ``guidance``: ``2B`` rows with CFG, ``B`` without)
    replaces ``cond`` / ``cond_mask``. ``text_pos (B, L)``: the text slots' positions (denoiser), None: its own.
    """
    B = z.shape[0]
    pos = text_pos_kwargs(text_pos)
    if cond_cache is not None:
        rows = B if guidance == 1.0 else 2 * B
        if cond_cache.batch_size != rows:
            raise ValueError(f"guided_forward: cond_cache has {cond_cache.batch_size} rows, expected {rows} for "
                             f"{B} rows at guidance {guidance} (build it with build_condition_cache)")
        cond = cond_mask = None
    elif cond is None or guidance == 1.0:
        return denoiser(z, t, self_cond=c, guidance=w, decode=None, cond=cond, cond_mask=cond_mask,
                        text_mask=text_mask, **pos).x_hat
    if guidance == 1.0:  # cached, conditional branch only
        return denoiser(z, t, self_cond=c, guidance=w, decode=None, text_mask=text_mask, cond_cache=cond_cache,
                        **pos).x_hat

    def two(v: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        return None if v is None else torch.cat([v, v], dim=0)

    pos2 = text_pos_kwargs(two(text_pos))
    if cond_cache is not None:
        x2 = denoiser(two(z), two(t), self_cond=two(c), guidance=two(w), decode=None, text_mask=two(text_mask),
                      cond_cache=cond_cache, **pos2).x_hat
    else:
        cond2 = torch.cat([cond, torch.zeros_like(cond)], dim=0)  # (2B, C, H): conditional | unconditional
        x2 = denoiser(two(z), two(t), self_cond=two(c), guidance=two(w), decode=None, cond=cond2,
                      cond_mask=two(cond_mask), text_mask=two(text_mask), **pos2).x_hat
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
    cond_cache: Optional[ConditionCache] = None,
    x_init: Optional[torch.Tensor] = None,
    text_pos: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Run the sampler; returns the latents to decode ``(B, L, d)``: the final ``z`` or the last ``x_hat``.

    ``x_init (B, L, d)``: draft latents for ``cfg.init != "noise"`` (required then): the start is
    ``t_start x_init + (1 - t_start) sigma_n eps`` at ``t_start`` and the grid ``t_i`` becomes
    ``t_start + (1 - t_start) t_i``; the self-conditioning input starts at zeros as from noise.

    Noise is drawn on CPU from ``generator`` (default: seeded with ``cfg.seed``), so results do not
    depend on the device. ``cond (B, C, H)`` / ``cond_mask (B, C)``: optional condition tokens. With
    ``cfg.prefix_cache`` and a denoiser that supports it, the condition cache is built here once (or
    ``cond_cache`` from :func:`build_condition_cache` is used) and reused at every step.
    """
    try:
        param = next(denoiser.parameters())
        device, dtype = param.device, param.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    gen = generator if generator is not None else torch.Generator().manual_seed(cfg.seed)
    B, L, d = batch_size, length, latent_dim
    grid = time_grid(cfg.steps, cfg.grid, mean=cfg.t_mean, std=cfg.t_std, seed=cfg.seed)
    z = (cfg.sigma_n * torch.randn((B, L, d), generator=gen)).to(device, dtype)  # (B, L, d)
    if cfg.init != "noise":
        if x_init is None or tuple(x_init.shape) != (B, L, d):
            got = None if x_init is None else tuple(x_init.shape)
            raise ValueError(f"sampler init={cfg.init!r} needs draft latents x_init of shape {(B, L, d)}, got {got}")
        t0 = cfg.t_start
        z = t0 * x_init.to(device, dtype) + (1.0 - t0) * z
        grid = t0 + (1.0 - t0) * grid
    grid = grid.tolist()
    c = torch.zeros_like(z)
    w = torch.full((B,), cfg.self_cond_scale, device=device, dtype=dtype)
    if cond_cache is None and cond is not None and cfg.prefix_cache:
        cond_cache = build_condition_cache(denoiser, cond, cond_mask, guidance=cfg.guidance)
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
                               text_mask=text_mask, cond_cache=cond_cache, text_pos=text_pos)
        z = z + (t_next - t) * velocity(x_hat, z, t_vec, cfg.t_clamp)
        c = x_hat
    return x_hat if cfg.decode_from == "x_hat" else z


@torch.no_grad()
def decoding_forward(
    denoiser: nn.Module,
    z: torch.Tensor,
    *,
    cond: Optional[torch.Tensor] = None,
    cond_mask: Optional[torch.Tensor] = None,
    text_mask: Optional[torch.Tensor] = None,
    cond_cache: Optional[ConditionCache] = None,
    text_pos: Optional[torch.Tensor] = None,
):
    """One decoding-mode forward at t = 1 on ``z (B, L, d)`` with the condition (no self-conditioning input,
    guidance 1): the denoiser's output, whose ``hidden`` the token head reads (and ``cond_hidden``, with the
    condition, the CTC readout). ``cond_cache`` (``B`` rows, the conditional ones) replaces ``cond`` /
    ``cond_mask``; ``text_pos``: the text slots' positions (see :func:`guided_forward`)."""
    B = z.shape[0]
    ones = torch.ones(B, device=z.device, dtype=z.dtype)
    if cond_cache is not None:
        condition = dict(cond_cache=cond_cache)
    else:
        condition = dict(cond=cond, cond_mask=cond_mask)
    condition.update(text_pos_kwargs(text_pos))
    return denoiser(z, ones, self_cond=torch.zeros_like(z), guidance=ones,
                    decode=torch.ones(B, dtype=torch.bool, device=z.device), text_mask=text_mask, **condition)


@torch.no_grad()
def decode_tokens(
    denoiser: nn.Module,
    z: torch.Tensor,
    *,
    cond: Optional[torch.Tensor] = None,
    cond_mask: Optional[torch.Tensor] = None,
    text_mask: Optional[torch.Tensor] = None,
    cond_cache: Optional[ConditionCache] = None,
    vocab: Optional[torch.Tensor] = None,
    text_pos: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """:func:`decoding_forward` on ``z (B, L, d)``, then the token head's argmax ids ``(B, L)``.

    ``vocab (K,)``: the argmax runs over these token ids only (a shortlist), None: the full vocabulary.
    """
    out = decoding_forward(denoiser, z, cond=cond, cond_mask=cond_mask, text_mask=text_mask, cond_cache=cond_cache,
                           text_pos=text_pos)
    best = denoiser.token_logits(out.hidden, vocab).argmax(dim=-1)
    return best if vocab is None else vocab[best]


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
    vocab: Optional[torch.Tensor] = None,
    x_init: Optional[torch.Tensor] = None,
    text_pos: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """:func:`sample_latents` then :func:`decode_tokens`: token ids ``(B, L)`` (not yet cut at EOS).

    With ``cfg.prefix_cache`` and a caching denoiser, one condition cache serves every step and the
    decoding forward (its conditional rows). ``vocab``: see :func:`decode_tokens`; ``x_init``: see
    :func:`sample_latents`; ``text_pos``: the text slots' positions (see :func:`guided_forward`).
    """
    cache = None
    if cond is not None and cfg.prefix_cache:
        cache = build_condition_cache(denoiser, cond, cond_mask, guidance=cfg.guidance)
    z = sample_latents(denoiser, cfg, batch_size=batch_size, length=length, latent_dim=latent_dim, cond=cond,
                       cond_mask=cond_mask, text_mask=text_mask, generator=generator, cond_cache=cache, x_init=x_init,
                       text_pos=text_pos)
    if cache is not None:
        return decode_tokens(denoiser, z, text_mask=text_mask, cond_cache=cache.rows(slice(0, batch_size)), vocab=vocab,
                             text_pos=text_pos)
    return decode_tokens(denoiser, z, cond=cond, cond_mask=cond_mask, text_mask=text_mask, vocab=vocab, text_pos=text_pos)
