"""The speech-to-text training dataset: cuts with cached encoder features -> batch dict.

The batch dictionary is the contract between the data side and every model (docs/contracts.md)::

    {
      "cut_ids":   list[str]                length B
      "feats":     FloatTensor (B, T, D)    encoder frames (fp16 on disk -> float32), zero-padded
      "feat_lens": LongTensor  (B,)         valid frames per row
      "text":      list[str]                target text: transcript (ASR) or translation (S2TT)
      "task":      list[str]                the task token: "asr" or "st:<tgt>" by default (SetSpec.task)
    }

Which text a cut is trained on is decided by its *target* (:func:`target_text`): ``"transcript"``
reads ``supervision.text``, ``"translation:<tgt>"`` reads
``supervision.custom["translated_text"][tgt]``. :func:`tag_target` stores the target (and the task) in the
cut's ``custom`` so that sets with different targets can be mixed in one sampler -- also the same manifest
twice with two targets, which is how a joint ASR + S2TT model trains on each utterance's transcript and
translation (the copies keep their cut ids).
"""
from __future__ import annotations

import logging
from functools import partial
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
from lhotse import CutSet
from lhotse.cut import Cut

from elfs2t.config import ConfigError, config_check
from elfs2t.features.storage import open_cuts  # also registers the 'elfs2t_kaldiio' lhotse storage of stage 2

log = logging.getLogger(__name__)

TARGET_KEY = "elfs2t_target"
TASK_KEY = "elfs2t_task"


@dataclass(kw_only=True)
class SetSpec:
    """One manifest and what it is trained/scored on."""

    cuts: Path
    """A cuts manifest with cached features (``dump/<encoder_tag>/<set>/cuts.jsonl.gz``)."""
    target: str = "transcript"
    """``transcript`` (ASR) or ``translation:<tgt>`` (S2TT into language <tgt>)."""
    task: Optional[str] = None
    """The task token of these cuts (one of the model's ``tasks``); default from the target: ``asr`` for
    ``transcript``, ``st:<tgt>`` for ``translation:<tgt>``."""

    def validate(self) -> None:
        check_target(self.target)
        config_check(self.task is None or bool(self.task.strip()), "task", self.task, "must not be empty")

    @property
    def task_name(self) -> str:
        """The task token of these cuts (``task``, or the default of the target)."""
        return self.task or task_of(self.target)


def check_target(target: str, key: str = "target") -> None:
    ok = target == "transcript" or (target.startswith("translation:") and len(target) > len("translation:"))
    config_check(ok, key, target, "must be 'transcript' or 'translation:<tgt>'")


def task_of(target: str) -> str:
    """``transcript`` -> ``asr``; ``translation:en`` -> ``st:en``."""
    return "asr" if target == "transcript" else "st:" + target.split(":", 1)[1]


def target_text(cut: Cut, target: Optional[str] = None) -> str:
    """The text a cut is trained on / scored against (see the module docstring)."""
    target = target or (cut.custom or {}).get(TARGET_KEY, "transcript")
    if not cut.supervisions:
        raise ValueError(f"cut {cut.id} has no supervision")
    sup = cut.supervisions[0]
    if target == "transcript":
        return sup.text or ""
    tgt = target.split(":", 1)[1]
    try:
        return sup.custom["translated_text"][tgt]
    except (KeyError, TypeError) as exc:
        raise KeyError(
            f"cut {cut.id} has no translation into '{tgt}' (supervision.custom['translated_text'])"
        ) from exc


def _tag(cut: Cut, target: str, task: Optional[str]) -> Cut:
    custom = dict(cut.custom or {})
    custom[TARGET_KEY] = target
    custom[TASK_KEY] = task or task_of(target)
    cut.custom = custom
    return cut


def tag_target(cuts: CutSet, target: str, task: Optional[str] = None) -> CutSet:
    """Remember in each cut which text it is trained on and its task token (default: from the target; lazy,
    works on lazy manifests)."""
    check_target(target)
    return cuts.map(partial(_tag, target=target, task=task))


def cut_task(cut: Cut) -> str:
    """The task token of a tagged cut (an untagged one: the default of its target)."""
    custom = cut.custom or {}
    return custom.get(TASK_KEY) or task_of(custom.get(TARGET_KEY, "transcript"))


def load_sets(specs: list[SetSpec]) -> CutSet:
    """Open the manifests of ``specs`` lazily (feature paths relative to a manifest resolved against its folder,
    :func:`~elfs2t.features.storage.open_cuts`), tag their targets, and chain them."""
    if not specs:
        raise ConfigError("no cut manifests given")
    out = None
    for spec in specs:
        if not Path(spec.cuts).is_file():
            raise FileNotFoundError(f"cuts manifest not found: {spec.cuts} (did stage 2 run?)")
        cuts = tag_target(open_cuts(spec.cuts), spec.target, spec.task)
        out = cuts if out is None else out + cuts
    return out


@dataclass(kw_only=True)
class CutFilter:
    """Drops utterances that are too long or whose text does not fit, counting each reason and remembering
    which cut it dropped and why (:attr:`dropped`)."""

    max_duration: float = 30.0
    """Longest utterance kept, in seconds."""
    max_tokens: Optional[int] = None
    """Longest target text kept, in tokens of ``count_tokens`` (None: no limit)."""
    counts: dict = field(default_factory=lambda: {"kept": 0, "too_long_audio": 0, "too_long_text": 0, "empty_text": 0})
    """Cuts kept, and cuts dropped per reason."""
    dropped: list = field(default_factory=list)
    """``(cut id, reason, value, limit)`` of every dropped cut, e.g. ``("a-1", "too_long_audio", "31.2", "30")``."""

    def _drop(self, cut: Cut, reason: str, value: object, limit: object) -> bool:
        self.counts[reason] += 1
        self.dropped.append((cut.id, reason, str(value), str(limit)))
        return False

    def __call__(self, cut: Cut, count_tokens: Optional[Callable[[str], int]] = None) -> bool:
        if cut.duration > self.max_duration:
            return self._drop(cut, "too_long_audio", f"{cut.duration:.2f}", f"{self.max_duration:g}")
        text = target_text(cut)
        if not text.strip():
            return self._drop(cut, "empty_text", 0, 1)
        if self.max_tokens is not None and count_tokens is not None:
            n = count_tokens(text)
            if n > self.max_tokens:
                return self._drop(cut, "too_long_text", n, self.max_tokens)
        self.counts["kept"] += 1
        return True


def filter_cuts(
    cuts: CutSet, max_duration: float, max_tokens: Optional[int] = None,
    count_tokens: Optional[Callable[[str], int]] = None, dropped: Optional[list] = None,
) -> tuple[CutSet, dict]:
    """Eagerly filter ``cuts``; returns the kept cuts and the counts per reason (logged). ``dropped``, when given,
    receives ``(cut id, reason, value, limit)`` of every dropped cut (:class:`CutFilter`)."""
    flt = CutFilter(max_duration=max_duration, max_tokens=max_tokens)
    kept = CutSet.from_cuts([c for c in cuts if flt(c, count_tokens)])
    counts = {k: v for k, v in flt.counts.items() if k != "kept" and v}
    log.info("kept %d cuts; dropped %s", flt.counts["kept"], counts or "none")
    if dropped is not None:
        dropped.extend(flt.dropped)
    return kept, dict(flt.counts)


class S2TDataset(torch.utils.data.Dataset):
    """Map-style Lhotse dataset: a CutSet (one sampler batch) -> the batch dict above.

    Features are read through the cuts (``cut.load_features()``), so the dataset needs nothing but
    the manifests written by stage 2. ``text_transform`` (e.g. ``str.lower``) is applied to targets.
    """

    def __init__(self, text_transform: Optional[Callable[[str], str]] = None) -> None:
        self.text_transform = text_transform

    def __getitem__(self, cuts: CutSet) -> dict:
        cuts = cuts.sort_by_duration(ascending=False)
        feats = []
        for cut in cuts:
            if not cut.has_features:
                raise ValueError(f"cut {cut.id} has no cached features: run stage 2 and train on its cuts.jsonl.gz")
            feats.append(torch.from_numpy(cut.load_features()).float())
        lens = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
        dim = feats[0].shape[1]
        padded = torch.zeros(len(feats), int(lens.max()), dim)
        for i, f in enumerate(feats):
            padded[i, : f.shape[0]] = f
        texts = [target_text(c) for c in cuts]
        if self.text_transform is not None:
            texts = [self.text_transform(t) for t in texts]
        return {
            "cut_ids": [c.id for c in cuts],
            "feats": padded,
            "feat_lens": lens,
            "text": texts,
            "task": [cut_task(c) for c in cuts],
            "duration": torch.tensor([c.duration for c in cuts]),
        }
