"""Synthetic speakers for mini_synth: espeak-ng voice + variant, pitch and speaking rate.

A speaker is one espeak-ng voice with a variant (``en-us+m3``), a base pitch (``-p``, 0-99) and a base
rate (``-s``, words per minute); each utterance jitters the rate a little. Speakers of the
*unseen-voice* test set use variants (and, for English, accents) that no training, dev or test speaker
uses, so that set measures generalisation to new voices::

    seen = make_speakers("en", seen=True, count=40, rng=random.Random(0))
    unseen = make_speakers("en", seen=False, count=10, rng=random.Random(1))
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

__all__ = ["Speaker", "make_speakers", "VARIANTS_SEEN", "VARIANTS_UNSEEN", "BASE_VOICES"]

# espeak-ng variants (espeak-ng-data/voices/!v), split into disjoint seen / unseen sets.
VARIANTS_SEEN: dict[str, str] = {
    "m1": "male", "m2": "male", "m3": "male", "m4": "male", "m5": "male", "m6": "male", "m8": "male",
    "f1": "female", "f2": "female", "f3": "female", "f5": "female", "klatt": "male", "klatt2": "male",
    "croak": "male", "Annie": "female", "anika": "female", "david": "male", "linda": "female",
}
VARIANTS_UNSEEN: dict[str, str] = {
    "m7": "male", "f4": "female", "klatt3": "male", "klatt4": "female", "belinda": "female",
    "john": "male", "max": "male", "edward": "male",
}
# (language) -> (accents for seen speakers, accents only unseen speakers use)
BASE_VOICES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "en": (("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbcwmd"), ("en-029", "en-gb-x-gbclan")),
    "de": (("de",), ("de",)),
}
PITCH_RANGE = (25, 75)
"""Base pitch range (espeak -p)."""
RATE_RANGE = (140, 195)
"""Base speaking-rate range in words per minute (espeak -s)."""
RATE_JITTER = 0.08
"""Per-utterance relative jitter of the speaking rate."""
AGES = ("twenties", "thirties", "fourties", "fifties", "sixties")
"""Common Voice age buckets (spelled as in the CV v4 metadata)."""


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker."""

    speaker_id: int
    """Numeric id (LibriSpeech speaker directory name)."""
    voice: str
    """espeak-ng voice with variant, e.g. ``en-us+m3``."""
    pitch: int
    """Base pitch, espeak-ng ``-p`` (0-99)."""
    rate: int
    """Base rate in words per minute, espeak-ng ``-s``."""
    gender: str
    """``male`` or ``female`` (from the variant)."""
    age: str
    """Common Voice age bucket."""
    seen: bool
    """False for speakers reserved for the unseen-voice test set."""

    @property
    def variant(self) -> str:
        """The espeak-ng variant name (after ``+``)."""
        return self.voice.partition("+")[2]

    @property
    def client_id(self) -> str:
        """Common Voice style client id: a hex digest (deterministic from the speaker)."""
        return hashlib.sha256(f"{self.speaker_id}:{self.voice}:{self.pitch}:{self.rate}".encode()).hexdigest()

    def utterance_rate(self, rng: random.Random) -> int:
        """The rate for one utterance: the base rate with a small random jitter."""
        return int(round(self.rate * (1.0 + rng.uniform(-RATE_JITTER, RATE_JITTER))))


def make_speakers(language: str, *, seen: bool, count: int, rng: random.Random, first_id: int = 100) -> list[Speaker]:
    """``count`` distinct speakers for ``language`` ("en" or "de") from the seen or unseen voice pool.

    Voices cycle through all variants before repeating one, so every variant is used when
    ``count >= number of variants``; ids are ``first_id, first_id + 1, ...``.
    """
    if language not in BASE_VOICES:
        raise ValueError(f"make_speakers: unknown language {language!r}; known: {sorted(BASE_VOICES)}")
    if count < 1:
        raise ValueError(f"make_speakers: count must be >= 1, got {count}")
    variants = VARIANTS_SEEN if seen else VARIANTS_UNSEEN
    bases = BASE_VOICES[language][0 if seen else 1]
    names = sorted(variants)
    rng.shuffle(names)
    speakers = []
    for i in range(count):
        variant = names[i % len(names)]
        base = bases[i % len(bases)] if len(bases) > 1 else bases[0]
        speakers.append(Speaker(
            speaker_id=first_id + i,
            voice=f"{base}+{variant}",
            pitch=rng.randint(*PITCH_RANGE),
            rate=rng.randint(*RATE_RANGE),
            gender=variants[variant],
            age=rng.choice(AGES),
            seen=seen,
        ))
    return speakers
