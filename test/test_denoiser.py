"""ELF denoiser: RoPE, prefix tokens, masks, heads, sizes."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from elfs2t.config import ConfigError
from elfs2t.models.denoiser import DenoiserConfig, ElfDenoiser
from elfs2t.models.layers import RMSNorm, apply_rope, rope_tables, sinusoidal_embedding


def tiny_cfg(**kw) -> DenoiserConfig:
    base = dict(latent_dim=8, vocab_size=11, hidden=16, depth=2, heads=2, bottleneck=4, freq_dim=8)
    base.update(kw)
    return DenoiserConfig(**base)


def randomised(cfg: DenoiserConfig, seed: int = 0) -> ElfDenoiser:
    """A tiny denoiser whose every parameter (flow head included) is random, so nothing is trivially 0."""
    torch.manual_seed(seed)
    model = ElfDenoiser(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return model.eval()


def test_rope_hand_computation_and_unrotated_prefix():
    # head_dim 4: pair 0 frequency 1, pair 1 frequency theta^(-1/2) = 0.01
    positions = torch.tensor([[-1, 0, 2]])
    cos, sin = rope_tables(positions, 4, theta=1e4)
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).expand(1, 1, 3, 4)  # (B, heads, S, hd)
    out = apply_rope(x, cos, sin)
    assert torch.equal(out[0, 0, 0], x[0, 0, 0])  # prefix untouched
    assert torch.allclose(out[0, 0, 1], x[0, 0, 1])  # position 0 is the identity
    p, f0, f1 = 2.0, 1.0, 0.01
    expected = torch.tensor([
        1 * math.cos(p * f0) - 2 * math.sin(p * f0), 2 * math.cos(p * f0) + 1 * math.sin(p * f0),
        3 * math.cos(p * f1) - 4 * math.sin(p * f1), 4 * math.cos(p * f1) + 3 * math.sin(p * f1),
    ])
    assert torch.allclose(out[0, 0, 2], expected, atol=1e-6)


def test_sinusoidal_order_cos_then_sin():
    emb = sinusoidal_embedding(torch.tensor([0.5]), 4)
    freqs = [1.0, 1e4 ** -0.5]
    expected = [math.cos(0.5 * freqs[0]), math.cos(0.5 * freqs[1]), math.sin(0.5 * freqs[0]), math.sin(0.5 * freqs[1])]
    assert torch.allclose(emb[0], torch.tensor(expected), atol=1e-6)


def test_rmsnorm_formula():
    norm = RMSNorm(2, eps=0.0)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0]))
    out = norm(torch.tensor([[3.0, 4.0]]))
    rms = math.sqrt((9 + 16) / 2)
    assert torch.allclose(out, torch.tensor([[3 / rms, 8 / rms]]))


def test_zero_init_flow_head_gives_zero_x_hat():
    torch.manual_seed(0)
    model = ElfDenoiser(tiny_cfg())
    out = model(torch.randn(2, 5, 8), torch.rand(2))
    assert out.x_hat.shape == (2, 5, 8) and out.hidden.shape == (2, 5, 16)
    assert torch.count_nonzero(out.x_hat) == 0
    assert out.hidden.abs().sum() > 0


def test_mode_tokens_only_matter_in_decoding_rows():
    model = randomised(tiny_cfg())
    z, t, w = torch.randn(2, 5, 8), torch.rand(2), torch.rand(2) * 3
    decode = torch.tensor([False, True])
    before = model(z, t, guidance=w, decode=decode)
    with torch.no_grad():
        model.mode_tokens.add_(torch.randn_like(model.mode_tokens))
    after = model(z, t, guidance=w, decode=decode)
    assert torch.allclose(before.x_hat[0], after.x_hat[0], atol=1e-6)  # denoising row unchanged
    assert not torch.allclose(before.x_hat[1], after.x_hat[1], atol=1e-4)  # decoding row changed


def test_time_and_guidance_enter_the_output():
    model = randomised(tiny_cfg())
    z = torch.randn(1, 5, 8)
    a = model(z, torch.tensor([0.2]), guidance=torch.tensor([1.0])).x_hat
    b = model(z, torch.tensor([0.7]), guidance=torch.tensor([1.0])).x_hat
    c = model(z, torch.tensor([0.2]), guidance=torch.tensor([3.0])).x_hat
    assert not torch.allclose(a, b, atol=1e-4) and not torch.allclose(a, c, atol=1e-4)


def test_padded_condition_slots_do_not_affect_outputs():
    model = randomised(tiny_cfg())
    z, t = torch.randn(2, 5, 8), torch.rand(2)
    cond = torch.randn(2, 4, 16)
    cond_mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    out1 = model(z, t, cond=cond, cond_mask=cond_mask)
    cond2 = cond.clone()
    cond2[0, 2:] = torch.randn(2, 16) * 10
    out2 = model(z, t, cond=cond2, cond_mask=cond_mask)
    assert torch.allclose(out1.x_hat, out2.x_hat, atol=1e-5)
    # and a row with 2 real slots equals the same row given only those 2 slots (positions skip padding)
    alone = model(z[:1], t[:1], cond=cond[:1, :2], cond_mask=torch.ones(1, 2, dtype=torch.bool))
    assert torch.allclose(alone.x_hat, out1.x_hat[:1], atol=1e-5)
    # real slots do matter
    cond3 = cond.clone()
    cond3[0, 0] += 1.0
    assert not torch.allclose(model(z, t, cond=cond3, cond_mask=cond_mask).x_hat[0], out1.x_hat[0], atol=1e-4)


def test_text_padding_is_not_attended():
    model = randomised(tiny_cfg())
    z, t = torch.randn(1, 6, 8), torch.rand(1)
    text_mask = torch.tensor([[True] * 4 + [False] * 2])
    out1 = model(z, t, text_mask=text_mask)
    z2 = z.clone()
    z2[0, 4:] = torch.randn(2, 8)
    out2 = model(z2, t, text_mask=text_mask)
    assert torch.allclose(out1.x_hat[:, :4], out2.x_hat[:, :4], atol=1e-5)
    short = model(z[:, :4], t)
    assert torch.allclose(short.x_hat, out1.x_hat[:, :4], atol=1e-5)


def test_batch_independence():
    model = randomised(tiny_cfg())
    z, t, w, sc = torch.randn(3, 5, 8), torch.rand(3), torch.rand(3), torch.randn(3, 5, 8)
    decode = torch.tensor([True, False, True])
    cond, cond_mask = torch.randn(3, 2, 16), torch.tensor([[True, False], [True, True], [True, True]])
    full = model(z, t, self_cond=sc, guidance=w, decode=decode, cond=cond, cond_mask=cond_mask)
    perm = torch.tensor([2, 0, 1])
    permuted = model(z[perm], t[perm], self_cond=sc[perm], guidance=w[perm], decode=decode[perm],
                     cond=cond[perm], cond_mask=cond_mask[perm])
    assert torch.allclose(full.x_hat[perm], permuted.x_hat, atol=1e-5)
    single = model(z[1:2], t[1:2], self_cond=sc[1:2], guidance=w[1:2], decode=decode[1:2],
                   cond=cond[1:2], cond_mask=cond_mask[1:2])
    assert torch.allclose(full.hidden[1:2], single.hidden, atol=1e-5)


def test_residual_dropout_only_in_training():
    """dropout > 0 randomises training forwards and leaves eval forwards equal to the dropout-free block."""
    plain, dropped = randomised(tiny_cfg()), randomised(tiny_cfg(dropout=0.5))
    args = (torch.randn(2, 5, 8), torch.rand(2))
    kw = dict(decode=torch.tensor([True, False]), cond=torch.randn(2, 3, 16), cond_mask=torch.ones(2, 3, dtype=torch.bool))
    assert torch.allclose(plain(*args, **kw).x_hat, dropped(*args, **kw).x_hat)  # eval: identical weights, no drop
    dropped.train()
    a, b = dropped(*args, **kw).x_hat, dropped(*args, **kw).x_hat
    assert not torch.allclose(a, b)
    with pytest.raises(ConfigError, match="dropout"):
        ElfDenoiser(tiny_cfg(dropout=1.0))


def test_self_cond_none_equals_zeros():
    model = randomised(tiny_cfg())
    z, t = torch.randn(2, 5, 8), torch.rand(2)
    assert torch.allclose(model(z, t).x_hat, model(z, t, self_cond=torch.zeros_like(z)).x_hat)
    assert not torch.allclose(model(z, t).x_hat, model(z, t, self_cond=torch.randn_like(z)).x_hat, atol=1e-4)


def test_token_head_formula():
    model = randomised(tiny_cfg())
    hidden = torch.randn(2, 3, 16)
    p, pb, u, ub = model.proj_kernel, model.proj_bias, model.unembed_kernel, model.unembed_bias
    h = hidden @ p + pb
    gelu_tanh = 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3)))
    expected = gelu_tanh @ u + ub
    assert torch.allclose(model.token_logits(hidden), expected, atol=1e-5)
    assert model.token_logits(hidden).shape == (2, 3, 11)


def test_restricted_head_keeps_the_columns_and_round_trips():
    model = randomised(tiny_cfg())
    hidden = torch.randn(2, 3, 16)
    full = model.token_logits(hidden)
    ids = torch.tensor([0, 3, 4, 9])
    model.restrict_head(ids)
    assert model.unembed_kernel.shape == (8, 4) and model.unembed_bias.shape == (4,)
    assert torch.allclose(model.token_logits(hidden, ids), full[..., ids], atol=1e-5)  # the same logits
    assert torch.allclose(model.token_logits(hidden, torch.tensor([9, 3])), full[..., [9, 3]], atol=1e-5)
    with pytest.raises(ValueError, match="not in the restricted token head"):
        model.token_logits(hidden, torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="pass vocab"):
        model.token_logits(hidden)
    with pytest.raises(ValueError, match="sorted"):
        model.restrict_head(torch.tensor([4, 3]))
    # a fresh full-vocabulary model loading the checkpoint takes the restricted head (and its ids)
    fresh = ElfDenoiser(tiny_cfg()).eval()
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh.head_ids, ids)
    assert torch.allclose(fresh.token_logits(hidden, ids), full[..., ids], atol=1e-5)
    # only the kept columns are trained
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ElfDenoiser(tiny_cfg()).parameters()) - 7 * 9


def test_hidden_is_raw_residual_and_flow_head_reads_it():
    model = randomised(tiny_cfg())
    out = model(torch.randn(2, 5, 8), torch.rand(2))
    assert torch.allclose(out.x_hat, model.final_layer.linear(model.final_layer.norm_final(out.hidden)), atol=1e-6)
    # the last block's output is not normalised: its RMS is not 1 everywhere
    rms = out.hidden.pow(2).mean(-1).sqrt()
    assert not torch.allclose(rms, torch.ones_like(rms), atol=1e-2)


def test_condition_latents_embed_like_clean_text():
    model = randomised(tiny_cfg())
    x = torch.randn(2, 3, 8)
    emb = model.embed_condition_latents(x)
    manual = model.text_proj.proj2(model.text_proj.proj1(model.self_cond_proj(torch.cat([x, torch.zeros_like(x)], -1))))
    assert emb.shape == (2, 3, 16) and torch.allclose(emb, manual, atol=1e-6)


def test_gradients_flow_to_all_parameters():
    model = randomised(tiny_cfg())
    out = model(torch.randn(2, 5, 8), torch.rand(2), guidance=torch.rand(2), decode=torch.tensor([True, False]),
                cond=torch.randn(2, 2, 16))
    (out.x_hat.sum() + model.token_logits(out.hidden).sum()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


def test_elf_b_size_about_105m():
    with torch.device("meta"):
        model = ElfDenoiser(DenoiserConfig.from_size("ELF-B", latent_dim=512, vocab_size=32100))
    n = model.num_parameters()
    assert 100e6 < n < 110e6, n
    assert model.blocks[0].mlp.w12.weight.shape == (2 * 2048, 768)
    assert model.proj_kernel.shape == (768, 512) and model.unembed_kernel.shape == (512, 32100)


@pytest.mark.parametrize("kw, key", [(dict(hidden=18, heads=4), "hidden"), (dict(hidden=18, heads=6), "heads"),
                                     (dict(depth=0), "depth")])
def test_bad_config_names_key(kw, key):
    with pytest.raises(ConfigError, match=key):
        ElfDenoiser(tiny_cfg(**kw))


def test_bad_shapes_raise():
    model = ElfDenoiser(tiny_cfg())
    with pytest.raises(ValueError, match="z has shape"):
        model(torch.randn(2, 5, 7), torch.rand(2))
    with pytest.raises(ValueError, match="cond_mask"):
        model(torch.randn(2, 5, 8), torch.rand(2), cond=torch.randn(2, 3, 16), cond_mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="cond has shape"):
        model(torch.randn(2, 5, 8), torch.rand(2), cond=torch.randn(2, 3, 8))


def test_scalar_time_broadcasts():
    model = randomised(tiny_cfg())
    z = torch.randn(2, 5, 8)
    assert torch.allclose(model(z, torch.tensor(0.3)).x_hat, model(z, torch.full((2,), 0.3)).x_hat)
    assert F.mse_loss(model(z, 0.3).x_hat, model(z, torch.full((2,), 0.3)).x_hat) == 0


@pytest.mark.parametrize("scale, expected_text", [(0.0, [[3, 4, 5, 6], [2, 3, 4, 5]]), (2.5, [[0, 2, 5, 8]] * 2)])
def test_text_positions_after_condition_or_on_its_axis(monkeypatch, scale, expected_text):
    """ELF layout: text numbered after the real condition slots; text_pos_scale: slot i at round(i * scale)."""
    import elfs2t.models.denoiser as mod

    seen = []
    monkeypatch.setattr(mod, "rope_tables", lambda pos, *a: (seen.append(pos.clone()), rope_tables(pos, *a))[1])
    model = randomised(tiny_cfg(text_pos_scale=scale))
    cond_mask = torch.tensor([[True, True, True], [True, True, False]])
    model(torch.randn(2, 4, 8), torch.rand(2), cond=torch.randn(2, 3, 16), cond_mask=cond_mask)
    n_prefix = model.num_prefix_tokens - model.cfg.num_guidance_tokens  # no guidance given
    pos = seen[0]
    assert (pos[:, :n_prefix] == -1).all()
    assert pos[:, n_prefix:n_prefix + 3].tolist() == [[0, 1, 2], [0, 1, -1]]
    assert pos[:, n_prefix + 3:].tolist() == expected_text
    # round() is half-to-even in torch: 2.5 -> 2, 7.5 -> 8
