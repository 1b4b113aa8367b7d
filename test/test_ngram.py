"""The token n-gram model: Kneser-Ney against a hand computation, proper distributions, the floor for unseen tokens,
the JSON round trip, and bad input."""
import math
import random

import pytest

from elfs2t.text.ngram import EOS, NgramLM

# "1 2", "1 3", "2": bigram counts (BOS 1) 2, (BOS 2) 1, (1 2) 1, (1 3) 1, (2 EOS) 2, (3 EOS) 1;
# unigram continuation counts (distinct left neighbours): 1 -> 1, 2 -> 2, 3 -> 1, EOS -> 2 (total 6, 4 types)
CORPUS = [[1, 2], [1, 3], [2]]


def test_kneser_ney_probabilities_by_hand():
    lm = NgramLM.train(CORPUS, order=2, vocab_size=4, discount=0.5)
    # unigrams: (c - 0.5) / 6 + 0.5 * 4 / 6 * 1/4 = c / 6 for the four tokens
    p1 = {1: 1 / 6, 2: 2 / 6, 3: 1 / 6, EOS: 2 / 6}
    # P(2 | 1) = (1 - 0.5) / 2 + 0.5 * 2 / 2 * P1(2)
    assert math.exp(lm.logprob((1,), 2)) == pytest.approx(0.25 + 0.5 * p1[2])
    # P(EOS | 1): unseen after 1, all from the lower order's share
    assert math.exp(lm.logprob((1,), EOS)) == pytest.approx(0.5 * p1[EOS])
    # an unseen context backs off to the unigrams entirely; the sentence start is the BOS context
    assert math.exp(lm.logprob((3, 5), 1)) == pytest.approx(p1[1])  # only the last token counts at order 2
    assert math.exp(lm.logprob((3,), 1)) == pytest.approx(0.5 * 1 / 1 * p1[1])  # (3) seen once, before EOS
    assert math.exp(lm.logprob((), 1)) == pytest.approx((2 - 0.5) / 3 + 0.5 * 2 / 3 * p1[1])
    assert lm.sentence_logprob([1, 2]) == pytest.approx(lm.logprob((), 1) + lm.logprob((1,), 2)
                                                        + lm.logprob((1, 2), EOS))


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_every_context_gives_a_distribution_and_unseen_tokens_a_floor(order):
    rng = random.Random(order)
    sents = [[rng.randrange(10) for _ in range(rng.randrange(1, 7))] for _ in range(40)]
    lm = NgramLM.train(sents, order=order, vocab_size=12)  # tokens 0-9 + EOS + one the text never has (10)
    for ctx in [(), (3,), (3, 4), (1, 2, 3), (10, 10, 10), tuple(sents[0])]:
        probs = [math.exp(lm.logprob(ctx, t)) for t in [*range(11), EOS]]
        assert sum(probs) == pytest.approx(1.0, abs=1e-9), ctx
        assert min(probs) > 0
    seen = {t for s in sents for t in s}
    assert 0 < math.exp(lm.logprob((), 10)) < min(math.exp(lm.logprob((), t)) for t in seen)


def test_save_and_load_give_the_same_model(tmp_path):
    lm = NgramLM.train(CORPUS * 3 + [[4, 1, 2, 3]], order=3, vocab_size=9)
    lm.save(tmp_path / "ngram.json")
    back = NgramLM.load(tmp_path / "ngram.json")
    assert (back.order, back.vocab_size, back.discount) == (3, 9, 0.75)
    for ctx in [(), (1,), (4, 1), (2, 3), (7, 7)]:
        for t in [1, 2, 3, 4, 8, EOS]:
            assert back.logprob(ctx, t) == lm.logprob(ctx, t)


def test_bad_input_is_refused_with_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"^NgramLM.train: no sentences$"):
        NgramLM.train([])
    with pytest.raises(ValueError, match=r"token ids must be >= 0 \(got -3\)"):
        NgramLM.train([[1, -3]])
    with pytest.raises(ValueError, match=r"vocab_size=3 is under the 4 tokens of the text"):
        NgramLM.train(CORPUS, vocab_size=3)
    with pytest.raises(ValueError, match=r"order=0 must be >= 1"):
        NgramLM.train(CORPUS, order=0)
    with pytest.raises(FileNotFoundError, match=r"no n-gram model at .*missing.json"):
        NgramLM.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad.json is not JSON"):
        NgramLM.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"format": "arpa"}')
    with pytest.raises(ValueError, match=r"other.json is not an n-gram model of this version"):
        NgramLM.load(tmp_path / "other.json")
