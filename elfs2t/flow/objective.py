"""The ELF flow-matching objective (docs/design.md §2.3): flow loss, decoding CE, self-cond guidance, CFG dropout.

One training step, per example row ``b`` of a batch ``x (B, L, d)``:

* a row is either a *denoising* row or (fraction ``decode_frac``) a *decoding* row;
* denoising rows: ``t = sigmoid(n), n ~ N(t_mean, t_std^2)``, ``z_t = t x + (1 - t) sigma_n eps``; the network
  predicts ``x_hat``; velocities ``v = (x_hat - z_t) / max(1 - t, t_clamp)`` and
  ``v* = (x - z_t) / max(1 - t, t_clamp)``; per-position loss = mean over channels of ``(v - v*)^2``;
* a share ``self_cond_prob`` of the denoising rows is self-conditioned with trained-in guidance: draw ``w``
  (``1 + w`` log-uniform on ``[w_low, w_high]``); pass A (no grad, c = 0) gives ``x_A, v_A``; pass B (no grad,
  c = x_A) gives ``v_B``; the target becomes ``v* + (1 - 1/w)(v_B - v_A)`` and the trained pass sees
  ``c = x_A``. Passes A and B estimate the *unguided* network, so they get guidance scale 1;
  rows without self-conditioning (and decoding rows) also get ``w = 1``, for which ``1 - 1/w = 0`` and the
  target is the plain ``v*`` — i.e. ``w = 1`` is the neutral value the sampler uses to switch guidance off;
* decoding rows: per-token ``lambda = sigmoid(n'), n' ~ N(mu_dec, std_dec^2)``,
  ``z_dec = lambda x + (1 - lambda) sigma_d eps'``, time 1, self-cond zeros, decoding mode, cross-entropy
  of ``token_logits(hidden)`` to the ids; a share ``read_frac`` of the decoding rows draws ``n'`` around
  ``mu_read`` instead (near-clean latents: the token head also learns to *read* latents, which is what the
  sampler hands it at the end, while the noisy rows keep it reading the audio);
* condition dropout: with probability ``p_drop`` a row's condition tokens are zeros (positions kept);
* optionally (``denoise_ce > 0``, not ELF) the token head's cross-entropy on the denoising rows' states too, weighted;

The batch loss is ``(sum CE over decoding rows' loss positions + sum L2 over denoising rows'
loss positions [+ denoise_ce * sum CE over denoising rows' loss positions]) / number of loss positions``.
Decoding and denoising rows share ONE trained forward (per-row ``decode`` flags); the two no-grad passes run
only over the self-conditioned rows.

All random draws are made first (:func:`draw_flow_noise`, a :class:`FlowDraws`), then
:func:`flow_loss_from_draws` is a deterministic function of them, which is what the tests check by hand.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
import torch.nn.functional as F
from torch import nn

from elfs2t.config import config_check
from elfs2t.flow.time import sample_logit_normal
from elfs2t.flow.slots import TextSlots, slot_kwargs

__all__ = [
    "FlowConfig",
    "FlowDraws",
    "noisy_latent",
    "velocity",
    "guided_target",
    "draw_flow_noise",
    "flow_loss_from_draws",
    "flow_matching_loss",
    "shortlist_targets",
]


@dataclass(kw_only=True)
class FlowConfig:
    """Flow-matching objective of ELF (values from the paper as defaults)."""

    RETIRED: ClassVar[dict] = {"decode_weight": (1.0, "a weight on the decoding cross-entropy, measured no gain; "
                                                      "removed in the decoding redesign")}

    sigma_n: float = 2.0
    """Noise scale of the path z_t = t x + (1 - t) sigma_n eps."""
    t_mean: float = -1.5
    """Mean of n in t = sigmoid(n) (negative: biased toward noise)."""
    t_std: float = 0.8
    """Standard deviation of n in t = sigmoid(n)."""
    t_clamp: float = 0.05
    """Velocities divide by max(1 - t, t_clamp)."""
    self_cond_prob: float = 0.5
    """Probability that a denoising row is self-conditioned (with trained-in guidance)."""
    w_low: float = 1.5
    """Lower end of the log-uniform range of 1 + w (self-cond guidance scale w)."""
    w_high: float = 6.0
    """Upper end of the log-uniform range of 1 + w."""
    decode_frac: float = 0.2
    """Expected fraction of rows trained in decoding mode (cross-entropy to the tokens)."""
    mu_dec: float = 0.8
    """Mean of n' in the per-token decode-branch signal level lambda = sigmoid(n') (ELF-S2T audio forcing: -0.5)."""
    std_dec: float = 0.8
    """Standard deviation of n' (variance 0.8^2 in ELF)."""
    read_frac: float = 0.0
    """Share of the decoding rows whose signal level is centred at ``mu_read`` instead of ``mu_dec`` (0: ELF)."""
    mu_read: float = 2.0
    """Mean of n' on those rows (2: lambda ~ 0.88, near-clean latents, like the sampler's final state)."""
    sigma_d: float = 1.0
    """Noise scale of the decoding branch z_dec = lambda x + (1 - lambda) sigma_d eps' (ELF unconditional: 5.0)."""
    p_drop: float = 0.1
    """Probability of zeroing a row's condition tokens (classifier-free guidance training)."""
    denoise_ce: float = 0.0
    """Weight of the token head's cross-entropy on the denoising rows' states (0: ELF, only decoding rows have one)."""

    def validate(self) -> None:
        for key in ("sigma_n", "t_std", "std_dec", "sigma_d"):
            value = getattr(self, key)
            config_check(value > 0, key, value, "must be > 0")
        config_check(0 < self.t_clamp <= 1, "t_clamp", self.t_clamp, "must be in (0, 1]")
        config_check(self.denoise_ce >= 0, "denoise_ce", self.denoise_ce, "must be >= 0")
        for key in ("self_cond_prob", "decode_frac", "p_drop", "read_frac"):
            value = getattr(self, key)
            config_check(0 <= value <= 1, key, value, "must be in [0, 1]")
        config_check(self.w_low > 0, "w_low", self.w_low, "must be > 0 (1 + w is log-uniform)")
        config_check(self.w_high >= self.w_low, "w_high", self.w_high, f"must be >= w_low ({self.w_low})")
        config_check(self.w_low > 1 or self.w_high > 1, "w_high", self.w_high, "1 + w must allow w > 0")


# ---------------------------------------------------------------------------------------------
# Formulas
# ---------------------------------------------------------------------------------------------
def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1) broadcastable against ``like``; (B, L) -> (B, L, 1) etc."""
    return v.reshape(v.shape + (1,) * (like.dim() - v.dim()))


def noisy_latent(x: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, sigma: float) -> torch.Tensor:
    """``t x + (1 - t) sigma eps``; ``t`` is (B,) per row or (B, L) per token."""  # (B, L, d)
    t = _bcast(t.to(x.dtype), x)
    return t * x + (1.0 - t) * sigma * eps


def velocity(x_hat: torch.Tensor, z: torch.Tensor, t: torch.Tensor, t_clamp: float) -> torch.Tensor:
    """``(x_hat - z) / max(1 - t, t_clamp)`` for (B,) times."""  # (B, L, d)
    denom = _bcast((1.0 - t.to(z.dtype)).clamp_min(t_clamp), z)
    return (x_hat - z) / denom


def guided_target(v_star: torch.Tensor, v_a: torch.Tensor, v_b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Self-cond guidance target ``v* + (1 - 1/w)(v_B - v_A)`` with (B,) scales ``w``."""
    return v_star + _bcast(1.0 - 1.0 / w.to(v_star.dtype), v_star) * (v_b - v_a)


# ---------------------------------------------------------------------------------------------
# Random draws
# ---------------------------------------------------------------------------------------------
@dataclass
class FlowDraws:
    """Every random quantity of one training step (all on the data's device)."""

    t: torch.Tensor
    """(B,) times of the denoising rows (decoding rows: ignored, they run at t = 1)."""
    eps: torch.Tensor
    """(B, L, d) path noise."""
    decode: torch.Tensor
    """(B,) bool, rows trained in decoding mode."""
    self_cond: torch.Tensor
    """(B,) bool, self-conditioned rows (never decoding rows)."""
    w: torch.Tensor
    """(B,) self-cond guidance scale; 1 where not self-conditioned."""
    lam: torch.Tensor
    """(B, L) per-token signal level of the decoding branch."""
    eps_dec: torch.Tensor
    """(B, L, d) decoding-branch noise."""
    drop: torch.Tensor
    """(B,) bool, rows whose condition is zeroed."""


def draw_flow_noise(
    x: torch.Tensor, cfg: FlowConfig, generator: Optional[torch.Generator] = None
) -> FlowDraws:
    """Draw :class:`FlowDraws` for clean latents ``x (B, L, d)`` (on CPU with ``generator``, then moved)."""
    B, L, d = x.shape
    dev, dt = x.device, x.dtype
    g = generator

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=g)

    t = sample_logit_normal(B, cfg.t_mean, cfg.t_std, generator=g)
    eps = torch.randn((B, L, d), generator=g)
    # Exact expected fraction of decoding rows: floor(frac * B + u) rows, chosen at random.
    n_dec = min(B, int(math.floor(cfg.decode_frac * B + float(rand(1)))))
    decode = torch.zeros(B, dtype=torch.bool)
    decode[torch.randperm(B, generator=g)[:n_dec]] = True
    self_cond = (rand(B) < cfg.self_cond_prob) & ~decode
    log_w = math.log(cfg.w_low) + rand(B) * (math.log(cfg.w_high) - math.log(cfg.w_low))
    w = torch.where(self_cond, torch.exp(log_w) - 1.0, torch.ones(B))
    lam = sample_logit_normal((B, L), cfg.mu_dec, cfg.std_dec, generator=g)
    if cfg.read_frac > 0:  # drawn only when on: the default draws stay those of ELF
        read = rand(B) < cfg.read_frac
        lam = torch.where(read[:, None], sample_logit_normal((B, L), cfg.mu_read, cfg.std_dec, generator=g), lam)
    eps_dec = torch.randn((B, L, d), generator=g)
    drop = rand(B) < cfg.p_drop
    return FlowDraws(
        t=t.to(dev, dt), eps=eps.to(dev, dt), decode=decode.to(dev), self_cond=self_cond.to(dev),
        w=w.to(dev, dt), lam=lam.to(dev, dt), eps_dec=eps_dec.to(dev, dt), drop=drop.to(dev),
    )


def shortlist_targets(ids: torch.Tensor, vocab: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Indices of ``ids`` in the sorted shortlist ``vocab (K,)`` (same shape); ids not in it -> ``ignore_index``."""
    pos = torch.searchsorted(vocab, ids).clamp_max(vocab.numel() - 1)
    return torch.where(vocab[pos] == ids, pos, torch.full_like(pos, ignore_index))


# ---------------------------------------------------------------------------------------------
# The loss
# ---------------------------------------------------------------------------------------------
def _sub(v: Optional[torch.Tensor], idx: torch.Tensor) -> Optional[torch.Tensor]:
    return None if v is None else v[idx]


def flow_loss_from_draws(
    denoiser: nn.Module,
    x: torch.Tensor,
    ids: torch.Tensor,
    loss_mask: torch.Tensor,
    cfg: FlowConfig,
    draws: FlowDraws,
    *,
    cond: Optional[torch.Tensor] = None,
    cond_mask: Optional[torch.Tensor] = None,
    text_mask: Optional[torch.Tensor] = None,
    outputs: Optional[dict] = None,
    vocab: Optional[torch.Tensor] = None,
    cond_cache=None,
    slots: Optional[TextSlots] = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The ELF loss for given draws (deterministic); see the module docstring for the formulas.

    ``x (B, L, d)`` clean latents, ``ids (B, L)`` token ids, ``loss_mask (B, L)`` bool,
    ``cond (B, C, H)`` / ``cond_mask (B, C)`` optional condition, ``text_mask (B, L)`` optional key mask.
    ``outputs``: a dict that receives the trained pass's output (``"out"``, a DenoiserOutput) and the draws
    (``"draws"``), for auxiliary losses on the same forward (e.g. ELF-S2T's CTC on the condition).
    ``vocab (K,)``: sorted token ids of a shortlist; the decoding cross-entropy is then a softmax over those
    ids only (targets outside it are ignored). None: the full vocabulary (ELF). ``cond_cache``: the condition as the denoiser's
    ``cache_condition`` gives it (built by the caller WITH gradients and with the dropped rows already zeroed),
    instead of ``cond`` / ``cond_mask``; ``slots``: the text slots' positions and extra inputs (denoiser).
    """
    B, L, d = x.shape
    if ids.shape != (B, L) or loss_mask.shape != (B, L):
        raise ValueError(f"flow loss: ids {tuple(ids.shape)} and loss_mask {tuple(loss_mask.shape)} must be {(B, L)}")
    loss_mask = loss_mask.bool()
    dec = draws.decode
    sc = draws.self_cond & ~dec
    if cond is not None:
        keep = (~draws.drop).to(cond.dtype)[:, None, None]
        cond = cond * keep  # (B, C, H): dropped rows are zeros, positions (and mask) kept
    if cond_cache is not None and (cond is not None or cond_mask is not None):
        raise ValueError("flow loss: give either cond / cond_mask or cond_cache, not both")

    def condition(idx: Optional[torch.Tensor] = None) -> dict:
        """Denoiser keywords for all rows or the rows ``idx``."""
        if cond_cache is not None:
            kw = dict(cond_cache=cond_cache if idx is None else cond_cache.rows(idx))
        elif idx is None:
            kw = dict(cond=cond, cond_mask=cond_mask)
        else:
            kw = dict(cond=_sub(cond, idx), cond_mask=_sub(cond_mask, idx))
        return {**kw, **slot_kwargs(slots if idx is None or slots is None else slots.rows(idx))}

    # Inputs of the trained pass: denoising rows on the path at t, decoding rows lightly noised at t = 1.
    z_t = noisy_latent(x, draws.t, draws.eps, cfg.sigma_n)  # (B, L, d)
    z_dec = noisy_latent(x, draws.lam, draws.eps_dec, cfg.sigma_d)  # (B, L, d)
    z_in = torch.where(dec[:, None, None], z_dec, z_t)
    t_in = torch.where(dec, torch.ones_like(draws.t), draws.t)
    v_star = velocity(x, z_t, draws.t, cfg.t_clamp)  # (B, L, d)
    target = v_star
    c_in = torch.zeros_like(x)

    if bool(sc.any()):
        idx = sc.nonzero(as_tuple=True)[0]
        n = idx.numel()
        ones = torch.ones(n, dtype=x.dtype, device=x.device)
        z_s, t_s = z_t[idx], draws.t[idx]
        cond_s, tmask_s = condition(idx), _sub(text_mask, idx)
        with torch.no_grad():
            x_a = denoiser(z_s, t_s, self_cond=None, guidance=ones, decode=None, text_mask=tmask_s, **cond_s).x_hat.detach()
            x_b = denoiser(z_s, t_s, self_cond=x_a, guidance=ones, decode=None, text_mask=tmask_s, **cond_s).x_hat.detach()
            v_a = velocity(x_a, z_s, t_s, cfg.t_clamp)
            v_b = velocity(x_b, z_s, t_s, cfg.t_clamp)
            tgt_s = guided_target(v_star[idx], v_a, v_b, draws.w[idx])
        target = target.index_copy(0, idx, tgt_s)
        c_in = c_in.index_copy(0, idx, x_a)

    out = denoiser(z_in, t_in, self_cond=c_in, guidance=draws.w, decode=dec, text_mask=text_mask, **condition())
    if outputs is not None:
        outputs["out"], outputs["draws"] = out, draws
    v_hat = velocity(out.x_hat, z_t, draws.t, cfg.t_clamp)
    l2 = (v_hat - target).pow(2).mean(dim=-1)  # (B, L)
    den_pos = loss_mask & ~dec[:, None]
    dec_pos = loss_mask & dec[:, None]
    n_pos = loss_mask.sum().clamp_min(1)
    l2_sum = (l2 * den_pos).sum()

    stats: dict[str, float] = {}
    ce_pos = loss_mask if cfg.denoise_ce > 0 else dec_pos  # loss_mask = dec_pos | den_pos
    if bool(ce_pos.any()):
        logits = denoiser.token_logits(out.hidden[ce_pos], vocab)  # (P, V) or (P, K)
        target_ids = ids[ce_pos] if vocab is None else shortlist_targets(ids[ce_pos], vocab)
        ce = F.cross_entropy(logits.float(), target_ids, reduction="none")  # (P,); 0 where ignored
        on_dec = dec_pos[ce_pos]  # (P,) which of the positions are decoding rows'
        ce_sum = ce[on_dec].sum() + cfg.denoise_ce * ce[~on_dec].sum()
        hit = (logits.argmax(-1) == target_ids).float()
        if bool(on_dec.any()):
            stats["ce"] = float(ce[on_dec].mean().detach())
            stats["dec_acc"] = float(hit[on_dec].mean())
        if bool((~on_dec).any()):
            stats["ce_denoise"] = float(ce[~on_dec].mean().detach())
    else:
        # No decoding row in this batch: a zero term keeps the token head in the graph, so that DDP
        # (without find_unused_parameters) still sees a gradient for every parameter.
        ce_sum = denoiser.token_logits(out.hidden[:1, :1], vocab).sum() * 0.0
    loss = (ce_sum + l2_sum) / n_pos

    n_den = den_pos.sum()
    if int(n_den) > 0:
        stats["flow_mse"] = float((l2_sum / n_den).detach())
    stats["loss"] = float(loss.detach())
    stats["frac_decode"] = float(dec.float().mean())
    stats["frac_self_cond"] = float(sc.float().mean())
    stats["frac_cond_drop"] = float(draws.drop.float().mean()) if cond is not None or cond_cache is not None else 0.0
    return loss, stats


def flow_matching_loss(
    denoiser: nn.Module,
    x: torch.Tensor,
    ids: torch.Tensor,
    loss_mask: torch.Tensor,
    cfg: FlowConfig,
    *,
    cond: Optional[torch.Tensor] = None,
    cond_mask: Optional[torch.Tensor] = None,
    text_mask: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    outputs: Optional[dict] = None,
    vocab: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """ELF training loss of one batch: ``(loss, stats)``.

    ``x (B, L, d)`` clean latents, ``ids (B, L)``, ``loss_mask (B, L)`` bool; ``cond (B, C, H)`` clean
    condition tokens and ``cond_mask (B, C)`` (optional). ``stats``: ``loss``, ``flow_mse`` (mean L2 per
    denoising position), ``ce`` and ``dec_acc`` (decoding rows, when present), ``frac_decode``,
    ``frac_self_cond``, ``frac_cond_drop``. ``outputs``, ``vocab``: see :func:`flow_loss_from_draws`.
    """
    draws = draw_flow_noise(x, cfg, generator)
    return flow_loss_from_draws(denoiser, x, ids, loss_mask, cfg, draws, cond=cond, cond_mask=cond_mask,
                                text_mask=text_mask, outputs=outputs, vocab=vocab)
