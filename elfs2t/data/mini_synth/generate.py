"""Generate the mini_synth corpus: plan, synthesize in parallel, write both layouts, summarise.

Split -> on-disk mapping::

    split         English ASR (LibriSpeech part)     German S2TT (CoVoST 2 ``split`` column)
    train         train-clean-100                     train (~90 %) and train_covost (~10 %)
    dev           dev-clean                           dev
    test          test-clean                          test
    test_unseen   test-other  (unseen voices)         test_unseen  (unseen voices; our extra split)

The generalisation splits (:data:`~elfs2t.data.mini_synth.plan.GEN_SPLITS`, optional) form a second corpus in
the same layouts under ``gen/``, so that the files of the splits above are the same with or without them::

    test_gen          gen/LibriSpeech/test-clean          gen/covost ``test``         (seen voices)
    test_gen_unseen   gen/LibriSpeech/test-other          gen/covost ``test_unseen``  (unseen voices)

Units of work are (task, split) pairs. A finished unit leaves a marker (JSON with the hash of its
plan and the durations of its files): ``LibriSpeech/<part>/.mini_synth_done`` and
``cv/de/.mini_synth_done_<split>``. A re-run skips units whose marker matches the plan and whose files
exist; any other unit is removed and redone. The TSVs and ``README.txt`` are rewritten at the end
(deterministically) from the plan and the recorded durations.
"""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import random
import shutil
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm

from elfs2t.data.mini_synth.grammar import librispeech_text
from elfs2t.data.mini_synth.plan import GEN_SPLITS, SPLITS, CorpusPlan, PlannedUtt, plan_corpus
from elfs2t.data.mini_synth.summary import write_gen_summary, write_summary
from elfs2t.data.mini_synth.synth import SynthJob, check_espeak, run_job
from elfs2t.data.mini_synth.writers import (
    CvClip, LibriUtt, librispeech_audio_path, write_covost_tsv, write_cv_validated, write_librispeech_transcripts,
)

__all__ = ["generate_mini_synth", "english_layout", "german_layout", "LIBRISPEECH_PARTS", "COVOST_SPLITS", "LIBRI_RATE",
           "CV_RATE", "GEN_DIR", "GEN_LIBRISPEECH_PARTS"]

logger = logging.getLogger(__name__)

LIBRISPEECH_PARTS = {"train": "train-clean-100", "dev": "dev-clean", "test": "test-clean", "test_unseen": "test-other"}
"""mini_synth split -> LibriSpeech part directory (test-other holds the unseen-voice test set)."""
GEN_LIBRISPEECH_PARTS = {"test_gen": "test-clean", "test_gen_unseen": "test-other"}
"""Generalisation split -> LibriSpeech part directory of the generalisation corpus (:data:`GEN_DIR`)."""
GEN_DIR = "gen"
"""Folder of the generalisation corpus under the corpus root."""
COVOST_SPLIT = {"test_gen": "test", "test_gen_unseen": "test_unseen"}
"""CoVoST ``split`` value of each generalisation split in the generalisation corpus' TSV."""
COVOST_SPLITS = ("train", "train_covost", "dev", "test", "test_unseen")
"""Values of the CoVoST ``split`` column that mini_synth writes."""
CHAPTER_BASE = {"train": 1000, "dev": 2000, "test": 3000, "test_unseen": 4000, "test_gen": 5000, "test_gen_unseen": 6000}
"""LibriSpeech chapter id = base + speaker id, so recording ids are unique across parts."""
FIRST_CLIP = 10_000_000
"""Number of the first Common Voice clip (``common_voice_de_<n>.mp3``)."""
FIRST_GEN_CLIP = 20_000_000
"""Number of the first clip of the generalisation corpus (clip names stay unique across both corpora)."""
TRAIN_COVOST_SHARE = 0.1
"""Share of German training rows labelled ``train_covost`` (as in the real corpus)."""
LIBRI_RATE = 16000
"""Sampling rate of the LibriSpeech FLAC files."""
CV_RATE = 48000
"""Sampling rate of the Common Voice MP3 files."""
MARKER = ".mini_synth_done"
"""Marker file name prefix."""


def english_layout(plan: CorpusPlan, root: Path, splits: tuple[str, ...] = SPLITS
                   ) -> dict[str, list[tuple[PlannedUtt, LibriUtt, Path]]]:
    """split -> [(planned utterance, its LibriSpeech entry, its FLAC path)] under corpus ``root`` (for the
    generalisation splits: the generalisation corpus' root)."""
    out = {}
    for split in splits:
        part_dir = root / "LibriSpeech" / {**LIBRISPEECH_PARTS, **GEN_LIBRISPEECH_PARTS}[split]
        counters: dict[int, int] = {}
        rows = []
        for utt in plan.utts["en"][split]:
            spk = utt.speaker.speaker_id
            idx = counters.get(spk, 0)
            counters[spk] = idx + 1
            lu = LibriUtt(speaker=spk, chapter=CHAPTER_BASE[split] + spk, index=idx, transcript=librispeech_text(utt.text))
            rows.append((utt, lu, librispeech_audio_path(part_dir, lu)))
        out[split] = rows
    return out


def german_layout(plan: CorpusPlan, root: Path, seed: int, splits: tuple[str, ...] = SPLITS
                  ) -> dict[str, list[tuple[PlannedUtt, CvClip, Path]]]:
    """split -> [(planned utterance, its Common Voice / CoVoST row, its MP3 path)] under corpus ``root`` (for the
    generalisation splits: the generalisation corpus' root)."""
    rng = random.Random(f"mini_synth:{seed}:de:covost_split")
    clips_dir = root / "cv" / "de" / "clips"
    number = FIRST_GEN_CLIP if splits == GEN_SPLITS else FIRST_CLIP
    out = {}
    for split in splits:
        rows = []
        for utt in plan.utts["de"][split]:
            covost_split = COVOST_SPLIT.get(split, split)
            if split == "train" and rng.random() < TRAIN_COVOST_SHARE:
                covost_split = "train_covost"
            name = f"common_voice_de_{number}.mp3"
            number += 1
            spk = utt.speaker
            clip = CvClip(path=name, sentence=utt.text, translation=utt.translation, client_id=spk.client_id,
                          split=covost_split, gender=spk.gender, age=spk.age)
            rows.append((utt, clip, clips_dir / name))
        out[split] = rows
    return out


def _unit_hash(jobs: list[SynthJob], root: Path) -> str:
    text = json.dumps([[j.text, j.voice, j.rate, j.pitch, str(j.path.relative_to(root)), j.sample_rate,
                        j.min_s, j.max_s] for j in jobs])
    return hashlib.sha256(text.encode()).hexdigest()


def _read_marker(marker: Path, digest: str, jobs: list[SynthJob], root: Path) -> dict[str, float] | None:
    """Recorded durations if ``marker`` matches the plan and every file exists, else None."""
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text())
    except (json.JSONDecodeError, OSError):
        logger.warning("%s: unreadable marker, redoing the unit", marker)
        return None
    if data.get("hash") != digest:
        logger.warning("%s: written for a different plan (seed or sizes changed), redoing the unit", marker)
        return None
    durations = data.get("durations", {})
    if any(not j.path.is_file() or str(j.path.relative_to(root)) not in durations for j in jobs):
        logger.warning("%s: files are missing, redoing the unit", marker)
        return None
    return durations


class _Runner:
    """Runs synthesis jobs with a lazily started process pool (shared by all units)."""

    def __init__(self, nj: int, stack: ExitStack):
        self.nj, self.stack, self.pool = nj, stack, None

    def run(self, jobs: list[SynthJob], desc: str) -> dict[str, float]:
        if self.nj > 1 and self.pool is None:
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            self.pool = self.stack.enter_context(ctx.Pool(self.nj))
        results = self.pool.imap(run_job, jobs, chunksize=4) if self.pool else map(run_job, jobs)
        return dict(tqdm(results, total=len(jobs), desc=desc, unit="utt"))


def _run_unit(name: str, marker: Path, jobs: list[SynthJob], root: Path, runner: _Runner,
              clean: Callable[[], None], after: Callable[[], None] | None = None) -> dict[str, float]:
    """Skip the unit if its marker is valid; else clean, synthesize, run ``after``, write the marker.

    Returns the durations (seconds) of the unit's files keyed by their path relative to ``root``.
    """
    digest = _unit_hash(jobs, root)
    durations = _read_marker(marker, digest, jobs, root)
    if durations is not None:
        logger.info("%s: already generated (%s), skipping", name, marker)
        return durations
    marker.unlink(missing_ok=True)
    clean()
    start = time.time()
    done = runner.run(jobs, desc=name)
    durations = {str(Path(p).relative_to(root)): round(d, 4) for p, d in done.items()}
    if after is not None:
        after()
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(json.dumps({"hash": digest, "durations": durations}, sort_keys=True))
    tmp.replace(marker)
    logger.info("%s: %d files in %.1f s", name, len(jobs), time.time() - start)
    return durations


def _synthesize(root: Path, splits: tuple[str, ...], en_layout: dict, de_layout: dict, runner: _Runner,
                name: str = "") -> dict[str, float]:
    """Synthesize ``splits`` of both layouts under the corpus ``root`` (one unit per task and split) and write
    their text files; returns the durations keyed by path relative to ``root``."""
    durations: dict[str, float] = {}
    for split in splits:
        part = {**LIBRISPEECH_PARTS, **GEN_LIBRISPEECH_PARTS}[split]
        part_dir = root / "LibriSpeech" / part
        jobs = [SynthJob(text=u.text, voice=u.speaker.voice, rate=u.rate, pitch=u.speaker.pitch, path=p,
                         sample_rate=LIBRI_RATE) for u, _, p in en_layout[split]]

        def clean(part_dir=part_dir):
            shutil.rmtree(part_dir, ignore_errors=True)

        def after(part_dir=part_dir, split=split):
            write_librispeech_transcripts(part_dir, [lu for _, lu, _ in en_layout[split]])

        durations.update(_run_unit(f"{name}en/{part}", part_dir / MARKER, jobs, root, runner, clean, after))
    for split in splits:
        jobs = [SynthJob(text=u.text, voice=u.speaker.voice, rate=u.rate, pitch=u.speaker.pitch, path=p,
                         sample_rate=CV_RATE) for u, _, p in de_layout[split]]
        marker = root / "cv" / "de" / f"{MARKER}_{split}"

        def clean(jobs=jobs):
            for job in jobs:
                job.path.unlink(missing_ok=True)
            clips_dir = root / "cv" / "de" / "clips"
            if clips_dir.is_dir():  # temporary files of an interrupted run
                for tmp in clips_dir.glob(".common_voice_de_*.tmp"):
                    tmp.unlink()

        durations.update(_run_unit(f"{name}de/{split}", marker, jobs, root, runner, clean))
    clips = [clip for split in splits for _, clip, _ in de_layout[split]]
    write_cv_validated(root / "cv" / "de" / "validated.tsv", clips)
    write_covost_tsv(root / "covost" / "covost_v2.de_en.tsv", clips)
    return durations


def generate_mini_synth(
    output_dir: Path,
    *,
    seed: int = 0,
    num_train: int = 3000,
    num_dev: int = 200,
    num_test: int = 200,
    num_test_unseen: int = 200,
    num_test_gen: int = 0,
    num_test_gen_unseen: int = 0,
    nj: int = 2,
) -> Path:
    """Write the mini_synth corpus under ``output_dir`` and return ``output_dir``.

    Args:
        output_dir: corpus root; receives ``LibriSpeech/``, ``cv/de/``, ``covost/`` and ``README.txt`` (and
            the generalisation corpus in ``gen/`` when it has utterances).
        seed: the same seed (and sizes) gives byte-identical transcripts and TSVs and the same voices.
        num_train, num_dev, num_test, num_test_unseen: utterances per split, for each of the two tasks.
        num_test_gen, num_test_gen_unseen: generalisation utterances (seen / unseen voices) per task; they
            change no file of the other splits.
        nj: synthesis worker processes.
    """
    sizes = {"train": num_train, "dev": num_dev, "test": num_test, "test_unseen": num_test_unseen,
             "test_gen": num_test_gen, "test_gen_unseen": num_test_gen_unseen}
    if any(not isinstance(n, int) or n < 0 for n in sizes.values()):
        raise ValueError(f"generate_mini_synth: split sizes must be integers >= 0, got {sizes}")
    if nj < 1:
        raise ValueError(f"generate_mini_synth: nj must be >= 1, got {nj}")
    check_espeak()
    root = Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    start = time.time()
    plan = plan_corpus(seed, sizes)
    en_layout = english_layout(plan, root)
    de_layout = german_layout(plan, root, seed)
    gen_root = root / GEN_DIR
    with ExitStack() as stack:
        runner = _Runner(nj, stack)
        durations = _synthesize(root, SPLITS, en_layout, de_layout, runner)
        write_summary(root / "README.txt", plan, en_layout, de_layout, durations, root,
                      {s: sizes[s] for s in SPLITS})
        if num_test_gen + num_test_gen_unseen > 0:
            gen_en = english_layout(plan, gen_root, GEN_SPLITS)
            gen_de = german_layout(plan, gen_root, seed, GEN_SPLITS)
            gen_durations = _synthesize(gen_root, GEN_SPLITS, gen_en, gen_de, runner, name=f"{GEN_DIR}/")
            write_gen_summary(gen_root / "README.txt", plan, gen_en, gen_de, gen_durations, gen_root)
    logger.info("mini_synth written to %s in %.1f s", root, time.time() - start)
    return root
