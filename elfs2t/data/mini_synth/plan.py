"""The deterministic plan of a mini_synth corpus: which sentence, which speaker, which rate, per split.

Planning is pure and cheap (no audio): ``plan_corpus(seed, sizes)`` returns the same plan for the same
arguments on any machine (string-seeded ``random.Random`` streams, one per purpose, so changing one
size does not reshuffle the voices of another task). Evaluation sentences (dev, test, test_unseen) are
drawn first and are distinct from each other where the grammar allows; training sentences avoid them.

The generalisation splits (:data:`GEN_SPLITS`) come from streams of their own (their sentences, voices and
rates), so adding them or changing their sizes leaves every other split as it was. Their sentences come from
:mod:`~elfs2t.data.mini_synth.grammar_gen`: structures the training grammar never produces, only words that
occur in this corpus' training sentences (German: in the German sentences, and in the English translations for
the translation), none of the corpus' other sentences, at most :data:`GEN_MAX_WORDS` words.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Callable

import re

from elfs2t.data.mini_synth.grammar import english_sentence, german_pair
from elfs2t.data.mini_synth.grammar_gen import english_gen_sentence, german_gen_pair
from elfs2t.data.mini_synth.voices import Speaker, make_speakers

__all__ = ["SPLITS", "GEN_SPLITS", "GEN_MAX_WORDS", "PlannedUtt", "CorpusPlan", "plan_corpus", "words_of"]

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test", "test_unseen")
"""mini_synth splits; ``test_unseen`` is spoken by voices that no other split uses."""
GEN_SPLITS = ("test_gen", "test_gen_unseen")
"""Generalisation splits (optional, sizes default to 0): new structures spoken by seen / unseen voices."""
GEN_MAX_WORDS = {"en": 16, "de": 11}
"""Longest generalisation sentence in words (spoken language). German: 11 words stay within 30 MiniLM tokens,
the English translations within 22; English: 16 words within 22 (test/test_mini_synth_gen.py)."""
NUM_SPEAKERS = {"en": (40, 10), "de": (30, 8)}
"""(seen, unseen) speakers per language."""
FIRST_SPEAKER_ID = {("en", True): 100, ("en", False): 900, ("de", True): 500, ("de", False): 950}
"""Numeric id of the first speaker of each pool."""


@dataclass(frozen=True)
class PlannedUtt:
    """One planned utterance."""

    split: str
    """One of :data:`SPLITS`."""
    text: str
    """Spoken sentence (normal casing and punctuation)."""
    translation: str
    """English translation (S2TT task), empty for the English task."""
    speaker: Speaker
    """Who speaks it."""
    rate: int
    """Speaking rate (words per minute) for this utterance."""
    structure: str = ""
    """Generalisation splits: the structure of the sentence (a key of grammar_gen's structure tables)."""


@dataclass
class CorpusPlan:
    """Planned utterances per task ("en" ASR, "de" S2TT) and split."""

    seed: int
    """Seed the plan was drawn from."""
    utts: dict[str, dict[str, list[PlannedUtt]]] = field(default_factory=dict)
    """task -> split -> utterances, in plan order."""
    speakers: dict[str, list[Speaker]] = field(default_factory=dict)
    """task -> all speakers (seen first, then unseen)."""


def _unique_sentences(draw: Callable[[], object], n: int, exclude: set, what: str) -> list:
    """``n`` draws distinct from each other and from ``exclude``; duplicates only if the grammar runs dry."""
    out: list = []
    seen = set(exclude)
    attempts = 0
    while len(out) < n:
        item = draw()
        attempts += 1
        if item in seen and attempts < 50 * n + 100:
            continue
        seen.add(item)
        out.append(item)
    if attempts >= 50 * n + 100:
        logger.warning("%s: the grammar ran short of new sentences; some sentences repeat", what)
    return out


def words_of(text: str) -> set[str]:
    """The lower-cased words of a sentence (runs of letters or digits, with inner apostrophes: "didn't")."""
    return set(re.findall(r"[^\W_]+(?:'[^\W_]+)*", text.lower()))


def _plan_gen(seed: int, task: str, sizes: dict[str, int], utts: dict[str, list[PlannedUtt]],
              seen: list[Speaker], unseen: list[Speaker]) -> dict[str, list[PlannedUtt]]:
    """The generalisation splits of one task (see the module docstring), from their own random streams."""
    rng_text = random.Random(f"mini_synth:{seed}:{task}:gen_text")
    rng_voice = random.Random(f"mini_synth:{seed}:{task}:gen_voice")
    vocab = set().union(*(words_of(u.text) for u in utts["train"]))
    vocab_tr = set().union(*(words_of(u.translation) for u in utts["train"]))
    taken = {u.text for split in SPLITS for u in utts[split]}
    n = sum(sizes.values())
    out: list[tuple[str, str, str]] = []
    attempts, outside = 0, 0
    while len(out) < n:
        if task == "en":
            text, structure = english_gen_sentence(rng_text)
            translation = ""
        else:
            (text, translation), structure = german_gen_pair(rng_text)
        attempts += 1
        if len(text.split()) > GEN_MAX_WORDS[task] or text in taken:
            continue
        in_vocab = words_of(text) <= vocab and words_of(translation) <= vocab_tr
        if not in_vocab and attempts < 200 * n + 1000:
            continue
        outside += not in_vocab
        taken.add(text)
        out.append((text, translation, structure))
    if outside:
        logger.warning("%s generalisation sets: %d of %d sentences use words that the %d training sentences lack "
                       "(too few training sentences for the vocabulary check)", task, outside, n, len(utts["train"]))
    plan: dict[str, list[PlannedUtt]] = {}
    start = 0
    for split in GEN_SPLITS:
        pool = unseen if split == "test_gen_unseen" else seen
        plan[split] = []
        for text, translation, structure in out[start: start + sizes[split]]:
            spk = rng_voice.choice(pool)
            plan[split].append(PlannedUtt(split=split, text=text, translation=translation, speaker=spk,
                                          rate=spk.utterance_rate(rng_voice), structure=structure))
        start += sizes[split]
    return plan


def plan_corpus(seed: int, sizes: dict[str, int]) -> CorpusPlan:
    """Plan both tasks. ``sizes`` maps every split in :data:`SPLITS` to its number of utterances per task, and
    may give the :data:`GEN_SPLITS` theirs (default 0); ``plan.utts[task]`` holds every split of both tuples."""
    missing = [s for s in SPLITS if s not in sizes]
    if missing:
        raise ValueError(f"plan_corpus: sizes lacks splits {missing}")
    unknown = [s for s in sizes if s not in SPLITS + GEN_SPLITS]
    if unknown:
        raise ValueError(f"plan_corpus: unknown splits {unknown}; known: {list(SPLITS + GEN_SPLITS)}")
    bad = {s: n for s, n in sizes.items() if not isinstance(n, int) or n < 0}
    if bad:
        raise ValueError(f"plan_corpus: sizes must be integers >= 0, got {bad}")
    plan = CorpusPlan(seed=seed)
    for task in ("en", "de"):
        rng_text = random.Random(f"mini_synth:{seed}:{task}:text")
        rng_voice = random.Random(f"mini_synth:{seed}:{task}:voice")
        n_seen, n_unseen = NUM_SPEAKERS[task]
        seen = make_speakers(task, seen=True, count=n_seen, rng=rng_voice, first_id=FIRST_SPEAKER_ID[(task, True)])
        unseen = make_speakers(task, seen=False, count=n_unseen, rng=rng_voice, first_id=FIRST_SPEAKER_ID[(task, False)])
        plan.speakers[task] = seen + unseen
        if task == "en":
            draw = lambda: (english_sentence(rng_text), "")  # noqa: E731
        else:
            draw = lambda: german_pair(rng_text)  # noqa: E731
        n_eval = sizes["dev"] + sizes["test"] + sizes["test_unseen"]
        evals = _unique_sentences(draw, n_eval, set(), f"{task} eval")
        trains = _unique_sentences(draw, sizes["train"], set(evals), f"{task} train")
        texts = {"train": trains, "dev": evals[: sizes["dev"]],
                 "test": evals[sizes["dev"]: sizes["dev"] + sizes["test"]],
                 "test_unseen": evals[sizes["dev"] + sizes["test"]:]}
        plan.utts[task] = {}
        for split in SPLITS:
            pool = unseen if split == "test_unseen" else seen
            utts = []
            for text, translation in texts[split]:
                spk = rng_voice.choice(pool)
                utts.append(PlannedUtt(split=split, text=text, translation=translation, speaker=spk,
                                       rate=spk.utterance_rate(rng_voice)))
            plan.utts[task][split] = utts
        gen_sizes = {s: sizes.get(s, 0) for s in GEN_SPLITS}
        plan.utts[task].update(_plan_gen(seed, task, gen_sizes, plan.utts[task], seen, unseen))
    return plan
