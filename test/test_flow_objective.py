"""ELF flow-matching objective: each formula against a hand computation on tiny tensors."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from elfs2t.config import ConfigError, structure
from elfs2t.flow.objective import (
    shortlist_targets,
    FlowConfig,
    FlowDraws,
    draw_flow_noise,
    flow_loss_from_draws,
    flow_matching_loss,
    guided_target,
    noisy_latent,
    velocity,
)
from elfs2t.flow.time import sample_logit_normal


class ToyDenoiser(nn.Module):
    """Follows the denoiser contract with a closed-form x_hat, and records every call."""

    def __init__(self, d: int = 3, hidden: int = 4, vocab: int = 5) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(0.5))
        self.proj = nn.Linear(d, hidden)
        self.head = nn.Linear(hidden, vocab)
        self.calls: list[dict] = []

    def forward(self, z, t, self_cond=None, guidance=None, decode=None, cond=None, cond_mask=None, text_mask=None):
        self.calls.append(dict(z=z.clone(), t=t.clone(), self_cond=None if self_cond is None else self_cond.clone(),
                               guidance=None if guidance is None else guidance.clone(),
                               decode=None if decode is None else decode.clone(),
                               cond=None if cond is None else cond.clone(), cond_mask=cond_mask,
                               grad=torch.is_grad_enabled()))
        c = torch.zeros_like(z) if self_cond is None else self_cond
        g = torch.ones_like(t) if guidance is None else guidance
        x_hat = self.a * z + 0.25 * c + 0.1 * (g - 1)[:, None, None] + 0.01 * t[:, None, None]
        if cond is not None:
            x_hat = x_hat + cond.mean(dim=(1, 2))[:, None, None]
        return SimpleNamespace(x_hat=x_hat, hidden=self.proj(z))

    def token_logits(self, hidden, vocab=None):
        logits = self.head(hidden)
        return logits if vocab is None else logits[..., vocab]


def test_path_and_velocity_by_hand():
    x = torch.tensor([[[1.0, 2.0]]])
    eps = torch.tensor([[[0.5, -1.0]]])
    z = noisy_latent(x, torch.tensor([0.25]), eps, 2.0)
    assert torch.allclose(z, torch.tensor([[[1.0, -1.0]]]))  # 0.25 x + 0.75 * 2 eps
    v = velocity(torch.tensor([[[2.0, 0.0]]]), z, torch.tensor([0.25]), 0.05)
    assert torch.allclose(v, torch.tensor([[[1 / 0.75, 1 / 0.75]]]))
    # the clamp: 1 - t = 0.01 < 0.05 -> divide by 0.05
    v = velocity(torch.tensor([[[2.0, 0.0]]]), z, torch.tensor([0.99]), 0.05)
    assert torch.allclose(v, torch.tensor([[[20.0, 20.0]]]))
    # per-token times (B, L)
    z2 = noisy_latent(torch.ones(1, 2, 1), torch.tensor([[1.0, 0.0]]), torch.ones(1, 2, 1), 5.0)
    assert torch.allclose(z2.flatten(), torch.tensor([1.0, 5.0]))


def test_guided_target_by_hand():
    out = guided_target(torch.ones(2, 1, 1), torch.full((2, 1, 1), 2.0), torch.full((2, 1, 1), 4.0),
                        torch.tensor([2.0, 1.0]))
    assert torch.allclose(out.flatten(), torch.tensor([1 + 0.5 * 2, 1.0]))


def test_time_distribution_moments():
    g = torch.Generator().manual_seed(0)
    t = sample_logit_normal(200_000, -1.5, 0.8, generator=g)
    n = torch.logit(t.double())
    assert abs(n.mean().item() + 1.5) < 0.01 and abs(n.std().item() - 0.8) < 0.01
    assert 0 < t.min() and t.max() < 1 and t.mean() < 0.3  # biased toward noise


def test_draws_fractions_and_w_range():
    cfg = FlowConfig()
    g = torch.Generator().manual_seed(1)
    dec, sc, logw, drop, rows = 0, 0, [], 0, 0
    for _ in range(400):
        d = draw_flow_noise(torch.zeros(10, 2, 3), cfg, g)
        assert not (d.decode & d.self_cond).any()
        assert torch.all(d.w[~d.self_cond] == 1.0)
        w = d.w[d.self_cond]
        assert torch.all((w >= 0.5 - 1e-6) & (w <= 5.0 + 1e-6))
        logw += torch.log1p(w).tolist()
        dec += int(d.decode.sum()); sc += int(d.self_cond.sum()); drop += int(d.drop.sum()); rows += 10
        assert d.lam.shape == (10, 2) and d.eps_dec.shape == (10, 2, 3)
    assert abs(dec / rows - 0.2) < 0.01  # exact in expectation (stochastic rounding of 0.2 B)
    assert abs(sc / rows - 0.8 * 0.5) < 0.03
    assert abs(drop / rows - 0.1) < 0.02
    lo, hi = math.log(1.5), math.log(6.0)
    assert abs(sum(logw) / len(logw) - (lo + hi) / 2) < 0.03  # log(1 + w) uniform


def test_read_rows_draw_their_signal_level_around_mu_read():
    cfg = FlowConfig(mu_dec=-3.0, read_frac=0.25, mu_read=2.0, std_dec=0.5)
    d = draw_flow_noise(torch.zeros(4000, 3, 2), cfg, torch.Generator().manual_seed(0))
    n = torch.logit(d.lam)  # (B, L): each row all from one of the two centres
    read = n.mean(dim=1) > -0.5
    assert abs(float(read.float().mean()) - 0.25) < 0.03
    assert abs(float(n[read].mean()) - 2.0) < 0.05 and abs(float(n[~read].mean()) + 3.0) < 0.05
    # off (the default): the draws are ELF's, unchanged
    a = draw_flow_noise(torch.zeros(5, 3, 2), FlowConfig(mu_dec=-3.0), torch.Generator().manual_seed(1))
    b = draw_flow_noise(torch.zeros(5, 3, 2), FlowConfig(mu_dec=-3.0, mu_read=7.0), torch.Generator().manual_seed(1))
    assert torch.equal(a.lam, b.lam) and torch.equal(a.drop, b.drop)


def _fixed_draws() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, FlowDraws]:
    torch.manual_seed(0)
    B, L, d = 3, 2, 3
    x = torch.randn(B, L, d)
    ids = torch.tensor([[1, 2], [3, 4], [0, 1]])
    loss_mask = torch.tensor([[True, False], [True, True], [True, True]])
    draws = FlowDraws(
        t=torch.tensor([0.3, 0.5, 0.2]), eps=torch.randn(B, L, d),
        decode=torch.tensor([True, False, False]), self_cond=torch.tensor([False, False, True]),
        w=torch.tensor([1.0, 1.0, 2.0]), lam=torch.tensor([[0.9, 0.6], [0.5, 0.5], [0.5, 0.5]]),
        eps_dec=torch.randn(B, L, d), drop=torch.tensor([False, False, False]),
    )
    return x, ids, loss_mask, draws


def test_loss_with_mixed_decode_and_denoise_rows_by_hand():
    x, ids, loss_mask, dr = _fixed_draws()
    cfg = FlowConfig(sigma_d=5.0)
    net = ToyDenoiser()
    loss, stats = flow_loss_from_draws(net, x, ids, loss_mask, cfg, dr)

    # --- hand computation with the toy's closed form x_hat = a z + c/4 + (w - 1)/10 + t/100, a = 0.5
    a = 0.5
    # row 0 decodes: z = lam x + (1 - lam) 5 eps', t = 1; CE over its one loss position
    z0 = dr.lam[0][:, None] * x[0] + (1 - dr.lam[0][:, None]) * 5.0 * dr.eps_dec[0]
    ce0 = F.cross_entropy(net.head(net.proj(z0[:1])), ids[0, :1], reduction="sum")
    # row 1: plain denoising at t = 0.5
    t1 = 0.5
    z1 = t1 * x[1] + (1 - t1) * 2.0 * dr.eps[1]
    xh1 = a * z1 + t1 / 100
    l2_1 = (((xh1 - z1) - (x[1] - z1)) / (1 - t1)).pow(2).mean(-1).sum()
    # row 2: self-cond with w = 2 at t = 0.2
    t2, w2 = 0.2, 2.0
    z2 = t2 * x[2] + (1 - t2) * 2.0 * dr.eps[2]
    xa = a * z2 + t2 / 100  # pass A, guidance 1
    xb = a * z2 + xa / 4 + t2 / 100  # pass B, c = x_A
    vs, va, vb = (x[2] - z2) / 0.8, (xa - z2) / 0.8, (xb - z2) / 0.8
    target = vs + (1 - 1 / w2) * (vb - va)
    xh2 = a * z2 + xa / 4 + (w2 - 1) / 10 + t2 / 100  # trained pass: c = x_A, guidance w
    l2_2 = ((xh2 - z2) / 0.8 - target).pow(2).mean(-1).sum()
    expected = (ce0 + l2_1 + l2_2) / 5  # 5 loss positions in all
    assert torch.allclose(loss, expected, atol=1e-5)
    assert stats["flow_mse"] == pytest.approx(float((l2_1 + l2_2).detach() / 4), rel=1e-5)
    assert stats["ce"] == pytest.approx(float(ce0.detach()), rel=1e-5)
    assert stats["frac_decode"] == pytest.approx(1 / 3)

    # one trained forward over all rows; the two no-grad passes only over the self-cond row
    assert [(c["z"].shape[0], c["grad"]) for c in net.calls] == [(1, False), (1, False), (3, True)]
    trained = net.calls[-1]
    assert trained["decode"].tolist() == [True, False, False]
    assert torch.allclose(trained["t"], torch.tensor([1.0, 0.5, 0.2]))
    assert torch.allclose(trained["z"][0], z0)  # per-token lambda noise for the decoding row
    assert torch.all(trained["self_cond"][:2] == 0)
    assert torch.allclose(trained["self_cond"][2], xa)
    assert trained["guidance"].tolist() == [1.0, 1.0, 2.0]
    assert net.calls[0]["guidance"].tolist() == [1.0] and net.calls[1]["guidance"].tolist() == [1.0]
    loss.backward()
    assert net.a.grad is not None and net.head.weight.grad.abs().sum() > 0


def test_denoise_ce_adds_the_token_heads_cross_entropy_on_the_denoising_rows_by_hand():
    x, ids, loss_mask, dr = _fixed_draws()
    torch.manual_seed(1)
    net = ToyDenoiser()
    base, _ = flow_loss_from_draws(net, x, ids, loss_mask, FlowConfig(sigma_d=5.0), dr)
    loss, stats = flow_loss_from_draws(net, x, ids, loss_mask, FlowConfig(sigma_d=5.0, denoise_ce=0.5), dr)
    # the denoising rows (1 and 2, all four positions) as the trained pass saw them: z_t = t x + (1 - t) 2 eps
    z = dr.t[1:, None, None] * x[1:] + (1 - dr.t[1:, None, None]) * 2.0 * dr.eps[1:]
    ce_den = F.cross_entropy(net.head(net.proj(z)).reshape(4, -1), ids[1:].reshape(4), reduction="sum")
    assert torch.allclose(loss, base + 0.5 * ce_den / 5, atol=1e-5)
    assert stats["ce_denoise"] == pytest.approx(float(ce_den / 4), rel=1e-5)
    # the decoding rows' statistics are unchanged
    assert stats["ce"] == pytest.approx(float(F.cross_entropy(net.head(net.proj(
        dr.lam[0, :1, None] * x[0, :1] + (1 - dr.lam[0, :1, None]) * 5.0 * dr.eps_dec[0, :1])), ids[0, :1])), rel=1e-5)
    with pytest.raises(ConfigError, match="denoise_ce"):
        FlowConfig(denoise_ce=-1.0).validate()


def test_shortlist_targets_map_ids_and_ignore_the_rest():
    vocab = torch.tensor([0, 2, 5, 9])
    ids = torch.tensor([[2, 9, 0], [5, 3, 10]])
    assert shortlist_targets(ids, vocab).tolist() == [[1, 3, 0], [2, -100, -100]]


def test_shortlist_cross_entropy_is_a_softmax_over_the_shortlist_by_hand():
    x, ids, loss_mask, dr = _fixed_draws()
    dr.self_cond[:] = False
    dr.decode = torch.tensor([True, True, False])
    dr.w = torch.ones(3)
    net = ToyDenoiser()
    vocab = torch.tensor([1, 2, 3, 4])  # row 0's ids [1, 2], row 1's [3, 4] -> local [0, 1], [2, 3]
    loss, stats = flow_loss_from_draws(net, x, ids, loss_mask, FlowConfig(), dr, vocab=vocab)
    trained = net.calls[-1]
    h = net.proj(trained["z"][:2])  # (2, L, hidden) of the decoding rows
    logits = net.head(h)[..., vocab]
    pos = loss_mask[:2]
    ce = F.cross_entropy(logits[pos], torch.tensor([[0, 1], [2, 3]])[pos], reduction="sum")
    z2 = 0.2 * x[2] + 0.8 * 2.0 * dr.eps[2]
    l2 = (((0.5 * z2 + 0.2 / 100) - x[2]) / 0.8).pow(2).mean(-1).sum()
    assert torch.allclose(loss, (ce + l2) / 5, atol=1e-5)
    assert stats["ce"] == pytest.approx(float(ce.detach() / 3), rel=1e-5)
    # a target outside the shortlist is ignored (contributes 0), not mapped to a wrong class
    loss_out, _ = flow_loss_from_draws(ToyDenoiser(), x, ids, loss_mask, FlowConfig(), dr, vocab=torch.tensor([1, 2, 3]))
    assert torch.isfinite(loss_out)


def test_condition_dropout_zeros_the_slots_only():
    x, ids, loss_mask, dr = _fixed_draws()
    dr.drop = torch.tensor([True, False, True])
    cond = torch.randn(3, 4, 2) + 1.0
    cond_mask = torch.tensor([[True, True, False, False]] * 3)
    net = ToyDenoiser()
    flow_loss_from_draws(net, x, ids, loss_mask, FlowConfig(), dr, cond=cond, cond_mask=cond_mask)
    seen = net.calls[-1]
    assert seen["cond"].shape == cond.shape
    assert torch.all(seen["cond"][0] == 0) and torch.all(seen["cond"][2] == 0)
    assert torch.equal(seen["cond"][1], cond[1])
    assert torch.equal(seen["cond_mask"], cond_mask)  # positions kept
    # the self-cond passes of row 2 see the same (dropped) condition
    assert torch.all(net.calls[0]["cond"] == 0)


def test_flow_matching_loss_seeded_and_differentiable():
    x = torch.randn(6, 4, 3)
    ids = torch.randint(0, 5, (6, 4))
    mask = torch.ones(6, 4, dtype=torch.bool)
    net = ToyDenoiser()
    l1, _ = flow_matching_loss(net, x, ids, mask, FlowConfig(), generator=torch.Generator().manual_seed(3))
    l2, stats = flow_matching_loss(net, x, ids, mask, FlowConfig(), generator=torch.Generator().manual_seed(3))
    assert torch.equal(l1, l2) and torch.isfinite(l1)
    l1.backward()
    assert net.a.grad is not None
    assert {"loss", "frac_decode", "frac_self_cond"} <= set(stats)
    with pytest.raises(ValueError, match="loss_mask"):
        flow_matching_loss(net, x, ids, mask[:, :2], FlowConfig())


def test_config_validation_names_key():
    with pytest.raises(ConfigError, match="decode_frac"):
        structure(FlowConfig, {"decode_frac": 1.5})
    with pytest.raises(ConfigError, match="w_high"):
        structure(FlowConfig, {"w_low": 3.0, "w_high": 2.0})


def _real_denoiser():
    from elfs2t.models.denoiser import DenoiserConfig, ElfDenoiser

    torch.manual_seed(0)
    net = ElfDenoiser(DenoiserConfig(latent_dim=8, vocab_size=11, hidden=32, depth=1, heads=2, bottleneck=16))
    with torch.no_grad():  # the flow head is zero-initialised: give it weights so x_hat depends on the input
        for p in net.final_layer.parameters():
            p.normal_(0, 0.3)
    return net


def test_real_denoiser_loss_matches_direct_forwards():
    net = _real_denoiser()
    torch.manual_seed(1)
    B, L, d = 3, 4, 8
    x, ids = torch.randn(B, L, d), torch.randint(0, 11, (B, L))
    loss_mask = torch.tensor([[True] * 4, [True, True, True, False], [True] * 4])
    cond, cond_mask = torch.randn(B, 2, 32), torch.tensor([[True, False], [True, True], [True, True]])
    dr = FlowDraws(t=torch.tensor([0.4, 0.97, 0.1]), eps=torch.randn(B, L, d),
                   decode=torch.tensor([False, False, True]), self_cond=torch.tensor([True, False, False]),
                   w=torch.tensor([3.0, 1.0, 1.0]), lam=torch.rand(B, L), eps_dec=torch.randn(B, L, d),
                   drop=torch.tensor([False, True, False]))
    cfg = FlowConfig()
    loss, _ = flow_loss_from_draws(net, x, ids, loss_mask, cfg, dr, cond=cond, cond_mask=cond_mask)
    with torch.no_grad():
        cond_d = cond.clone()
        cond_d[1] = 0
        z = dr.t[:, None, None] * x + (1 - dr.t[:, None, None]) * 2.0 * dr.eps
        den = torch.clamp(1 - dr.t, min=0.05)[:, None, None]
        # row 0: self-conditioned with w = 3 (passes A and B at guidance 1)
        one = torch.ones(1)
        xa = net(z[:1], dr.t[:1], self_cond=None, guidance=one, cond=cond_d[:1], cond_mask=cond_mask[:1]).x_hat
        xb = net(z[:1], dr.t[:1], self_cond=xa, guidance=one, cond=cond_d[:1], cond_mask=cond_mask[:1]).x_hat
        tgt0 = (x[:1] - z[:1]) / den[:1] + (1 - 1 / 3) * ((xb - xa) / den[:1])
        x0 = net(z[:1], dr.t[:1], self_cond=xa, guidance=torch.tensor([3.0]), cond=cond_d[:1],
                 cond_mask=cond_mask[:1]).x_hat
        l0 = ((x0 - z[:1]) / den[:1] - tgt0).pow(2).mean(-1).sum()
        # row 1: plain, condition dropped, 1 - t clamped to 0.05
        x1 = net(z[1:2], dr.t[1:2], self_cond=torch.zeros(1, L, d), guidance=one, cond=cond_d[1:2],
                 cond_mask=cond_mask[1:2]).x_hat
        l1 = ((x1 - x[1:2]) / 0.05).pow(2).mean(-1)[0, :3].sum()
        # row 2: decoding at t = 1 on lambda-noised latents (sigma_d = 1)
        zd = dr.lam[2:, :, None] * x[2:] + (1 - dr.lam[2:, :, None]) * dr.eps_dec[2:]
        h = net(zd, one, self_cond=torch.zeros(1, L, d), guidance=one, decode=torch.tensor([True]),
                cond=cond_d[2:], cond_mask=cond_mask[2:]).hidden
        l2 = F.cross_entropy(net.token_logits(h)[0], ids[2], reduction="sum")
    assert torch.allclose(loss, (l0 + l1 + l2) / 11, rtol=1e-4, atol=1e-5)


def test_no_decode_rows_still_give_the_token_head_a_zero_gradient():
    x, ids, loss_mask, dr = _fixed_draws()
    dr.decode[:] = False
    net = ToyDenoiser()
    loss, stats = flow_loss_from_draws(net, x, ids, loss_mask, FlowConfig(), dr)
    loss.backward()
    assert "ce" not in stats
    assert net.head.weight.grad is not None and torch.all(net.head.weight.grad == 0)  # DDP sees every parameter
