"""Released ELF checkpoint loading: key table, shapes, strictness, file discovery, config inference."""
from __future__ import annotations

import argparse

import pytest
import torch

from elfs2t.models.denoiser import DenoiserConfig, ElfDenoiser
from elfs2t.models.elf_checkpoint import (
    ElfCheckpointError,
    find_checkpoint_file,
    infer_denoiser_config,
    load_elf_checkpoint,
    map_released_keys,
    denoiser_from_elf_checkpoint,
)


def released_shapes(depth: int, hidden: int, heads: int, d: int, vocab: int, freq: int = 256,
                    bottleneck: int = 128, n_tok: int = 4) -> dict[str, tuple[int, ...]]:
    """Key names and shapes of the released ELF PyTorch module, written out independently of our code."""
    ffn = int(int(hidden * 4.0) * 2 / 3)  # released SwiGLUFFN(dim, int(H * mlp_ratio=4)) -> int(hidden * 2/3)
    shapes: dict[str, tuple[int, ...]] = {
        "t_emb_tokens": (1, n_tok, hidden), "self_cond_cfg_tokens": (1, n_tok, hidden), "mode_tokens": (1, n_tok, hidden),
        "proj_kernel": (hidden, d), "proj_bias": (d,), "unembed_kernel": (d, vocab), "unembed_bias": (vocab,),
        "self_cond_proj.weight": (d, 2 * d), "self_cond_proj.bias": (d,),
        "text_proj.proj1.weight": (bottleneck, d), "text_proj.proj2.weight": (hidden, bottleneck),
        "text_proj.proj2.bias": (hidden,),
        "final_layer.norm_final.weight": (hidden,), "final_layer.linear.weight": (d, hidden),
        "final_layer.linear.bias": (d,),
    }
    for emb in ("t_embedder", "self_cond_cfg_embedder"):
        shapes.update({f"{emb}.mlp.0.weight": (hidden, freq), f"{emb}.mlp.0.bias": (hidden,),
                       f"{emb}.mlp.2.weight": (hidden, hidden), f"{emb}.mlp.2.bias": (hidden,)})
    for i in range(depth):
        b = f"blocks.{i}."
        shapes.update({
            b + "norm1.weight": (hidden,), b + "norm2.weight": (hidden,),
            b + "attn.qkv.weight": (3 * hidden, hidden), b + "attn.qkv.bias": (3 * hidden,),
            b + "attn.q_norm.weight": (hidden // heads,), b + "attn.k_norm.weight": (hidden // heads,),
            b + "attn.proj.weight": (hidden, hidden), b + "attn.proj.bias": (hidden,),
            b + "mlp.w12.weight": (2 * ffn, hidden), b + "mlp.w12.bias": (2 * ffn,),
            b + "mlp.w3.weight": (hidden, ffn), b + "mlp.w3.bias": (hidden,),
        })
    return shapes


SMALL = dict(depth=2, hidden=24, heads=2, d=8, vocab=13, freq=16, bottleneck=4)


def small_state(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) * 0.1 for k, s in released_shapes(**SMALL).items()}


def small_model() -> ElfDenoiser:
    return ElfDenoiser(DenoiserConfig(latent_dim=8, vocab_size=13, hidden=24, depth=2, heads=2, bottleneck=4, freq_dim=16))


@pytest.fixture()
def ckpt_dir(tmp_path):
    for step, seed in ((100, 1), (2000, 2)):
        torch.save({"params": small_state(seed + 10), "ema_params1": small_state(seed), "step": step},
                   tmp_path / f"checkpoint_{step}")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    return tmp_path


def test_elf_b_key_set_and_shapes_match_our_model():
    spec = released_shapes(depth=12, hidden=768, heads=12, d=512, vocab=32100)
    with torch.device("meta"):
        model = ElfDenoiser(DenoiserConfig.from_size("ELF-B", latent_dim=512, vocab_size=32100))
    # head_ids (empty: the full-vocabulary head) is ours: released checkpoints hold full heads
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items() if k != "head_ids"}
    mapped = {k: tuple(v.shape) for k, v in map_released_keys({k: torch.empty(s, device="meta") for k, s in spec.items()}).items()}
    assert mapped == ours
    cfg = infer_denoiser_config({k: torch.empty(s, device="meta") for k, s in spec.items()})
    assert (cfg.depth, cfg.hidden, cfg.heads, cfg.latent_dim, cfg.vocab_size) == (12, 768, 12, 512, 32100)
    assert cfg.ffn_inner is None and cfg.bottleneck == 128 and cfg.freq_dim == 256 and cfg.num_mode_tokens == 4


def test_directory_picks_highest_step_and_values_land(ckpt_dir):
    assert find_checkpoint_file(ckpt_dir).name == "checkpoint_2000"
    model = small_model()
    report = load_elf_checkpoint(model, ckpt_dir)
    expected = small_state(2)
    assert report["loaded"] == len(expected) and report["file"].endswith("checkpoint_2000")
    assert torch.equal(model.blocks[1].mlp.w12.weight, expected["blocks.1.mlp.w12.weight"])
    assert torch.equal(model.blocks[0].attn.q_norm.weight, expected["blocks.0.attn.q_norm.weight"])
    assert torch.equal(model.proj_kernel, expected["proj_kernel"])
    assert torch.equal(model.unembed_kernel, expected["unembed_kernel"])
    assert torch.equal(model.final_layer.linear.weight, expected["final_layer.linear.weight"])
    assert torch.equal(model.self_cond_cfg_embedder.mlp[2].weight, expected["self_cond_cfg_embedder.mlp.2.weight"])
    out = model(torch.randn(1, 3, 8), torch.rand(1))
    assert out.x_hat.abs().sum() > 0  # loaded flow head is no longer zero


def test_which_params_and_single_file(ckpt_dir):
    model = small_model()
    load_elf_checkpoint(model, ckpt_dir / "checkpoint_100", which="params")
    assert torch.equal(model.mode_tokens, small_state(11)["mode_tokens"])
    with pytest.raises(ElfCheckpointError, match="ema_params2.*entries"):
        load_elf_checkpoint(model, ckpt_dir, which="ema_params2")


@pytest.mark.parametrize("damage, key", [
    ("drop", "blocks.1.attn.k_norm.weight"),
    ("extra", "blocks.2.norm1.weight"),
    ("shape", "unembed_kernel"),
])
def test_strict_rejects_and_names_the_key(tmp_path, damage, key):
    state = small_state(3)
    if damage == "drop":
        del state[key]
    elif damage == "extra":
        state[key] = torch.ones(24)
    else:
        state[key] = torch.zeros(8, 14)
    torch.save({"ema_params1": state}, tmp_path / "checkpoint_7")
    model = small_model()
    before = model.proj_kernel.detach().clone()
    with pytest.raises(ElfCheckpointError, match=key.replace(".", r"\.")) as info:
        load_elf_checkpoint(model, tmp_path)
    assert "checkpoint_7" in str(info.value)
    assert torch.equal(model.proj_kernel, before)  # nothing copied on a strict failure
    report = load_elf_checkpoint(model, tmp_path, strict=False)  # the rest loads
    assert torch.equal(model.proj_kernel, state["proj_kernel"])
    assert report["loaded"] == len(dict(model.named_parameters())) - (damage != "extra")


def test_list_entry_in_released_parameter_order(tmp_path):
    state = small_state(4)
    model_ref = small_model()
    # a list entry is in the released named_parameters() order, which our module reproduces
    ordered = [state[name] for name, _ in model_ref.named_parameters()]
    torch.save({"ema_params1": ordered, "args": argparse.Namespace(model="ELF-B")}, tmp_path / "checkpoint_1")
    model = denoiser_from_elf_checkpoint(tmp_path)  # the Namespace needs full unpickling
    assert model.cfg.depth == 2 and model.cfg.hidden == 24 and model.cfg.heads == 2
    for name, p in model.named_parameters():
        assert torch.equal(p, state[name]), name


def test_nested_and_prefixed_dicts(tmp_path):
    state = small_state(5)
    nested: dict = {}
    for name, tensor in state.items():
        node = nested
        parts = ("module." + name).split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = tensor
    torch.save({"ema_params1": nested}, tmp_path / "checkpoint_3")
    model = small_model()
    load_elf_checkpoint(model, tmp_path)
    assert torch.equal(model.blocks[0].attn.qkv.bias, state["blocks.0.attn.qkv.bias"])


def test_file_discovery_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint_<step>"):
        find_checkpoint_file(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        find_checkpoint_file(tmp_path / "missing" / "deeper")
    bad = tmp_path / "checkpoint_9"
    bad.write_bytes(b"garbage")
    with pytest.raises(ElfCheckpointError, match="checkpoint_9"):
        load_elf_checkpoint(small_model(), bad)


def test_hub_id_offline_gives_clear_error(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # "owner/name" does not exist locally, so it is taken as a hub id
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="embedded-language-flows/ELF-B-owt-torch.*hub id"):
        find_checkpoint_file("embedded-language-flows/ELF-B-owt-torch")


def released_forward(s: dict[str, torch.Tensor], z, c, t, w, decode: bool, heads: int, attn_mask=None):
    """Direct re-implementation of the released ELF forward from its state dict (float softmax, -1e9 mask)."""
    import math

    import torch.nn.functional as F

    def rms(x, weight, eps=1e-6):
        return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def sinus(v, dim):
        half = dim // 2
        f = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
        a = v[:, None] * f[None]
        return torch.cat([a.cos(), a.sin()], -1)

    def embed(prefix, v):
        h = F.linear(sinus(v, s[prefix + ".mlp.0.weight"].shape[1]), s[prefix + ".mlp.0.weight"], s[prefix + ".mlp.0.bias"])
        return F.linear(F.silu(h), s[prefix + ".mlp.2.weight"], s[prefix + ".mlp.2.bias"])

    b, length, _ = z.shape
    x = F.linear(torch.cat([z, c], -1), s["self_cond_proj.weight"], s["self_cond_proj.bias"])
    x = F.linear(F.linear(x, s["text_proj.proj1.weight"]), s["text_proj.proj2.weight"], s["text_proj.proj2.bias"])
    mode = s["mode_tokens"].expand(b, -1, -1) * float(decode)
    pre = [s["t_emb_tokens"] + embed("t_embedder", t)[:, None], s["self_cond_cfg_tokens"] + embed("self_cond_cfg_embedder", w)[:, None]]
    x = torch.cat(pre + [mode, x], 1)
    n_pre = x.shape[1] - length
    hid = x.shape[-1]
    hd = hid // heads
    freqs = 1.0 / 10000 ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd)
    ang = (torch.arange(length, dtype=torch.float32)[:, None] * freqs).repeat_interleave(2, -1)
    cos = torch.cat([torch.ones(n_pre, hd), ang.cos()])
    sin = torch.cat([torch.zeros(n_pre, hd), ang.sin()])

    def rope(v):
        p = v.reshape(*v.shape[:-1], -1, 2)
        return v * cos + torch.stack((-p[..., 1], p[..., 0]), -1).flatten(-2) * sin

    mask = None if attn_mask is None else torch.cat([torch.ones(b, n_pre, dtype=torch.bool), attn_mask], 1)
    i = 0
    while f"blocks.{i}.norm1.weight" in s:
        p = f"blocks.{i}."
        qkv = F.linear(rms(x, s[p + "norm1.weight"]), s[p + "attn.qkv.weight"], s[p + "attn.qkv.bias"])
        qkv = qkv.reshape(b, -1, 3, heads, hd).permute(2, 0, 3, 1, 4)
        q, k, v = rope(rms(qkv[0], s[p + "attn.q_norm.weight"])), rope(rms(qkv[1], s[p + "attn.k_norm.weight"])), qkv[2]
        att = q @ k.transpose(-2, -1) / math.sqrt(hd)
        if mask is not None:
            att = att.masked_fill(~mask[:, None, None, :], -1e9)
        a = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, -1, hid)
        x = x + F.linear(a, s[p + "attn.proj.weight"], s[p + "attn.proj.bias"])
        u, g = F.linear(rms(x, s[p + "norm2.weight"]), s[p + "mlp.w12.weight"], s[p + "mlp.w12.bias"]).chunk(2, -1)
        x = x + F.linear(F.silu(u) * g, s[p + "mlp.w3.weight"], s[p + "mlp.w3.bias"])
        i += 1
    x = x[:, n_pre:]
    x_hat = F.linear(rms(x, s["final_layer.norm_final.weight"]), s["final_layer.linear.weight"], s["final_layer.linear.bias"])
    logits = F.gelu(x @ s["proj_kernel"] + s["proj_bias"], approximate="tanh") @ s["unembed_kernel"] + s["unembed_bias"]
    return x_hat, logits


@pytest.mark.parametrize("decode", [False, True])
def test_loaded_model_matches_released_forward(tmp_path, decode):
    state = small_state(6)
    torch.save({"ema_params1": state}, tmp_path / "checkpoint_1")
    model = small_model()
    load_elf_checkpoint(model, tmp_path)
    torch.manual_seed(0)
    z, c, t, w = torch.randn(2, 5, 8) * 2, torch.randn(2, 5, 8), torch.rand(2), 1 + 4 * torch.rand(2)
    text_mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    ref_x, ref_logits = released_forward(state, z, c, t, w, decode, heads=2, attn_mask=text_mask)
    out = model(z, t, self_cond=c, guidance=w, decode=torch.full((2,), decode), text_mask=text_mask)
    assert torch.allclose(out.x_hat, ref_x, atol=1e-5)
    assert torch.allclose(model.token_logits(out.hidden), ref_logits, atol=1e-5)
