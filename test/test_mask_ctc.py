"""Mask-CTC in the latent space: training masks, the greedy CTC readout with confidences, easy-first filling,
and ELF-S2T's mask rows and ``sampler.refine: mask``."""
import pytest
import torch

from elfs2t.config import ConfigError, structure
from elfs2t.experiment import DecodeConfig
from elfs2t.flow.sampler import SamplerConfig
from elfs2t.models.elf_s2t import ElfS2T
from elfs2t.models.mask_ctc import ctc_greedy, mask_predict, mask_tokens
from test_elf_s2t import batch, tiny_cfg  # noqa: F401 (fixture)

MASK = 99


def test_mask_tokens_masks_between_one_and_all_content_tokens():
    ids = torch.tensor([[1, 10, 11, 12, 13, 2, 2], [1, 20, 2, 2, 2, 2, 2], [1, 2, 2, 2, 2, 2, 2]])
    content = (ids != 1) & (ids != 2)
    g = torch.Generator().manual_seed(0)
    counts = []
    for _ in range(200):
        masked, mask = mask_tokens(ids, content, MASK, g)
        assert not bool((mask & ~content).any())  # specials are never masked
        assert torch.equal(masked[~mask], ids[~mask]) and bool((masked[mask] == MASK).all())
        assert int(mask[1].sum()) == 1 and int(mask[2].sum()) == 0  # at least one; none without content
        counts.append(int(mask[0].sum()))
    assert min(counts) >= 1 and max(counts) == 4  # k = max(1, round(r * 4)), r ~ U(0, 1]
    assert set(counts) == {1, 2, 3, 4}
    assert torch.equal(ids[0], torch.tensor([1, 10, 11, 12, 13, 2, 2]))  # the input is not modified
    with pytest.raises(ValueError, match="differ"):
        mask_tokens(ids, content[:, :3], MASK)


def test_ctc_greedy_merges_runs_drops_blanks_and_keeps_the_best_posterior_of_a_run():
    best = torch.tensor([[5, 5, 0, 5, 7, 7, 0, 9], [0, 3, 3, 3, 0, 0, 0, 0]])
    prob = torch.tensor([[.5, .9, .99, .6, .3, .8, .9, .7], [.9, .2, .4, .3, .9, .9, .9, .9]])
    tokens, confs, frames, peaks = ctc_greedy(best, prob, torch.tensor([7, 8]), blank=0)
    assert tokens == [[5, 5, 7], [3]]  # frame 7 of row 0 (the 9) is past its length
    assert confs == [pytest.approx([.9, .6, .8]), pytest.approx([.4])]
    assert frames == [[0, 3, 4], [1]]
    assert peaks == [[1, 3, 5], [2]]  # the frame of each run's best posterior


def test_mask_predict_fills_the_most_confident_masks_first():
    ids = torch.tensor([[1, 10, 11, 12, 13, 2]])
    masked = torch.tensor([[False, True, False, True, True, False]])
    calls = []

    def logits_fn(x):
        calls.append(x.clone())
        pred = torch.tensor([[1, 50, 51, 52, 53, 2]])
        prob = torch.tensor([[1., .3, .99, .9, .6, 1.]])
        return pred, prob

    out = mask_predict(logits_fn, ids, masked, MASK, iters=2)
    assert torch.equal(out, torch.tensor([[1, 50, 11, 52, 53, 2]]))  # position 2 was not masked: kept
    assert torch.equal(calls[0], torch.tensor([[1, MASK, 11, MASK, MASK, 2]]))
    # first pass: ceil(3 / 2) = 2 fills, the two most confident (positions 3, 4); then position 1 alone
    assert torch.equal(calls[1], torch.tensor([[1, MASK, 11, 52, 53, 2]]))
    assert len(calls) == 2
    assert torch.equal(mask_predict(logits_fn, ids, torch.zeros_like(masked), MASK, iters=3), ids)  # nothing to do
    with pytest.raises(ValueError, match="iters"):
        mask_predict(logits_fn, ids, masked, MASK, iters=0)


def test_mask_rows_read_the_true_text_partly_masked_and_clean(batch, monkeypatch):  # noqa: F811
    import elfs2t.models.elf_s2t as elf_module

    model = ElfS2T(tiny_cfg(draft_frac=1.0, draft_rows="mask", flow={"decode_frac": 1.0, "p_drop": 0.0}))
    ts = model.text_space
    seen = {}
    real = elf_module.flow_loss_from_draws

    def spy(denoiser, x, ids, *args, **kw):
        seen.update(ids=ids, draws=args[2], x_in=kw["x_in"])
        return real(denoiser, x, ids, *args, **kw)

    monkeypatch.setattr(elf_module, "flow_loss_from_draws", spy)
    loss, stats = model(batch)  # no CTC needed
    assert stats["frac_draft"] == 1.0 and "ce" in stats
    assert torch.equal(seen["ids"], ts.tokenize([t.lower() for t in batch["text"]]))  # targets: the true text
    assert torch.equal(seen["draws"].lam, torch.ones_like(seen["draws"].lam))  # clean inputs, as at inference
    # each row's input is the encoder's latents of its true ids with some content tokens masked
    ids = seen["ids"]
    content = model._content(ids)
    for b in range(ids.shape[0]):
        diffs = [torch.allclose(seen["x_in"][b], ts.space.encode(cand[None])[0], atol=1e-4) for cand in _maskings(ids[b], content[b], ts.mask_id)]
        assert any(diffs), f"row {b}: input latents are not those of a masking of its text"
    loss.backward()
    assert model.projector.linear.weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="draft_rows"):
        tiny_cfg(draft_frac=0.5, draft_rows="masks")


def _maskings(ids: torch.Tensor, content: torch.Tensor, mask_id: int) -> list[torch.Tensor]:
    """Every way to mask a non-empty subset of the content positions (few content tokens in the fixture)."""
    pos = content.nonzero(as_tuple=True)[0].tolist()
    out = []
    for bits in range(1, 2 ** len(pos)):
        cand = ids.clone()
        for j, p in enumerate(pos):
            if bits >> j & 1:
                cand[p] = mask_id
        out.append(cand)
    return out


def test_refinements_change_only_the_unsure_draft_tokens(batch, monkeypatch):  # noqa: F811
    model = ElfS2T(tiny_cfg(ctc_weight=0.5)).eval()
    ts = model.text_space
    dog, cat, cow = ts.tokenizer.convert_tokens_to_ids(["dog", "cat", "cow"])
    cond, mask = model.condition(batch)
    C = cond.shape[1]
    seq = [dog, ts.pad_id, cat, cat] + [ts.pad_id] * C  # draft "dog cat"; "cat" unsure (0.6)
    conf = [0.95, 0.99, 0.3, 0.6] + [0.99] * C
    n_text = ts.max_len
    audio_calls = []

    def fake_logits(hidden, vocab=None):
        out = torch.full((hidden.shape[0], hidden.shape[1], ts.vocab_size), -20.0)
        if hidden.shape[1] == n_text:  # a text-slot forward (the mask refinement): "cow" everywhere
            out[:, :, cow] = 20.0
        else:  # the audio slots: the scripted CTC posteriors
            audio_calls.append(1)
            for i in range(hidden.shape[1]):
                p = conf[i]
                out[:, i, seq[i]] = torch.log(torch.tensor(p / (1 - p))) - 20.0 + torch.log(torch.tensor(ts.vocab_size - 1.0))
        return out if vocab is None else out[..., vocab]

    monkeypatch.setattr(model.denoiser, "token_logits", fake_logits)
    draft, c, _ = model.ctc_draft(cond, mask, torch.Generator().manual_seed(0))
    assert ts.decode(draft) == ["dog cat"] * 3
    assert c[0, 1] == pytest.approx(0.95, abs=1e-3) and c[0, 2] == pytest.approx(0.6, abs=1e-3)  # best of the run
    assert bool((c[:, 0] == 1).all()) and bool((c[:, 3:] == 1).all())  # BOS / EOS tail
    refine = SamplerConfig(init="ctc", refine="mask", steps=1, mask_threshold=0.9)
    assert model.generate(batch, refine) == ["dog cow"] * 3  # only the unsure token was re-predicted
    assert model.generate(batch, SamplerConfig(init="ctc", refine="mask", steps=1, mask_threshold=0.5)) == ["dog cat"] * 3
    assert model.generate(batch, SamplerConfig(init="ctc", refine="mask", steps=0)) == ["dog cat"] * 3
    # the flow refinement gated the same way: only the unsure content tokens take the refined ("cow") token
    flow = dict(init="ctc", refine="flow", steps=1, t_start=0.8)
    assert model.generate(batch, SamplerConfig(**flow, flow_threshold=0.9)) == ["dog cow"] * 3
    assert model.generate(batch, SamplerConfig(**flow, flow_threshold=0.5)) == ["dog cat"] * 3
    assert model.generate(batch, SamplerConfig(**flow))[0].startswith("cow cow")  # ungated: every slot changes


def test_refine_mask_config_and_tag():
    with pytest.raises(ConfigError, match="refine"):
        structure(SamplerConfig, {"refine": "mask"})  # needs a CTC draft
    with pytest.raises(ConfigError, match="mask_threshold"):
        structure(SamplerConfig, {"init": "ctc", "refine": "mask", "mask_threshold": 1.5})
    cfg = structure(DecodeConfig, {"sampler": {"init": "ctc", "refine": "mask", "steps": 2, "mask_threshold": 0.8}})
    assert cfg.tag("elf_s2t") == "ode2_g1_w1_ctcmask0.8"
    assert structure(DecodeConfig, {"sampler": {"init": "ctc", "steps": 1, "t_start": 0.8}}).tag("elf_s2t") == "ode1_g1_w1_ctc0.8"
    gated = structure(DecodeConfig, {"sampler": {"init": "ctc", "steps": 1, "t_start": 0.8, "flow_threshold": 0.7}})
    assert gated.tag("elf_s2t") == "ode1_g1_w1_ctc0.8k0.7"
    with pytest.raises(ConfigError, match="flow_threshold"):
        structure(SamplerConfig, {"init": "ctc", "flow_threshold": -0.1})
