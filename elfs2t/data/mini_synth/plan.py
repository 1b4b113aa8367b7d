"""The deterministic plan of a mini_synth corpus: which sentence, which speaker, which rate, per split.

Planning is pure and cheap (no audio): ``plan_corpus(seed, sizes)`` returns the same plan for the same
arguments on any machine (string-seeded ``random.Random`` streams, one per purpose, so changing one
size does not reshuffle the voices of another task). Evaluation sentences (dev, test, test_unseen) are
drawn first and are distinct from each other where the grammar allows; training sentences avoid them.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Callable

from elfs2t.data.mini_synth.grammar import english_sentence, german_pair
from elfs2t.data.mini_synth.voices import Speaker, make_speakers

__all__ = ["SPLITS", "PlannedUtt", "CorpusPlan", "plan_corpus"]

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test", "test_unseen")
"""mini_synth splits; ``test_unseen`` is spoken by voices that no other split uses."""
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


def plan_corpus(seed: int, sizes: dict[str, int]) -> CorpusPlan:
    """Plan both tasks. ``sizes`` maps every split in :data:`SPLITS` to its number of utterances per task."""
    missing = [s for s in SPLITS if s not in sizes]
    if missing:
        raise ValueError(f"plan_corpus: sizes lacks splits {missing}")
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
    return plan
