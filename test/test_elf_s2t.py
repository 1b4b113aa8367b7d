"""ELF-S2T model: audio prefix + task tokens in front of the ELF denoiser; loss, masks, generation."""
import pytest
import torch

from elfs2t.config import ConfigError, structure
from elfs2t.s2t.elf_s2t import ElfS2T
from conftest import decoding, tiny_cfg  # (the batch fixture is conftest's)


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
    sampler = decoding(model, steps=2, guidance=2.0)
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
    hyps = fresh.eval().generate(batch, decoding(fresh, steps=1), generator=torch.Generator().manual_seed(0))
    allowed = set(model.shortlist.tolist())
    for h in hyps:  # every decoded token is in the shortlist
        assert set(ts.tokenize([h])[0].tolist()) <= allowed | {ts.eos_id}
    assert ElfS2T(tiny_cfg()).vocab is None  # off: the full vocabulary
    with pytest.raises(ValueError, match="no training texts"):
        model.set_token_shortlist([])


@pytest.mark.parametrize("prefix_attention", ["self", "full"])
def test_draft_readout_is_the_full_decoding_forwards(batch, prefix_attention):
    """With prefix_attention self the draft runs the audio slots alone (the text slots never reach them): the same
    log-posteriors as the full decoding forward, and the generator moved on by the same noise draw."""
    from elfs2t.flow.sampler import decoding_forward

    den = {"hidden": 32, "depth": 2, "heads": 2, "bottleneck": 16, "prefix_attention": prefix_attention}
    model = ElfS2T(tiny_cfg(ctc_weight=0.5, denoiser=den)).eval()
    cond, mask = model.condition(batch)
    gen, ref_gen = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    with torch.no_grad():
        readout, hidden, cache = model.draft_readout(cond, mask, gen)
        noise = torch.randn((cond.shape[0], model.text_space.max_len, model.text_space.dim), generator=ref_gen)
        full = decoding_forward(model.denoiser, model.cfg.flow.sigma_d * noise, cond=cond, cond_mask=mask).cond_hidden
    audio, audio_mask = model._audio_slots(full, mask)
    ids = model.vocab if model.vocab is not None else torch.arange(model.text_space.vocab_size)
    assert torch.allclose(hidden[mask], full[mask], atol=1e-5)
    with torch.no_grad():
        expected = torch.log_softmax(model.denoiser.token_logits(audio, ids), dim=-1)
    assert torch.allclose(readout.log_probs[audio_mask], expected[audio_mask], atol=1e-4)
    assert torch.equal(torch.randn(4, generator=gen), torch.randn(4, generator=ref_gen))
    if prefix_attention == "full":  # the condition sees the text slots: nothing to reuse
        assert cache is None
        return
    with torch.no_grad():
        ref = model.denoiser.cache_condition(cond, mask)  # the keys / values the text slots' forwards attend to
    assert all(torch.equal(k, rk) and torch.equal(v, rv) for (k, v), (rk, rv) in zip(cache.kv, ref.kv))


@pytest.mark.parametrize("strategy, settings", [("flow", {"steps": 2, "guidance": 2.0}), ("flow", {"steps": 1}),
                                                ("readout", {}), ("refine", {"steps": 1, "t_start": 0.5}),
                                                ("rescore", {})])
def test_text_slot_decodings_run_the_condition_once(batch, monkeypatch, strategy, settings):
    """A decoding whose text slots follow the CTC draft reuses the draft's pass over the condition (its keys /
    values): the condition's blocks run once per batch (and once more over one zero row for CFG), and the tokens
    are those of the decoding that runs the condition again."""
    den = {"hidden": 32, "depth": 2, "heads": 2, "bottleneck": 16, "prefix_attention": "self", "text_pos_scale": 1.0}
    torch.manual_seed(0)
    model = ElfS2T(tiny_cfg(ctc_weight=0.5, text_positions="ctc", slot_audio=True, denoiser=den)).eval()
    strat = decoding(model, strategy, **settings)
    rows = []
    encode = model.denoiser.encode_condition

    def counted(cond, cond_mask=None, caller="encode_condition"):
        rows.append(cond.shape[0])
        return encode(cond, cond_mask, caller)

    monkeypatch.setattr(model.denoiser, "encode_condition", counted)
    hyps = model.generate(batch, strat, torch.Generator().manual_seed(1))
    assert sorted(rows) == ([1, 3] if settings.get("guidance", 1.0) != 1.0 else [3])  # the draft's pass, a zero row

    def no_cache(*args, **kw):  # what the decoding did before: the condition run again for the text slots
        audio = draft_readout(*args, **kw)
        return audio._replace(cond_cache=None)

    draft_readout = model.draft_readout
    monkeypatch.setattr(model, "draft_readout", no_cache)
    assert model.generate(batch, strat, torch.Generator().manual_seed(1)) == hyps


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
    draft = model.draft(cond, mask, torch.Generator().manual_seed(0))
    ids = draft.ids
    assert ids.shape == (3, ts.max_len) and draft.lengths == [3, 3, 3]
    lens = mask.sum(1).tolist()
    assert min(lens) >= 5  # every row's slots cover the scripted sequence
    assert ts.decode(ids) == ["dog dog cat"] * 3
    assert draft.text_pos[:, 1:4].tolist() == [[0, 3, 4]] * 3  # each token at its first frame (after [CLS] at 0)
    assert model.generate(batch, decoding(model, "draft")) == ["dog dog cat"] * 3
    monkeypatch.undo()
    cached = len(model.text_space)
    hyps = model.generate(batch, decoding(model, "refine", steps=2, t_start=0.5), generator=torch.Generator().manual_seed(0))
    assert len(hyps) == 3
    assert len(model.text_space) == cached  # drafts are encoded past the latent cache
    for strategy in ("draft", "refine", "rescore"):
        with pytest.raises(ValueError, match="ctc_weight"):
            decoding(ElfS2T(tiny_cfg()), strategy)
    with pytest.raises(ValueError, match="ctc_weight"):
        decoding(ElfS2T(tiny_cfg()), "flow", slots="ctc")


def test_keep_content_reads_the_given_number_of_slots_and_drops_specials():
    model = ElfS2T(tiny_cfg())
    ts = model.text_space
    dog, cat, sat = ts.tokenizer.convert_tokens_to_ids(["dog", "cat", "sat"])
    cls, eos = ts.bos_id, ts.eos_id
    ids = torch.tensor([[cls, dog, eos, cat, sat, eos, eos, eos],   # an EOS inside the 3 content slots: one token less
                        [cls, dog, cat, sat, dog, eos, eos, eos]])  # content past the length is not read
    kept = model.keep_content(ids, [3, 2])
    assert ts.decode(kept) == ["dog cat", "dog cat"]
    assert kept.shape == ids.shape and kept[0, 3].item() == eos  # laid out again: the EOS tail after the text


def test_prior_positions_are_those_of_the_rows_trained_without_audio():
    model = ElfS2T(tiny_cfg(ctc_weight=0.5, text_positions="ctc", tasks=["asr"],
                            denoiser={"hidden": 32, "depth": 2, "heads": 2, "bottleneck": 16,
                                      "prefix_attention": "self", "text_pos_scale": 1.5}))
    prior = model.prior_positions(2)
    assert prior.tolist() == [[round(i * 1.5) for i in range(8)]] * 2  # no alignment: round(i * scale), no shift


def test_slot_audio_adds_the_aligned_condition_state_to_content_slots_only(batch):
    cfg = dict(ctc_weight=0.5, text_positions="ctc", slot_audio=True,
               denoiser={"hidden": 32, "depth": 2, "heads": 2, "bottleneck": 16, "prefix_attention": "self",
                         "text_pos_scale": 1.0})
    model = ElfS2T(tiny_cfg(**cfg))
    assert torch.equal(model.slot_proj.weight, torch.eye(32)) and not model.slot_proj.bias.any()  # starts as is
    cond_hidden = torch.randn(2, 5, 32)
    text_pos = torch.tensor([[0, 1, 3, 4, 5, 6, 7, 8], [0, 2, 2, 4, 5, 6, 7, 8]])
    slots = model.text_slots(cond_hidden, text_pos, [2, 1])
    assert torch.equal(slots.pos, text_pos)
    assert torch.allclose(slots.extra[0, 1], cond_hidden[0, 1]) and torch.allclose(slots.extra[0, 2], cond_hidden[0, 3])
    assert torch.allclose(slots.extra[1, 1], cond_hidden[1, 2])
    assert torch.all(slots.extra[0, [0, 3, 4]] == 0) and torch.all(slots.extra[1, 2:] == 0)  # BOS, tail: nothing
    assert model.text_slots(cond_hidden, text_pos, [0, 0]).extra.abs().sum() == 0  # unaligned rows: nothing
    fresh = ElfS2T(tiny_cfg(**cfg, flow={"decode_frac": 1.0, "p_drop": 0.0}))  # the token head's CE on every row
    loss, _ = fresh(batch)
    loss.backward()
    assert fresh.slot_proj.weight.grad is not None and fresh.slot_proj.weight.grad.abs().sum() > 0
    assert "slot_proj.weight" not in ElfS2T(tiny_cfg(**{**cfg, "slot_audio": False})).state_dict()
    with pytest.raises(ConfigError, match="slot_audio"):
        tiny_cfg(slot_audio=True)  # needs text_positions: ctc


def test_removed_options_still_load_at_their_no_op_value():
    assert not hasattr(tiny_cfg(draft_frac=0.0, draft_t=0.8, draft_rows="denoise"), "draft_frac")
    with pytest.raises(ConfigError, match=r"^draft_frac=0.5: this option was removed"):
        tiny_cfg(draft_frac=0.5)
    assert not hasattr(tiny_cfg(slot_audio_init="identity"), "slot_audio_init")
    with pytest.raises(ConfigError, match=r"^slot_audio_init='zero': this option was removed"):
        tiny_cfg(slot_audio_init="zero")
    with pytest.raises(ConfigError, match=r"^denoiser.flow_head='token_mixture': this option was removed"):
        tiny_cfg(denoiser={"flow_head": "token_mixture"})
