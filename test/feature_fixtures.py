"""Tiny cut sets with stored 'encoder features', shared by dataset / decode / training tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from lhotse import CutSet, Features, MonoCut, Recording, SupervisionSegment
from lhotse.audio import AudioSource
from lhotse.features.io import NumpyFilesWriter


def make_feature_cuts(
    root: Path,
    texts: list[str],
    *,
    dim: int = 8,
    frame_shift: float = 0.02,
    translations: list[str] | None = None,
    seed: int = 0,
) -> CutSet:
    """One cut per text, duration 0.2 s per word, random fp16 features (T = duration / frame_shift)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    cuts = []
    with NumpyFilesWriter(str(root / "feats")) as writer:
        for i, text in enumerate(texts):
            duration = round(0.2 * max(len(text.split()), 1), 2)
            frames = int(round(duration / frame_shift))
            arr = rng.standard_normal((frames, dim)).astype(np.float16)
            key = writer.write(f"utt{i}", arr)
            rec = Recording(id=f"utt{i}", sources=[AudioSource(type="file", channels=[0], source="/dev/null")],
                            sampling_rate=16000, num_samples=int(duration * 16000), duration=duration)
            custom = {"translated_text": {"en": translations[i]}} if translations else None
            sup = SupervisionSegment(id=f"utt{i}", recording_id=rec.id, start=0.0, duration=duration, text=text,
                                     language="de" if translations else "en", speaker="spk", custom=custom)
            feats = Features(type="test", num_frames=frames, num_features=dim, frame_shift=frame_shift,
                             sampling_rate=16000, start=0.0, duration=duration, storage_type=writer.name,
                             storage_path=str(writer.storage_path), storage_key=key)
            cuts.append(MonoCut(id=f"utt{i}", start=0.0, duration=duration, channel=0, recording=rec,
                                supervisions=[sup], features=feats))
    cutset = CutSet.from_cuts(cuts)
    cutset.to_file(root / "cuts.jsonl.gz")
    return cutset
