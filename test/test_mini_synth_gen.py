"""mini_synth's generalisation sets: the new structures (a signature per structure that every generated sentence of
it matches and no sentence of the training grammar does), the training vocabulary only, never a sentence of the
other splits, the models' text lengths, seen / unseen voices, and their own random streams."""
from __future__ import annotations

import random
import re

import pytest

from elfs2t.data.mini_synth import lexicon_de as de
from elfs2t.data.mini_synth import lexicon_en as en
from elfs2t.data.mini_synth.grammar import english_sentence, german_pair, librispeech_text
from elfs2t.data.mini_synth.grammar_gen import DE_GEN_STRUCTURES, EN_GEN_STRUCTURES
from elfs2t.data.mini_synth.plan import GEN_MAX_WORDS, GEN_SPLITS, SPLITS, plan_corpus, words_of

from conftest import ROOT

SIZES = {"train": 3000, "dev": 200, "test": 200, "test_unseen": 200}  # the demo's sizes (planning only: no audio)
GEN = {"test_gen": 200, "test_gen_unseen": 200}

# word classes of the English lexicon (forms that belong to one class only)
ADJ = set(en.ADJECTIVES)
ADV = set(en.ADVERBS)
PREP = set(en.PREPOSITIONS)
NOUN = {w for pair in en.PEOPLE + en.ANIMALS + en.THINGS for w in pair} | set(en.PLACES)
T_PAST = {v[2] for v in en.TRANSITIVE}
PAST = {v[2] for v in en.TRANSITIVE + en.INTRANSITIVE}
TIMES = tuple(t.lower() + " " for t in en.TIMES)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def _two_pps_after_object(w: list[str]) -> bool:
    """A transitive verb with an object (a determiner follows it) whose clause (up to the next verb or
    conjunction) holds two place prepositions."""
    for i, word in enumerate(w[:-1]):
        if word in T_PAST and w[i + 1] in ("the", "a", "an"):
            clause = []
            for x in w[i + 1:]:
                if x in PAST or x in en.CONNECTIVES or x == "and":
                    break
                clause.append(x)
            if sum(x in PREP for x in clause) >= 2:
                return True
    return False


EN_SIGNATURES = {
    "coordination": lambda s, w: any(x == "and" and (i == 0 or w[i - 1] != "hundred") for i, x in enumerate(w)),
    "two_adjectives": lambda s, w: any(a in ADJ and b in ADJ for a, b in zip(w, w[1:])),
    "two_pps": lambda s, w: _two_pps_after_object(w),
    "fronted_time": lambda s, w: s.lower().startswith(TIMES),
    "fronted_pp": lambda s, w: w[0] in PREP,
    "adverb_verb": lambda s, w: any(a in ADV and b in PAST for a, b in zip(w, w[1:])),
    "pp_subject": lambda s, w: w[0] == "the" and w[1] in NOUN and w[2] in PREP,
}

DE_ADJ = {f"{a[:-1] if a.endswith('e') else a}{end}" for a, _ in de.ADJECTIVES for end in ("e", "en", "er", "es")}
DE_PLACES = {p.de.lower() for p in de.PLACES}
DE_TIMES = tuple(t.lower() + " " for t, _ in de.TIMES)
DE_SIGNATURES = {
    "two_adjectives": lambda s, w: any(a in DE_ADJ and b in DE_ADJ for a, b in zip(w, w[1:])),
    "two_pps": lambda s, w: sum(x in DE_PLACES for x in w) >= 2,
    "fronted_pp": lambda s, w: w[0] in ("in", "im", "neben", "hinter", "vor"),
    "dass_weil": lambda s, w: "dass" in w and "weil" in w,
    "time_negation": lambda s, w: s.lower().startswith(DE_TIMES) and w[-1] == "nicht",
    "two_clauses": lambda s, w: "," in s and "dass" not in w and "weil" not in w,
}


def _de_words(text: str) -> list[str]:
    return re.findall(r"[a-zäöüß']+", text.lower())


@pytest.fixture(scope="module")
def plan():
    return plan_corpus(0, {**SIZES, **GEN})


def test_every_structure_has_a_signature_the_training_grammar_never_shows():
    assert set(EN_SIGNATURES) == set(EN_GEN_STRUCTURES) and set(DE_SIGNATURES) == set(DE_GEN_STRUCTURES)
    rng = random.Random(7)
    for name, make in EN_GEN_STRUCTURES.items():
        for _ in range(200):
            s = make(rng)
            assert EN_SIGNATURES[name](s, _words(s)), (name, s)
    for name, make in DE_GEN_STRUCTURES.items():
        for _ in range(200):
            s, _ = make(rng)
            assert DE_SIGNATURES[name](s, _de_words(s)), (name, s)
    for _ in range(20000):
        s = english_sentence(rng)
        assert not [n for n, sig in EN_SIGNATURES.items() if sig(s, _words(s))], s
        s, _ = german_pair(rng)
        assert not [n for n, sig in DE_SIGNATURES.items() if sig(s, _de_words(s))], s


def test_gen_splits_use_the_training_vocabulary_and_no_other_sentence(plan):
    for task in ("en", "de"):
        train = plan.utts[task]["train"]
        vocab = set().union(*(words_of(u.text) for u in train))
        vocab_tr = set().union(*(words_of(u.translation) for u in train))
        others = {u.text for split in SPLITS for u in plan.utts[task][split]}
        gen = [u for split in GEN_SPLITS for u in plan.utts[task][split]]
        assert [len(plan.utts[task][s]) for s in GEN_SPLITS] == [200, 200]
        assert all(words_of(u.text) <= vocab and words_of(u.translation) <= vocab_tr for u in gen), task
        assert not {u.text for u in gen} & others and len({u.text for u in gen}) == len(gen)
        assert all(len(u.text.split()) <= GEN_MAX_WORDS[task] for u in gen)
        structures = {u.structure for u in gen}
        assert structures == set(EN_GEN_STRUCTURES if task == "en" else DE_GEN_STRUCTURES), task
        assert all(u.speaker.seen for u in plan.utts[task]["test_gen"])
        assert not any(u.speaker.seen for u in plan.utts[task]["test_gen_unseen"])
        assert {u.speaker.speaker_id for u in plan.utts[task]["test_gen_unseen"]} <= {
            s.speaker_id for s in plan.speakers[task] if not s.seen}


def test_gen_splits_leave_the_other_splits_as_they_were(plan):
    without = plan_corpus(0, SIZES)
    for task in ("en", "de"):
        for split in SPLITS:
            assert plan.utts[task][split] == without.utts[task][split], (task, split)
        assert all(without.utts[task][s] == [] for s in GEN_SPLITS)
    smaller = plan_corpus(0, {**SIZES, "test_gen": 50, "test_gen_unseen": 0})
    assert [u.text for u in smaller.utts["en"]["test_gen"]] == [u.text for u in plan.utts["en"]["test_gen"][:50]]
    with pytest.raises(ValueError, match=r"unknown splits \['test_other'\]"):
        plan_corpus(0, {**SIZES, "test_other": 3})


def test_gen_sentences_fit_the_models_text_length(plan):
    """MiniLM tokens (lower-cased, as the models see them): ASR transcripts and English translations fit the
    single-task models' L = 24 (22 content tokens), German transcripts the joint models' L = 34 (32)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(ROOT / "tools" / "models" / "all-MiniLM-L6-v2"))

    def longest(texts):
        return max(len(ids) for ids in tok([t.lower() for t in texts], add_special_tokens=False)["input_ids"])

    en_gen = [u for s in GEN_SPLITS for u in plan.utts["en"][s]]
    de_gen = [u for s in GEN_SPLITS for u in plan.utts["de"][s]]
    assert longest([librispeech_text(u.text) for u in en_gen]) <= 22
    assert longest([u.translation for u in de_gen]) <= 22
    assert longest([u.text for u in de_gen]) <= 30


def test_too_few_training_sentences_for_the_vocabulary_check_are_reported(caplog):
    with caplog.at_level("WARNING"):
        small = plan_corpus(3, {"train": 12, "dev": 4, "test": 4, "test_unseen": 4, "test_gen": 3,
                                "test_gen_unseen": 3})
    assert len(small.utts["en"]["test_gen"]) == 3
    assert re.search(r"en generalisation sets: \d of 6 sentences use words that the 12 training sentences lack",
                     caplog.text)
