"""Batched decoding of cut sets to Kaldi-style hypothesis files (stage 5).

Output of :func:`decode_cuts` in ``out_dir`` (``exp/<tag>/decode_<inference_tag>/<set>/``)::

    text              <utt-id> <hypothesis>          (sorted by id)
    ref               <utt-id> <reference>           (the cut's target text, for scoring)
    utt_timing.txt    <utt-id> <audio seconds> <decode seconds of its batch / batch size>
    timing.json       {"num_utts", "audio_seconds", "decode_seconds", "total_seconds", "rtfx", ...}

With ``world_size > 1`` (torchrun), rank r decodes every r-th batch into ``out_dir/shards/``;
:func:`merge_shards` (rank 0, after a barrier) joins them, so N processes give the same files as one.
The model is any callable ``hyp_fn(batch) -> list[str]`` (ELF-S2T's or the AR baseline's generate).
``dataset`` (``dataset[cuts] -> batch``) turns a sampler batch of cuts into that batch (default: the cached-feature
:class:`~elfs2t.data.dataset.S2TDataset`; it must give ``cut_ids`` and ``duration``); its time is not
counted in ``decode_seconds``. :func:`annotate_timing` adds what the caller knows about the model
(type, decoding settings, parameters) to ``timing.json``, where the results table reads it.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Optional

from lhotse import CutSet
from lhotse.dataset import SimpleCutSampler
from tqdm import tqdm

from elfs2t import atomic
from elfs2t.data.dataset import S2TDataset, target_text
from elfs2t.textfile import read_text, write_text

log = logging.getLogger(__name__)

HypFn = Callable[[dict], list[str]]


def _shard_paths(out_dir: Path, rank: int) -> dict[str, Path]:
    shard = out_dir / "shards"
    return {k: shard / f"{k}.{rank}" for k in ("text", "ref", "utt_timing.txt")} | {"timing": shard / f"timing.{rank}.json"}


def decode_cuts(
    hyp_fn: HypFn,
    cuts: CutSet,
    out_dir: Path,
    *,
    max_duration: float = 200.0,
    max_cuts: Optional[int] = None,
    rank: int = 0,
    world_size: int = 1,
    text_transform: Optional[Callable[[str], str]] = None,
    show_progress: bool = True,
    dataset: Optional[Any] = None,
) -> dict:
    """Decode ``cuts`` (with cached features, or whatever ``dataset`` reads) batch by batch; returns the
    timing summary."""
    out_dir = Path(out_dir)
    paths = _shard_paths(out_dir, rank)
    paths["text"].parent.mkdir(parents=True, exist_ok=True)
    # Every rank walks all the batches and keeps its share below: world_size=1 / rank=0 stop Lhotse from splitting
    # them by the process group on its own as well (which left half of the utterances undecoded under torchrun).
    sampler = SimpleCutSampler(cuts.sort_by_duration(ascending=False), max_duration=max_duration, max_cuts=max_cuts,
                               shuffle=False, world_size=1, rank=0)
    dataset = dataset if dataset is not None else S2TDataset(text_transform=text_transform)
    hyps: dict[str, str] = {}
    refs: dict[str, str] = {}
    timing_lines: list[str] = []
    audio_s = decode_s = 0.0
    start = time.perf_counter()
    bar = tqdm(desc=f"decode[{rank}]", unit="utt", disable=not show_progress or rank != 0)
    for b, batch_cuts in enumerate(sampler):
        if b % world_size != rank:
            continue
        batch = dataset[batch_cuts]
        t0 = time.perf_counter()
        out = hyp_fn(batch)
        dt = time.perf_counter() - t0
        if len(out) != len(batch["cut_ids"]):
            raise RuntimeError(f"model returned {len(out)} hypotheses for {len(batch['cut_ids'])} utterances")
        for cid, hyp, dur in zip(batch["cut_ids"], out, batch["duration"].tolist()):
            hyps[cid] = hyp
            timing_lines.append(f"{cid} {dur:.3f} {dt / len(out):.4f}")
        for cut in batch_cuts:
            ref = target_text(cut)
            refs[cut.id] = text_transform(ref) if text_transform else ref
        audio_s += float(batch["duration"].sum())
        decode_s += dt
        bar.update(len(out))
        bar.set_postfix(rtfx=f"{audio_s / max(decode_s, 1e-9):.1f}")
    bar.close()
    total_s = time.perf_counter() - start
    write_text(paths["text"], hyps)
    write_text(paths["ref"], refs)
    paths["utt_timing.txt"].write_text("".join(line + "\n" for line in sorted(timing_lines)))
    summary = {
        "num_utts": len(hyps),
        "audio_seconds": audio_s,
        "decode_seconds": decode_s,
        "total_seconds": total_s,
        "rtfx": audio_s / max(decode_s, 1e-9),
        "world_size": world_size,
    }
    paths["timing"].write_text(json.dumps(summary, indent=1))
    if world_size == 1:
        return merge_shards(out_dir, 1)
    return summary


def merge_shards(out_dir: Path, world_size: int) -> dict:
    """Join the per-rank shard files into ``text``, ``ref``, ``utt_timing.txt`` and ``timing.json``."""
    out_dir = Path(out_dir)
    hyps: dict[str, str] = {}
    refs: dict[str, str] = {}
    timing_lines: list[str] = []
    summaries = []
    for rank in range(world_size):
        paths = _shard_paths(out_dir, rank)
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"decoding shard {rank} is incomplete, missing: {missing}")
        hyps.update(read_text(paths["text"]))
        refs.update(read_text(paths["ref"]))
        timing_lines += [line for line in paths["utt_timing.txt"].read_text().splitlines() if line]
        summaries.append(json.loads(paths["timing"].read_text()))
    write_text(out_dir / "text", hyps)
    write_text(out_dir / "ref", refs)
    (out_dir / "utt_timing.txt").write_text("".join(line + "\n" for line in sorted(timing_lines)))
    audio_s = sum(s["audio_seconds"] for s in summaries)
    # Processes run side by side: wall time is the slowest one, throughput the sum.
    decode_s = max(s["decode_seconds"] for s in summaries)
    summary = {
        "num_utts": len(hyps),
        "audio_seconds": audio_s,
        "decode_seconds": decode_s,
        "total_seconds": max(s["total_seconds"] for s in summaries),
        "rtfx": audio_s / max(decode_s, 1e-9),
        "world_size": world_size,
    }
    atomic.write_text(out_dir / "timing.json", json.dumps(summary, indent=1))
    return summary


def annotate_timing(out_dir: Path, info: dict) -> dict:
    """Merge ``info`` (JSON-serialisable) into ``out_dir/timing.json`` (atomically); returns the result."""
    path = Path(out_dir) / "timing.json"
    timing = json.loads(path.read_text()) if path.is_file() else {}
    timing.update(info)
    atomic.write_text(path, json.dumps(timing, indent=1))
    return timing
