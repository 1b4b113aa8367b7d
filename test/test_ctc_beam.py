"""CTC prefix beam search against brute force, the CTC loss, and greedy CTC; the draft strategy's beam setting."""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from elfs2t.config import ConfigError
from elfs2t.s2t.ctc_aux import ctc_greedy
from elfs2t.s2t.ctc_beam import LmFusion, ctc_prefix_beam
from elfs2t.s2t.elf_s2t import ElfS2T
from elfs2t.text.ngram import EOS, NgramLM
from conftest import decoding, tiny_cfg  # (the batch fixture is conftest's)


def _best_labelling(lp: torch.Tensor) -> tuple[tuple[int, ...], float]:
    """The labelling with the highest probability summed over all its paths, by enumerating every path."""
    total: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(lp.shape[1]), repeat=lp.shape[0]):
        label, prev = [], None
        for p in path:
            if p != prev and p != 0:
                label.append(p)
            prev = p
        s = math.exp(sum(float(lp[t, p]) for t, p in enumerate(path)))
        total[tuple(label)] = total.get(tuple(label), 0.0) + s
    best = max(total, key=total.get)
    return best, math.log(total[best])


def test_a_wide_beam_finds_the_most_probable_labelling_and_its_ctc_log_probability():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        lp = torch.randn((1, 5, 3), generator=g).log_softmax(-1)  # blank 0, labels 1 and 2
        tokens, scores = ctc_prefix_beam(lp, torch.tensor([5]), blank=0, beam=50, prune=-1e9)
        label, logp = _best_labelling(lp[0])
        assert tuple(tokens[0]) == label and scores[0] == pytest.approx(logp, abs=1e-5)
        target = torch.tensor([tokens[0]], dtype=torch.long)
        nll = F.ctc_loss(lp.transpose(0, 1), target, torch.tensor([5]), torch.tensor([len(tokens[0])]), blank=0)
        assert -float(nll) * max(len(tokens[0]), 1) == pytest.approx(scores[0], abs=1e-4)  # loss is per target token


def test_a_label_spread_over_frames_is_kept_where_greedy_drops_it():
    # frame 0: "1" sure; frames 1-2: the blank 0.6, "2" 0.4 each -> greedy reads "1"; "1 2" has 1 - 0.6^2 = 0.64
    p = torch.tensor([[[0.0, 1.0, 0.0], [0.6, 0.0, 0.4], [0.6, 0.0, 0.4]]]).clamp_min(1e-12).log()
    lens = torch.tensor([3])
    prob, best = p.max(-1)
    assert ctc_greedy(best, prob.exp(), lens, 0)[0] == [[1]]
    tokens, scores = ctc_prefix_beam(p, lens, blank=0, beam=4)
    assert tokens == [[1, 2]] and scores[0] == pytest.approx(math.log(0.64), abs=1e-6)
    # padding frames past a row's length are not read; a label under the pruning threshold is never expanded
    padded = torch.cat([p, torch.tensor([[[-30.0, 0.0, -30.0]]])], dim=1)
    assert ctc_prefix_beam(padded, lens, blank=0, beam=4)[0] == [[1, 2]]
    assert ctc_prefix_beam(p, lens, blank=0, beam=4, prune=math.log(0.5))[0] == [[1]]
    # a row of blanks reads nothing (its probability: the blank path's); so does a row without frames
    silent = torch.tensor([[[0.0, -20.0, -20.0]] * 3, [[0.0, -20.0, -20.0]] * 3])
    tokens, scores = ctc_prefix_beam(silent.log_softmax(-1), torch.tensor([3, 0]), blank=0, beam=4)
    assert tokens == [[], []] and scores[1] == 0.0
    assert scores[0] == pytest.approx(3 * float(silent.log_softmax(-1)[0, 0, 0]), abs=1e-6)
    with pytest.raises(ValueError, match=r"beam=0 must be >= 1"):
        ctc_prefix_beam(p, lens, blank=0, beam=0)


def test_a_fused_language_model_restores_a_word_the_audio_leaves_unsure():
    # "1" sure at frame 0; "2" at 0.2 on frames 1-2: CTC alone prefers "1" (0.64) to "1 2" (0.36)
    p = torch.tensor([[[0.0, 1.0, 0.0], [0.8, 0.0, 0.2], [0.8, 0.0, 0.2]]]).clamp_min(1e-12).log()
    lens = torch.tensor([3])
    lm = NgramLM.train([[1, 2]] * 20 + [[2]], order=2, vocab_size=3)  # "1" is always followed by "2"
    assert ctc_prefix_beam(p, lens, blank=0, beam=4)[0] == [[1]]
    tokens, scores = ctc_prefix_beam(p, lens, blank=0, beam=4, lm=LmFusion(lm, weight=1.0))
    assert tokens == [[1, 2]]
    fused = math.log(0.36) + lm.sentence_logprob([1, 2])  # the score: CTC plus the weighted LM, its end included
    assert scores[0] == pytest.approx(fused, abs=1e-6)
    # weight 0 is the search without a model; a bonus is added once per token (1 + 1 beats 0.64 against 0.36)
    assert ctc_prefix_beam(p, lens, blank=0, beam=4, lm=LmFusion(lm, weight=0.0)) == ([[1]], [pytest.approx(
        math.log(0.64), abs=1e-6)])
    assert ctc_prefix_beam(p, lens, blank=0, beam=4, lm=LmFusion(lm, weight=0.0, bonus=1.0)) == ([[1, 2]], [
        pytest.approx(math.log(0.36) + 2.0, abs=1e-6)])
    # a CTC vocabulary whose indices are other ids of the model: index i is token ids[i]
    shifted = NgramLM.train([[11, 12]] * 20 + [[12]], order=2, vocab_size=3)
    assert ctc_prefix_beam(p, lens, blank=0, beam=4, lm=LmFusion(shifted, 1.0).over([0, 11, 12]))[0] == [[1, 2]]
    # the end of sentence decides between labellings of equal CTC score: "2 1" never ends a sentence
    q = torch.tensor([[[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]]]).clamp_min(1e-12).log()
    lm_end = NgramLM.train([[2]] * 5 + [[1, 2]] * 5, order=2, vocab_size=3)
    assert lm_end.logprob((1,), EOS) < lm_end.logprob((2,), EOS)
    assert ctc_prefix_beam(q, torch.tensor([2]), blank=0, beam=4, lm=LmFusion(lm_end, 1.0))[0] == [[2]]


def test_the_draft_strategy_reads_by_greedy_ctc_or_by_prefix_beam_search(batch, monkeypatch):
    model = ElfS2T(tiny_cfg(ctc_weight=0.5)).eval()
    ts = model.text_space
    dog, cat = ts.tokenizer.convert_tokens_to_ids(["dog", "cat"])
    cond, mask = model.condition(batch)

    def fake_logits(hidden, vocab=None):  # "dog" sure at slot 0; "cat" at 0.4 on slots 1-2, the blank 0.6
        logits = torch.full((hidden.shape[0], hidden.shape[1], ts.vocab_size), -50.0)
        logits[:, :, ts.pad_id] = 0.0
        logits[:, 0, ts.pad_id], logits[:, 0, dog] = -50.0, 0.0
        logits[:, 1:3, cat] = math.log(0.4 / 0.6)
        return logits if vocab is None else logits[..., vocab]

    monkeypatch.setattr(model.denoiser, "token_logits", fake_logits)
    assert model.generate(batch, decoding(model, "draft")) == ["dog"] * 3
    beam = decoding(model, "draft", beam=4)
    assert beam.tag() == "draft_beam4" and decoding(model, "draft").tag() == "draft"
    assert decoding(model, "draft", beam=2, prune=-5.0).tag() == "draft_beam2_p-5"
    assert model.generate(batch, beam) == ["dog cat"] * 3
    drafted = model.draft(cond, mask, torch.Generator().manual_seed(0), beam=4)
    assert drafted.lengths == [2, 2, 2] and drafted.text_pos[:, 1:3].tolist() == [[0, 1]] * 3
    assert drafted.conf[:, 2].tolist() == pytest.approx([0.4] * 3, abs=1e-4)  # "cat": its posterior at its frame
    with pytest.raises(ConfigError, match=r"^draft.beam=-1: must be >= 0 \(0: greedy\)"):
        decoding(model, "draft", beam=-1)
    # the experiment's n-gram fused into the search: an LM of "dog" alone outweighs the audio's unsure "cat"
    fused = decoding(model, "draft", beam=4, lm_weight=1.0)
    assert fused.tag() == "draft_beam4_lm1_b0"
    # the "tokens from" column of the results tables names the search and the fusion
    assert decoding(model, "draft").reader == "CTC readout of the audio slots"
    assert beam.reader == "CTC readout of the audio slots (prefix beam search, 4 prefixes)"
    assert fused.reader == ("CTC readout of the audio slots fused with a token n-gram of the training texts "
                            "(prefix beam search, 4 prefixes)")
    with pytest.raises(ValueError, match=r"^decode.draft.lm_weight=1: the model has no n-gram model \(ngram.json"):
        model.generate(batch, fused)
    model.ngram = NgramLM.train([[dog]] * 20, vocab_size=ts.vocab_size)
    assert model.generate(batch, fused) == ["dog"] * 3 and model.generate(batch, beam) == ["dog cat"] * 3
    # the flow's and the readout's slots and length from another draft than the greedy one (slot_draft)
    from elfs2t.s2t.decoding.draft import DraftConfig
    from elfs2t.s2t.decoding.layout import slot_layout

    gen = torch.Generator().manual_seed(0)
    assert slot_layout(model, "ctc", cond, mask, gen, DraftConfig(), "k").lengths == [1, 1, 1]
    assert slot_layout(model, "ctc", cond, mask, gen, DraftConfig(beam=4), "k").lengths == [2, 2, 2]
    assert slot_layout(model, "ctc", cond, mask, gen, DraftConfig(beam=4, lm_weight=1.0), "k").lengths == [1, 1, 1]
    assert decoding(model, "readout", slots="ctc", slot_draft={"beam": 4}).tag() == "readout_ctc_beam4"
    flow = decoding(model, "flow", slots="ctc", steps=4, guidance=2, read_level=0.3,
                    slot_draft={"beam": 4, "lm_weight": 0.5, "lm_bonus": 2})
    assert flow.tag() == "flow4_g2_ctc_beam4_lm0.5_b2_read0.3" and flow.reader.endswith(
        "(slots and length from the CTC draft's beam search fused with the n-gram)")
    assert decoding(model, "flow", slots="ctc").tag() == "flow8_g1_ctc"  # the greedy draft's slots: as before
    model.ngram = None
    with pytest.raises(ValueError, match=r"^decode.flow.slot_draft.lm_weight=0.5: the model has no n-gram model"):
        model.generate(batch, flow)
    with pytest.raises(ConfigError, match=r"^draft.lm_weight=0.5: fuses the n-gram into the prefix beam search: "
                                          r"set decode.draft.beam >= 1"):
        decoding(model, "draft", lm_weight=0.5)
    with pytest.raises(ConfigError, match=r"^draft.lm_bonus=1.0: is the fused n-gram's"):
        decoding(model, "draft", beam=4, lm_bonus=1.0)
