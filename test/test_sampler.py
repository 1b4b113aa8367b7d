"""ELF samplers: grids, Euler/SDE steps, CFG batching, self-cond feedback, decoding."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from elfs2t.config import ConfigError, structure
from elfs2t.flow.objective import FlowConfig
from elfs2t.flow.sampler import SamplerConfig, decode_tokens, generate_ids, guided_forward, sample_latents

FLOW = FlowConfig()  # the paper's path constants, trained with self-conditioning (self_cond_prob 0.5)
from elfs2t.flow.time import time_grid


class ToyDenoiser(nn.Module):
    """Contract-following denoiser with a nonlinear closed form that depends on every input."""

    def __init__(self, d: int = 3, hidden: int = 4, vocab: int = 6) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.mix = nn.Linear(d, d)
        self.proj = nn.Linear(d, hidden)
        self.head = nn.Linear(hidden, vocab)
        self.calls: list[dict] = []

    def forward(self, z, t, self_cond=None, guidance=None, decode=None, cond=None, cond_mask=None, text_mask=None):
        self.calls.append(dict(B=z.shape[0], z=z.clone(), t=t.clone(), decode=decode,
                               self_cond=None if self_cond is None else self_cond.clone(),
                               guidance=None if guidance is None else guidance.clone(),
                               cond=None if cond is None else cond.clone()))
        c = torch.zeros_like(z) if self_cond is None else self_cond
        x_hat = torch.tanh(self.mix(z)) + 0.3 * c + 0.1 * t[:, None, None]
        if guidance is not None:
            x_hat = x_hat * guidance[:, None, None].sqrt()
        if cond is not None:
            x_hat = x_hat + torch.sin(cond.sum(dim=(1, 2)))[:, None, None]
        return SimpleNamespace(x_hat=x_hat, hidden=self.proj(z))

    def token_logits(self, hidden, vocab=None):
        logits = self.head(hidden)
        return logits if vocab is None else logits[..., vocab]


def test_grids():
    for kind in ("logit_normal", "uniform"):
        g = time_grid(7, kind, seed=3)
        assert g.shape == (8,) and g[0] == 0 and g[-1] == 1
        assert torch.all(g[1:] >= g[:-1])
    assert torch.equal(time_grid(7, seed=3), time_grid(7, seed=3))
    assert not torch.equal(time_grid(7, seed=3), time_grid(7, seed=4))
    assert torch.allclose(time_grid(4, "uniform"), torch.tensor([0, 0.25, 0.5, 0.75, 1], dtype=torch.float64))
    assert time_grid(200, seed=0)[1:-1].mean() < 0.3  # drawn from the noise-biased training distribution
    assert time_grid(1).tolist() == [0.0, 1.0]


def _cond():
    g = torch.Generator().manual_seed(5)
    return torch.randn(2, 3, 4, generator=g), torch.tensor([[True, True, False], [True, True, True]])


def test_guidance_one_is_the_conditional_branch_in_one_forward():
    net = ToyDenoiser()
    cond, mask = _cond()
    z, t, c, w = torch.randn(2, 5, 3), torch.tensor([0.3, 0.6]), torch.randn(2, 5, 3), torch.ones(2)
    x = guided_forward(net, z, t, c, w, guidance=1.0, cond=cond, cond_mask=mask)
    assert len(net.calls) == 1 and net.calls[0]["B"] == 2
    assert torch.equal(x, net(z, t, self_cond=c, guidance=w, cond=cond, cond_mask=mask).x_hat)


def test_batched_guidance_equals_two_separate_forwards():
    net = ToyDenoiser()
    cond, mask = _cond()
    z, t, c, w = torch.randn(2, 5, 3), torch.tensor([0.3, 0.6]), torch.randn(2, 5, 3), torch.full((2,), 2.0)
    x = guided_forward(net, z, t, c, w, guidance=2.5, cond=cond, cond_mask=mask)
    assert len(net.calls) == 1 and net.calls[0]["B"] == 4  # one batched forward
    assert torch.all(net.calls[0]["cond"][2:] == 0)  # unconditional branch: zeros in the slots
    x_c = net(z, t, self_cond=c, guidance=w, cond=cond, cond_mask=mask).x_hat
    x_u = net(z, t, self_cond=c, guidance=w, cond=torch.zeros_like(cond), cond_mask=mask).x_hat
    assert torch.allclose(x, x_u + 2.5 * (x_c - x_u), atol=1e-6)


def test_euler_steps_self_cond_feedback_and_last_step_lands_on_x_hat():
    net = ToyDenoiser()
    cfg = SamplerConfig(steps=4, grid="uniform", self_cond_scale=1.5, seed=7)
    z_final = sample_latents(net, cfg, FLOW, batch_size=2, length=5, latent_dim=3)
    calls = [dict(c) for c in net.calls]
    assert len(calls) == 4
    # start: z = 2 eps with the seeded generator, c = 0, t = 0
    eps = torch.randn((2, 5, 3), generator=torch.Generator().manual_seed(7))
    assert torch.allclose(calls[0]["z"], 2.0 * eps)
    assert torch.all(calls[0]["self_cond"] == 0) and torch.all(calls[0]["t"] == 0)
    assert torch.allclose(calls[0]["guidance"], torch.full((2,), 1.5))
    grid = [0.0, 0.25, 0.5, 0.75, 1.0]
    for i in range(3):  # replay each Euler step by hand
        x_hat = net(calls[i]["z"], calls[i]["t"], self_cond=calls[i]["self_cond"], guidance=calls[i]["guidance"]).x_hat
        z_next = calls[i]["z"] + (grid[i + 1] - grid[i]) * (x_hat - calls[i]["z"]) / (1 - grid[i])
        assert torch.allclose(calls[i + 1]["z"], z_next, atol=1e-6)
        assert torch.allclose(calls[i + 1]["self_cond"], x_hat, atol=1e-6)  # c <- x_hat
        assert torch.allclose(calls[i + 1]["t"], torch.full((2,), grid[i + 1]))
    last = net(calls[3]["z"], calls[3]["t"], self_cond=calls[3]["self_cond"], guidance=calls[3]["guidance"]).x_hat
    assert torch.allclose(z_final, last, atol=1e-6)  # 1 - t = 0.25 >= clamp: the step lands on x_hat


def test_a_model_trained_without_self_conditioning_is_never_fed_it():
    net = ToyDenoiser()
    cfg = SamplerConfig(steps=4, grid="uniform", seed=7)
    sample_latents(net, cfg, FlowConfig(self_cond_prob=0.0), batch_size=2, length=5, latent_dim=3)
    assert len(net.calls) == 4 and all(torch.all(c["self_cond"] == 0) for c in net.calls)
    fed = ToyDenoiser()
    sample_latents(fed, cfg, FlowConfig(self_cond_prob=0.5), batch_size=2, length=5, latent_dim=3)
    assert all(bool(torch.any(c["self_cond"] != 0)) for c in fed.calls[1:])


def test_path_constants_come_from_the_model_unless_overridden():
    flow = FlowConfig(sigma_n=3.0, t_mean=0.5, t_std=0.3, t_clamp=0.2)
    net = ToyDenoiser()
    sample_latents(net, SamplerConfig(steps=3, seed=7), flow, batch_size=2, length=5, latent_dim=3)
    eps = torch.randn((2, 5, 3), generator=torch.Generator().manual_seed(7))
    assert torch.allclose(net.calls[0]["z"], 3.0 * eps)  # the model's sigma_n
    assert torch.allclose(net.calls[1]["t"], torch.full((2,), float(time_grid(3, mean=0.5, std=0.3, seed=7)[1])))
    over = SamplerConfig(steps=3, seed=7, sigma_n=1.0, t_mean=-1.0)
    assert over.overrides() == {"sigma_n": 1.0, "t_mean": -1.0}
    assert over.constants(flow) == {"sigma_n": 1.0, "t_mean": -1.0, "t_std": 0.3, "t_clamp": 0.2}
    net = ToyDenoiser()
    sample_latents(net, over, flow, batch_size=2, length=5, latent_dim=3)
    assert torch.allclose(net.calls[0]["z"], 1.0 * eps)


def test_sde_with_zero_churn_equals_ode_and_churn_changes_path():
    cond, mask = _cond()
    kw = dict(batch_size=2, length=5, latent_dim=3, cond=cond, cond_mask=mask)
    ode = sample_latents(ToyDenoiser(), SamplerConfig(steps=6, guidance=2.0, seed=1), FLOW, **kw)
    sde0 = sample_latents(ToyDenoiser(), SamplerConfig(steps=6, guidance=2.0, seed=1, method="sde", gamma=0.0), FLOW,
                          **kw)
    assert torch.allclose(ode, sde0, atol=1e-6)
    net = ToyDenoiser()
    sde = sample_latents(net, SamplerConfig(steps=6, grid="uniform", seed=1, method="sde", gamma=1.0), FLOW, **kw)
    assert not torch.allclose(ode, sde)
    # churn: the second forward runs at t_b = alpha t with alpha = 1 - gamma h = 5/6, t = 1/6
    assert torch.allclose(net.calls[1]["t"], torch.full((2,), (5 / 6) * (1 / 6)))
    # the last step is ODE: it starts at the grid time 5/6, not at alpha * 5/6
    assert torch.allclose(net.calls[-1]["t"], torch.full((2,), 5 / 6))


def test_decode_tokens_and_generate_ids():
    net = ToyDenoiser()
    cond, mask = _cond()
    z = torch.randn(2, 5, 3)
    ids = decode_tokens(net, z, cond=cond, cond_mask=mask)
    call = net.calls[-1]
    assert ids.shape == (2, 5) and ids.dtype == torch.long
    assert call["decode"].tolist() == [True, True] and torch.all(call["t"] == 1)
    assert torch.all(call["self_cond"] == 0) and torch.equal(call["cond"], cond)
    assert torch.equal(ids, net.head(net.proj(z)).argmax(-1))
    out = generate_ids(ToyDenoiser(), SamplerConfig(steps=3, seed=2), FLOW, batch_size=2, length=5, latent_dim=3,
                       cond=cond, cond_mask=mask)
    again = generate_ids(ToyDenoiser(), SamplerConfig(steps=3, seed=2), FLOW, batch_size=2, length=5, latent_dim=3,
                         cond=cond, cond_mask=mask)
    assert torch.equal(out, again)


@pytest.mark.parametrize("level", [0.0, 0.3])
def test_read_level_reads_the_final_latents_mixed_with_fresh_noise(level):
    """The decoding forward reads lambda z + (1 - lambda) sigma_d eps, eps drawn after the sampler's noise."""
    cond, mask = _cond()
    flow = FlowConfig(sigma_d=0.7)
    cfg = SamplerConfig(steps=3, guidance=2.0, seed=2)
    gen = torch.Generator().manual_seed(5)
    z = sample_latents(ToyDenoiser(), cfg, flow, batch_size=2, length=5, latent_dim=3, cond=cond, cond_mask=mask,
                       generator=gen)
    eps = torch.randn(2, 5, 3, generator=gen)
    net = ToyDenoiser()
    ids = generate_ids(net, cfg, flow, batch_size=2, length=5, latent_dim=3, cond=cond, cond_mask=mask,
                       generator=torch.Generator().manual_seed(5), read_level=level)
    read = net.calls[-1]
    assert read["decode"].tolist() == [True, True]
    torch.testing.assert_close(read["z"], level * z + (1 - level) * 0.7 * eps)
    assert torch.equal(ids, net.head(net.proj(read["z"])).argmax(-1))
    if level == 0.0:  # the flow is ignored: any number of steps reads the same noise
        other = generate_ids(ToyDenoiser(), SamplerConfig(steps=1, seed=2), flow, batch_size=2, length=5,
                             latent_dim=3, cond=cond, cond_mask=mask, generator=torch.Generator().manual_seed(5),
                             read_level=0.0)
        assert torch.equal(other, ids)
    with pytest.raises(ValueError, match="read_level=1.5 must be in"):
        generate_ids(ToyDenoiser(), cfg, flow, batch_size=2, length=5, latent_dim=3, read_level=1.5)


def test_decode_tokens_over_a_shortlist_returns_global_ids():
    net = ToyDenoiser()
    z = torch.randn(2, 5, 3)
    vocab = torch.tensor([1, 4, 5])
    ids = decode_tokens(net, z, vocab=vocab)
    assert torch.equal(ids, vocab[net.head(net.proj(z))[..., vocab].argmax(-1)])
    assert set(ids.unique().tolist()) <= {1, 4, 5}


def test_draft_start_enters_the_path_at_t_start():
    net = ToyDenoiser()
    x_init = torch.randn(2, 5, 3)
    cfg = SamplerConfig(steps=2, grid="uniform", seed=3)
    sample_latents(net, cfg, FLOW, batch_size=2, length=5, latent_dim=3, x_init=x_init, t_start=0.6)
    eps = torch.randn((2, 5, 3), generator=torch.Generator().manual_seed(3))
    assert torch.allclose(net.calls[0]["z"], 0.6 * x_init + 0.4 * 2.0 * eps, atol=1e-6)
    assert torch.allclose(net.calls[0]["t"], torch.full((2,), 0.6))  # grid [0, .5, 1] -> [.6, .8, 1]
    assert torch.allclose(net.calls[1]["t"], torch.full((2,), 0.8))
    with pytest.raises(ValueError, match="t_start=0.6 needs draft latents x_init"):
        sample_latents(ToyDenoiser(), cfg, FLOW, batch_size=2, length=5, latent_dim=3, t_start=0.6)
    with pytest.raises(ValueError, match=r"x_init have shape \(2, 4, 3\), expected \(2, 5, 3\)"):
        sample_latents(ToyDenoiser(), cfg, FLOW, batch_size=2, length=5, latent_dim=3, x_init=x_init[:, :4],
                       t_start=0.6)


def test_sampler_config_validation():
    with pytest.raises(ConfigError, match="steps"):
        structure(SamplerConfig, {"steps": 0})
    with pytest.raises(ConfigError, match="sigma_n"):
        structure(SamplerConfig, {"sigma_n": 0.0})
    with pytest.raises(ConfigError, match="unknown config key"):
        structure(SamplerConfig, {"decode_from": "x_hat"})


def _real_denoiser():
    from elfs2t.models.denoiser import DenoiserConfig, ElfDenoiser

    torch.manual_seed(0)
    net = ElfDenoiser(DenoiserConfig(latent_dim=8, vocab_size=11, hidden=32, depth=1, heads=2, bottleneck=16))
    with torch.no_grad():
        for p in net.final_layer.parameters():
            p.normal_(0, 0.3)
    return net.eval()


def test_real_denoiser_batched_guidance_and_samplers():
    net = _real_denoiser()
    g = torch.Generator().manual_seed(4)
    cond = torch.randn(2, 3, 32, generator=g)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    z, t, c = torch.randn(2, 5, 8, generator=g), torch.tensor([0.2, 0.7]), torch.randn(2, 5, 8, generator=g)
    w = torch.full((2,), 2.0)
    with torch.no_grad():
        x = guided_forward(net, z, t, c, w, guidance=3.0, cond=cond, cond_mask=mask)
        x_c = net(z, t, self_cond=c, guidance=w, cond=cond, cond_mask=mask).x_hat
        x_u = net(z, t, self_cond=c, guidance=w, cond=torch.zeros_like(cond), cond_mask=mask).x_hat
        assert torch.allclose(x, x_u + 3.0 * (x_c - x_u), atol=1e-5)
        assert torch.allclose(guided_forward(net, z, t, c, w, guidance=1.0, cond=cond, cond_mask=mask), x_c, atol=1e-6)
    kw = dict(batch_size=2, length=5, latent_dim=8, cond=cond, cond_mask=mask)
    ode = sample_latents(net, SamplerConfig(steps=5, guidance=2.0, seed=3), FLOW, **kw)
    sde0 = sample_latents(net, SamplerConfig(steps=5, guidance=2.0, seed=3, method="sde", gamma=0.0), FLOW, **kw)
    assert torch.allclose(ode, sde0, atol=1e-5)
    ids = generate_ids(net, SamplerConfig(steps=5, guidance=2.0, seed=3), FLOW, **kw)
    assert ids.shape == (2, 5) and int(ids.max()) < 11
