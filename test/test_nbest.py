"""N-best lists (AR beam search, ELF-S2T's rescoring candidates) and the pieces of word timestamps (CTC spans,
tokens grouped into words) on tiny models and by hand."""
from pathlib import Path

import pytest
import torch

from elfs2t.config import ConfigError, structure, unstructure
from elfs2t.experiment import ExperimentConfig
from elfs2t.kinds.elf_s2t import ElfS2TKind, group_words
from elfs2t.baselines.ar import ArConfig, ArSpeechLM
from elfs2t.s2t.ctc_align import ctc_align, ctc_align_spans
from elfs2t.s2t.elf_s2t import ElfS2T
from text_fixtures import make_vocab

MINILM = Path(__file__).resolve().parents[1] / "tools" / "models" / "all-MiniLM-L6-v2"
FEAT_DIM = 6


def _batch(lens, seed=1):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(len(lens), max(lens), FEAT_DIM, generator=g)
    for row, n in enumerate(lens):
        feats[row, n:] = 0.0
    return {"cut_ids": [f"c{i}" for i in range(len(lens))], "feats": feats, "feat_lens": torch.tensor(lens),
            "text": [""] * len(lens), "task": ["asr"] * len(lens), "duration": torch.ones(len(lens))}


@pytest.fixture(scope="module")
def ar_model(tmp_path_factory):
    corpus = ["the cat sat on the mat", "a dog ran home", "hello world", "the mat is red"] * 4
    tok = make_vocab(tmp_path_factory.mktemp("tok"), corpus, vocab_size=60)  # the stage-3 SentencePiece vocabulary
    torch.manual_seed(0)
    model = ArSpeechLM(ArConfig(tokenizer=str(tok), layers=1, hidden=32, heads=2, feat_dim=FEAT_DIM, stack=2,
                                max_text_tokens=16))
    batch = {**_batch([8, 5]), "text": ["the cat sat", "a dog ran home"]}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):  # it learns to end its texts
        loss, _ = model(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_ar_beam_nbest_is_ranked_and_starts_with_the_decoded_text(ar_model):
    batch = _batch([9, 5, 7])
    best = ar_model.generate(batch, max_new_tokens=6, beam_size=4)
    lists = ar_model.generate_nbest(batch, 4, max_new_tokens=6, beam_size=4)
    assert [row[0][0] for row in lists] == best
    for row in lists:
        assert 1 <= len(row) <= 4
        scores = [s for _, s, _ in row]
        assert scores == sorted(scores, reverse=True) and all(s <= 0 for s in scores)
    greedy = ar_model.generate_nbest(batch, 1, max_new_tokens=6)
    assert [row[0][0] for row in greedy] == ar_model.generate(batch, max_new_tokens=6)
    cut = ar_model.generate_nbest(batch, 1, max_new_tokens=1)  # one step: nothing can end but with EOS first
    assert all(len(ar_model.tokenizer(t, add_special_tokens=False)["input_ids"]) <= 1 for (t, _, _), in cut)
    with pytest.raises(ValueError, match="nbest=3: beam search keeps at most beam_size=2 hypotheses per row"):
        ar_model.generate_nbest(batch, 3, beam_size=2)


def test_ar_greedy_score_is_the_mean_log_probability_of_its_tokens(ar_model):
    """The greedy hypothesis' score (length penalty 1) is the mean log-probability of its tokens and EOS, each
    under the LM fed the audio prompt and the tokens before it (special tokens other than EOS excluded, as decoding
    excludes them)."""
    batch = _batch([8])
    (text, score, ended), = ar_model.generate_nbest(batch, 1, max_new_tokens=16)[0]
    ids = ar_model.generate_ids(batch, max_new_tokens=16)[0]
    assert ended and text == "the cat sat"
    with torch.no_grad():
        prompt, mask = ar_model.prompt(batch)  # (1, P, H): [audio | BOS]
        embeds = torch.cat([prompt, ar_model.lm.get_input_embeddings()(torch.tensor([ids]))], dim=1)
        full = torch.cat([mask, torch.ones(1, len(ids), dtype=torch.bool)], dim=1)
        logits = ar_model.lm(inputs_embeds=embeds, attention_mask=full.long(),
                             position_ids=(full.long().cumsum(-1) - 1).clamp(min=0)).logits[0, -(len(ids) + 1):].float()
    logits[:, ar_model.suppress] = float("-inf")
    logp = logits.log_softmax(-1).gather(1, torch.tensor(ids + [ar_model.eos])[:, None])
    assert score == pytest.approx(float(logp.mean()), abs=1e-5)


def _elf_cfg() -> ExperimentConfig:
    return structure(ExperimentConfig, {
        "elf": {"text": {"name_or_path": str(MINILM), "max_len": 8}, "feat_dim": FEAT_DIM, "stack": 2,
                "denoiser": {"hidden": 32, "depth": 2, "heads": 2, "bottleneck": 16, "prefix_attention": "self"},
                "ctc_weight": 1.0},
        "decode": {"strategy": "rescore", "rescore": {"threshold": 1.0, "draws": 2}}})


def test_elf_rescore_nbest_first_is_generate_and_lists_every_candidate():
    from elfs2t.s2t.decoding import build_decoding

    cfg = _elf_cfg()
    torch.manual_seed(0)
    model = ElfS2T(cfg.elf).eval()
    batch = _batch([12, 7, 9])
    decoding = build_decoding(cfg.decode, cfg.elf)
    expected = model.generate(batch, decoding, generator=torch.Generator().manual_seed(0))
    cond, mask = model.condition(batch)
    ids, score, cands = decoding.candidates(model, cond, mask, torch.Generator().manual_seed(0))
    rows = torch.tensor([c.row for c in cands])
    assert ids.shape[0] == score.shape[0] == len(cands) >= 3 and sorted(set(rows.tolist())) == [0, 1, 2]
    kind = ElfS2TKind()
    lists = kind.decode_fn(model, cfg, torch.Generator().manual_seed(0), nbest=50)(batch)
    assert [row[0].text for row in lists] == expected
    for b, row in enumerate(lists):
        texts = model.text_space.decode(ids[rows == b])
        assert {h.text for h in row} == set(texts)  # every candidate, each text once
        assert [h.score for h in row] == sorted((h.score for h in row), reverse=True)
    flow = structure(ExperimentConfig, {**unstructure(cfg), "decode": {"strategy": "flow"}})
    with pytest.raises(ConfigError, match="nbest=2: ELF-S2T's n-best lists are its rescoring candidates; decode "
                                          "with decode.strategy=rescore"):
        kind.decode_fn(model, flow, torch.Generator(), nbest=2)


def _log_probs(frames):
    p = torch.tensor(frames)
    return (p / p.sum(-1, keepdim=True)).log()


def test_ctc_spans_are_the_first_and_last_frames_of_each_token():
    # token 1 on frames 1-2, token 2 on frames 4-5, blank elsewhere
    lp = _log_probs([[.8, .1, .1], [.1, .8, .1], [.2, .7, .1], [.8, .1, .1], [.1, .1, .8], [.1, .1, .8], [.8, .1, .1]])
    assert ctc_align_spans(lp[None], torch.tensor([7]), [[1, 2]], blank=0) == [[(1, 2), (4, 5)]]
    assert ctc_align(lp[None], torch.tensor([7]), [[1, 2]], blank=0) == [[1, 4]]  # the first frames, as before
    assert ctc_align_spans(lp[None], torch.tensor([2]), [[1, 2, 1]], blank=0) == [[]]  # does not fit 2 frames


def test_tokens_are_grouped_into_the_words_of_the_text():
    text = "the cats don't run"
    # WordPiece-like tokens: the | cat ##s | don ' t | run, with their character offsets and (first, last, conf)
    offsets = [(0, 3), (4, 7), (7, 8), (9, 12), (12, 13), (13, 14), (15, 18)]
    spans = [(0, 1, 1.0), (2, 2, 0.5), (3, 3, 1.0), (5, 5, 0.9), (6, 6, 0.6), (6, 7, 0.9), (9, 10, 0.8)]
    words = group_words(text, offsets, spans)
    assert [w[0] for w in words] == ["the", "cats", "don't", "run"]
    assert [(w[1], w[2]) for w in words] == [(0, 1), (2, 3), (5, 7), (9, 10)]
    assert words[1][3] == pytest.approx(0.75) and words[2][3] == pytest.approx(0.8)
