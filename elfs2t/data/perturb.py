"""Speed perturbation of training cuts: Kaldi's ``utils/perturb_data_dir_speed.sh``, done with Lhotse.

A cut played ``factor`` times faster (resampled, so tempo and pitch change together) sounds like another
speaker saying the same words: the cheapest way to more voices when the features are cached, since the
audio must be perturbed *before* the frozen encoder. Lhotse records the perturbation in the cut
(``cut.perturb_speed(0.9)``: id ``<id>_sp0.9``, duration / 0.9) and applies it when the audio is loaded,
so stage 2 caches a perturbed set like any other::

    sp = speed_perturb(CutSet.from_file("cuts_asr_train.jsonl.gz"), factors=(0.9, 1.1), per_cut="all")
    sp.to_file("cuts_asr_train_sp.jsonl.gz")   # 2 x the cuts; the training config lists both sets

``per_cut="all"`` makes one copy per factor (Kaldi's 3-way perturbation with the original set);
``per_cut="one"`` one copy per cut with a factor drawn from ``factors`` -- half the encoder time of "all"
for two factors. The draw is seeded by the cut id, so it does not depend on the order of the cuts.
"""
from __future__ import annotations

import random
from functools import partial
from typing import Literal, Sequence

from lhotse import CutSet, combine

__all__ = ["PER_CUT", "check_factors", "speed_perturb"]

PER_CUT = ("all", "one")
"""How many perturbed copies each cut gets: one per factor, or one with a drawn factor."""


def check_factors(factors: Sequence[float]) -> tuple[float, ...]:
    """``factors`` as a tuple, or ValueError: each must be > 0 and not 1 (the original set), no repeats."""
    out = tuple(float(f) for f in factors)
    if not out:
        raise ValueError("speed perturbation: no factors given")
    bad = [f for f in out if not f > 0 or f == 1.0]
    if bad:
        raise ValueError(f"speed perturbation: factors must be > 0 and != 1 (1 is the original set), got {bad}")
    if len(set(out)) != len(out):
        raise ValueError(f"speed perturbation: repeated factors in {list(out)}")
    return out


def speed_perturb(cuts: CutSet, factors: Sequence[float], *, per_cut: Literal["all", "one"] = "all",
                  seed: int = 0) -> CutSet:
    """The speed-perturbed copies of ``cuts`` (the originals are not included).

    ``per_cut="all"``: every cut once per factor, grouped by factor; ``"one"``: every cut once, with a factor
    drawn from ``factors`` by ``random.Random(f"{seed}:{cut.id}")``. Lazy: nothing is loaded here.
    """
    factors = check_factors(factors)
    if per_cut not in PER_CUT:
        raise ValueError(f"speed perturbation: per_cut must be one of {PER_CUT}, got {per_cut!r}")
    if per_cut == "all":
        return combine([cuts.perturb_speed(f) for f in factors])
    return cuts.map(partial(_perturb_drawn, factors=factors, seed=seed))


def _perturb_drawn(cut, factors: tuple[float, ...], seed: int):
    """``cut`` perturbed by a factor drawn from ``factors``, seeded by ``seed`` and the cut id."""
    return cut.perturb_speed(random.Random(f"{seed}:{cut.id}").choice(factors))
