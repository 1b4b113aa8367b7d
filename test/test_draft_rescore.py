"""Rescoring the CTC draft (``decode.strategy: rescore``): runner-ups, candidates, the two NLLs, the choice, and
ELF-S2T's decoding with it."""
import math

import pytest
import torch

from elfs2t.config import ConfigError, structure
from elfs2t.flow.sampler import decoding_forward
from elfs2t.s2t.ctc_aux import ctc_greedy
from elfs2t.s2t.draft_rescore import Candidate, best_per_row, ctc_nll, draft_candidates, runner_up, text_nll
from elfs2t.s2t.elf_s2t import ElfS2T
from elfs2t.s2t.decoding import DecodingConfig, RescoreConfig, build_decoding
from conftest import decoding, tiny_cfg


def test_runner_up_is_read_at_the_most_confident_frame_of_the_run():
    best = torch.tensor([[5, 5, 5, 0, 7, 7], [3, 0, 0, 0, 0, 0]])
    prob = torch.tensor([[.5, .9, .6, .9, .8, .7], [.6, .9, .9, .9, .9, .9]])
    second = torch.tensor([[1, 2, 3, 4, 0, 6], [8, 9, 9, 9, 9, 9]])
    # row 0: "5" runs over frames 0-2 (peak 1), "7" over 4-5 (peak 4); row 1: "3" at frame 0, its length is 1
    _, _, frames, peaks = ctc_greedy(best, prob, torch.tensor([6, 1]), blank=0)
    assert frames == [[0, 4], [0]] and peaks == [[1, 4], [0]]
    assert runner_up(second, peaks) == [[2, 0], [8]]
    equal = ctc_greedy(best, torch.full((2, 6), 0.5), torch.tensor([6, 1]), blank=0)[3]
    assert equal == [[0, 4], [0]]  # equal posteriors: the run's first frame


def test_candidates_are_the_draft_and_one_variant_per_unsure_token():
    tokens, frames = [[5, 7, 9], []], [[0, 3, 6], []]
    confs, alts = [[0.99, 0.5, 0.8], []], [[4, 0, 3], []]
    cands = draft_candidates(tokens, frames, confs, alts, threshold=0.9, blank=0)
    assert cands == [
        Candidate(0, [5, 7, 9], [0, 3, 6]),  # the draft first
        Candidate(0, [5, 9], [0, 6]),  # 7's runner-up is the blank: dropped with its frame
        Candidate(0, [5, 7, 3], [0, 3, 6]),  # 9 -> 3, same frames
        Candidate(1, [], []),  # an empty draft is still a candidate
    ]
    assert draft_candidates(tokens, frames, confs, alts, threshold=0.6, blank=0)[1:] == [
        Candidate(0, [5, 9], [0, 6]), Candidate(1, [], [])]
    assert len(draft_candidates(tokens, frames, confs, alts, threshold=0.0, blank=0)) == 2
    assert tokens == [[5, 7, 9], []]  # inputs untouched


def test_ctc_nll_sums_the_alignments_by_hand():
    p = torch.tensor([[0.6, 0.4], [0.3, 0.7]])  # 2 frames, symbols (blank, a)
    lp = p.log()[None]  # (1, T=2, K=2)
    cands = [Candidate(0, [1], [0]), Candidate(0, [], []), Candidate(0, [1, 1], [0, 1])]
    nll = ctc_nll(lp, torch.tensor([2]), cands, blank=0)
    a = 0.4 * 0.7 + 0.4 * 0.3 + 0.6 * 0.7  # "a": (a a), (a -), (- a)
    assert nll[0].item() == pytest.approx(-math.log(a), rel=1e-5)
    assert nll[1].item() == pytest.approx(-math.log(0.6 * 0.3), rel=1e-5)  # "": (- -)
    assert math.isinf(nll[2].item())  # "a a" needs a blank between: three frames


def test_best_per_row_takes_the_lowest_score_and_the_draft_on_ties():
    cands = [Candidate(0, [1], []), Candidate(0, [2], []), Candidate(1, [3], []), Candidate(1, [4], []),
             Candidate(1, [5], [])]
    chosen = best_per_row(torch.tensor([2.0, 1.0, 0.5, 0.5, 0.7]), cands, 2)
    assert chosen == [1, 2] and [cands[i].tokens for i in chosen] == [[2], [3]]
    assert [cands[i].tokens for i in best_per_row(torch.tensor([1.0, float("inf")]), cands[:2], 1)] == [[1]]
    assert best_per_row(torch.tensor([float("inf"), 3.0]), cands[:2], 1) == [1]  # an impossible draft loses


@pytest.mark.parametrize("prefix_attention", ["self", "full"])
def test_text_nll_is_the_head_nll_of_every_slot_with_noise_shared_by_a_row(batch, prefix_attention):  # noqa: F811
    model = ElfS2T(tiny_cfg(denoiser={"hidden": 32, "depth": 2, "heads": 2, "bottleneck": 16,
                                      "prefix_attention": prefix_attention})).eval()
    ts = model.text_space
    cond, mask = model.condition(batch)
    ids = ts.tokenize(["a dog", "a dog", "the cat", "yes yes"])  # rows 0, 0, 1, 2
    rows = torch.tensor([0, 0, 1, 2])
    x = ts.space.encode(ids)
    vocab = torch.arange(ts.vocab_size)
    nll = text_nll(model.denoiser, x, ids, rows, cond, mask, vocab_ids=vocab, levels=[0.3], draws=1, sigma_d=1.0,
                   generator=torch.Generator().manual_seed(0))
    assert nll[0] == nll[1]  # the same candidate of the same row: the same noise
    # by hand: one draw eps (B, L, d), each candidate takes its row's
    eps = torch.randn((cond.shape[0], *x.shape[1:]), generator=torch.Generator().manual_seed(0))[rows]
    hidden = decoding_forward(model.denoiser, 0.3 * x + 0.7 * eps, cond=cond[rows], cond_mask=mask[rows]).hidden
    logp = model.denoiser.token_logits(hidden).log_softmax(dim=-1)
    want = -logp.gather(-1, ids[..., None])[..., 0].sum(dim=-1)  # every slot, the EOS tail too
    assert torch.allclose(nll, want, atol=1e-4)
    two = text_nll(model.denoiser, x, ids, rows, cond, mask, vocab_ids=vocab, levels=[0.3, 0.6], draws=2,
                   sigma_d=1.0, generator=torch.Generator().manual_seed(0))
    assert two.shape == (4,) and bool(torch.isfinite(two).all()) and not torch.allclose(two, nll)


def _scripted_head(model, conf, seq, runner, text_logits):
    """A token head: on the audio slots, frame i gives ``seq[i]`` probability ``conf[i]`` and ``runner[i]`` 80% of
    the rest; on the text slots, ``text_logits(vocab_size) -> (V,)`` at every slot."""
    ts = model.text_space
    n_text = ts.max_len

    def fake_logits(hidden, vocab=None):
        V = ts.vocab_size
        if hidden.shape[1] == n_text:
            out = text_logits(V).expand(hidden.shape[0], n_text, V).clone()
        else:
            p = torch.full((hidden.shape[1], V), 1e-9)
            for i in range(hidden.shape[1]):
                s, r = (seq[i], runner[i]) if i < len(seq) else (ts.pad_id, ts.eos_id)
                c = conf[i] if i < len(conf) else 0.99
                p[i, s], p[i, r] = c, (1 - c) * 0.8
            out = p.log()[None].expand(hidden.shape[0], -1, -1).clone()
        return out if vocab is None else out[..., vocab]

    return fake_logits


def test_rescoring_follows_the_text_slots_only_where_the_draft_is_unsure(batch, monkeypatch):  # noqa: F811
    model = ElfS2T(tiny_cfg(ctc_weight=0.5)).eval()
    ts = model.text_space
    dog, cat, cow = ts.tokenizer.convert_tokens_to_ids(["dog", "cat", "cow"])
    blank = ts.pad_id
    seq = [dog, blank, cat, cat]  # the draft "dog cat": "dog" sure (0.95), "cat" unsure (best frame 0.6)
    conf = [0.95, 0.99, 0.5, 0.6]
    runner = [cat, dog, cow, cow]  # cow is the runner-up of cat's frames

    def likes_cow(V):
        out = torch.zeros(V)
        out[cow] = 30.0
        return out

    monkeypatch.setattr(model.denoiser, "token_logits", _scripted_head(model, conf, seq, runner, likes_cow))
    assert model.generate(batch, decoding(model, "draft")) == ["dog cat"] * 3
    assert model.generate(batch, decoding(model, "rescore", threshold=0.9, draws=1)) == ["dog cow"] * 3
    assert model.generate(batch, decoding(model, "rescore", threshold=0.5, draws=1)) == ["dog cat"] * 3  # cat is "sure"

    # text slots with no opinion: the CTC decides, and the draft is its most likely candidate
    monkeypatch.setattr(model.denoiser, "token_logits",
                        _scripted_head(model, conf, seq, runner, lambda V: torch.zeros(V)))
    assert model.generate(batch, decoding(model, "rescore", threshold=0.9, draws=1)) == ["dog cat"] * 3

    # a runner-up blank: the variant drops the word, and no opinion keeps the draft (same number of slots scored)
    monkeypatch.setattr(model.denoiser, "token_logits",
                        _scripted_head(model, conf, seq, [cat, dog, blank, blank], lambda V: torch.zeros(V)))
    assert model.generate(batch, decoding(model, "rescore", threshold=0.9, draws=1)) == ["dog cat"] * 3


def test_rescore_config_and_tag():
    with pytest.raises(ConfigError, match="threshold"):
        structure(RescoreConfig, {"threshold": 1.2})
    for levels in ([], [0.5, 1.0]):
        with pytest.raises(ConfigError, match="levels"):
            structure(RescoreConfig, {"levels": levels})
    with pytest.raises(ConfigError, match="draws"):
        structure(RescoreConfig, {"draws": 0})
    cfg = structure(DecodingConfig, {"strategy": "rescore", "rescore": {"threshold": 0.9, "levels": [0.05, 0.2]}})
    assert build_decoding(cfg, tiny_cfg(ctc_weight=0.5)).tag() == "rescore_k0.9_l0.05-0.2_d4"
