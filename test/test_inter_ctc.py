"""Self-conditioned intermediate CTC (``denoiser.inter_ctc``): the read-back against a hand computation, a new
model equal to the one without it, the loss mix of ELF-S2T, configuration errors, and loading a checkpoint
that predates it."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from elfs2t.config import ConfigError
from elfs2t.models.denoiser import DenoiserConfig, ElfDenoiser
from elfs2t.models.ctc_aux import restricted_ctc_loss
from elfs2t.models.elf_checkpoint import load_elf_checkpoint
from elfs2t.models.layers import rope_tables
from elfs2t.models.layout import attention_mask, sequence_positions

SIZES = dict(latent_dim=8, vocab_size=13, hidden=16, depth=3, heads=2, bottleneck=4, freq_dim=8, prefix_attention="self")


def model(inter_ctc=(), seed=0) -> ElfDenoiser:
    torch.manual_seed(seed)
    return ElfDenoiser(DenoiserConfig(**SIZES, inter_ctc=list(inter_ctc))).eval()


def condition(b=2, c=5):
    cond = torch.randn(b, c, 16)
    mask = torch.ones(b, c, dtype=torch.bool)
    mask[1, 3:] = False
    return cond, mask


def test_a_new_read_back_changes_nothing_until_it_learns():
    """Zero-initialised: the model with inter_ctc computes what the one without it computes (same other
    weights), yet the loss reaches the read-back's weight, so it learns from the first step."""
    plain, sc = model(), model([1, 2])
    sc.load_state_dict(plain.state_dict(), strict=False)
    cond, mask = condition()
    z, t = torch.randn(2, 4, 8), torch.full((2,), 0.5)
    a, b = plain(z, t, cond=cond, cond_mask=mask), sc(z, t, cond=cond, cond_mask=mask)
    assert torch.allclose(a.x_hat, b.x_hat, atol=1e-6) and torch.allclose(a.cond_hidden, b.cond_hidden, atol=1e-6)
    assert a.inter_hidden == () and len(b.inter_hidden) == 2
    sc.train()
    out = sc(z, t, cond=cond, cond_mask=mask)
    (out.cond_hidden * mask[..., None]).pow(2).sum().backward()
    assert sc.readback.weight.grad.abs().sum() > 0


def test_read_back_is_the_expected_unembedding_of_the_heads_softmax():
    """x + W (softmax(head(x)) @ U^T) + b over the restricted head's columns, written out by hand."""
    sc = model([1])
    sc.restrict_head(torch.tensor([0, 2, 5, 7]))
    with torch.no_grad():
        for p in sc.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    x = torch.randn(2, 5, 16)
    h = F.gelu(x @ sc.proj_kernel + sc.proj_bias, approximate="tanh")
    probs = (h @ sc.unembed_kernel + sc.unembed_bias).softmax(-1)  # (2, 5, 4)
    expected = x + (probs @ sc.unembed_kernel.t()) @ sc.readback.weight.t() + sc.readback.bias
    assert torch.allclose(sc.read_back(x), expected, atol=1e-5)
    # and the condition slots of a forward are read back after block 1: the state block 2 receives
    cond, mask = condition()
    enc = sc.encode_condition(cond, mask)
    assert len(enc.inter_hidden) == 1
    cos, sin = rope_tables(sequence_positions(0, mask, 0), 8, 1e4)
    attn = attention_mask(0, mask, mask[:, :0], "self")
    x1 = sc.blocks[0](cond * mask[..., None], cos, sin, attn)
    assert torch.allclose(enc.inter_hidden[0], x1, atol=1e-5)
    x3 = sc.blocks[2](sc.blocks[1](sc.read_back(x1), cos, sin, attn), cos, sin, attn)
    assert torch.allclose(enc.hidden[mask], x3[mask], atol=1e-4)


@pytest.mark.parametrize("changes, key", [
    (dict(inter_ctc=[3]), "inter_ctc"),  # depth 3: blocks 1..2
    (dict(inter_ctc=[0]), "inter_ctc"),
    (dict(inter_ctc=[1, 1]), "inter_ctc"),
    (dict(inter_ctc=[1], prefix_attention="full"), "inter_ctc"),
])
def test_config_errors_name_the_key(changes, key):
    with pytest.raises(ConfigError, match=key):
        ElfDenoiser(DenoiserConfig(**{**SIZES, **changes}))


def test_elf_s2t_ctc_is_the_mix_of_final_and_intermediate_readouts(tmp_path):
    from test_elf_s2t import tiny_cfg
    from elfs2t.data.dataset import S2TDataset
    from elfs2t.models.elf_s2t import ElfS2T
    from feature_fixtures import make_feature_cuts

    cuts = make_feature_cuts(tmp_path, ["a dog ran", "the cat sat down", "yes"], dim=8)
    batch = S2TDataset()[cuts]
    with pytest.raises(ConfigError, match="inter_ctc"):
        ElfS2T(tiny_cfg(denoiser={"hidden": 32, "depth": 2, "heads": 2, "bottleneck": 16, "prefix_attention": "self",
                                  "inter_ctc": [1]}))
    cfg = tiny_cfg(ctc_weight=1.0, ctc_warmup=0.5, inter_ctc_weight=0.3,
                   denoiser={"hidden": 32, "depth": 2, "heads": 2, "bottleneck": 16, "prefix_attention": "self",
                             "inter_ctc": [1]})
    m = ElfS2T(cfg)
    with torch.no_grad():
        m.denoiser.readback.weight.normal_(0, 0.3)  # a trained read-back: the final states depend on it
    m.begin_step(0, 0.0)  # the CTC warm-up: the loss is the CTC alone
    loss, stats = m(batch)
    cond, mask = m.condition(batch)
    enc = m.denoiser.encode_condition(cond, mask)
    ids = m.text_space.tokenize(batch["text"])
    flat, lens = m._ctc_targets(ids, batch["text"])

    def ctc(hidden):
        nll, n = restricted_ctc_loss(m.denoiser.token_logits, hidden, mask, flat, lens, m.text_space.pad_id)
        return nll / n

    expected = 0.7 * ctc(enc.hidden) + 0.3 * ctc(enc.inter_hidden[0])
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    assert float(ctc(enc.hidden).detach()) != pytest.approx(float(ctc(enc.inter_hidden[0]).detach()), rel=1e-3)
    m.begin_step(10, 0.9)  # past the warm-up: the full loss has the same CTC term, gradients reach the read-back
    loss, stats = m(batch)
    loss.backward()
    assert stats["ctc"] > 0 and m.denoiser.readback.weight.grad.abs().sum() > 0


def test_a_released_checkpoint_without_the_read_back_loads_strictly(tmp_path):
    from test_elf_checkpoint import small_state

    torch.save({"ema_params1": small_state(1), "step": 5}, tmp_path / "checkpoint_5")
    sizes = dict(latent_dim=8, vocab_size=13, hidden=24, depth=2, heads=2, bottleneck=4, freq_dim=16,
                 prefix_attention="self")
    sc = ElfDenoiser(DenoiserConfig(**sizes, inter_ctc=[1]))
    report = load_elf_checkpoint(sc, tmp_path, strict=True)
    assert report["missing"] == [] and torch.equal(sc.readback.weight, torch.zeros_like(sc.readback.weight))
    plain = ElfDenoiser(DenoiserConfig(**sizes))
    load_elf_checkpoint(plain, tmp_path, strict=True)
    z, t, cond = torch.randn(1, 3, 8), torch.rand(1), torch.randn(1, 4, 24)
    assert torch.allclose(sc(z, t, cond=cond).x_hat, plain(z, t, cond=cond).x_hat, atol=1e-6)
