"""Stage 2: cache frozen Whisper encoder outputs (fp16, valid frames only) for every cut of a set.

Output folder ``dump/<encoder_tag>/<set>/``::

    cuts.jsonl.gz        the input cuts (minus unreadable ones) carrying lhotse ``Features``
                         (storage ``elfs2t_kaldiio``: ark file + byte offset; ``load_features() -> (T, D)``)
    feats.scp            kaldiio index of all frames (``kaldiio.load_scp``)
    feats.<k>.ark/.scp   one archive per shard k
    failed.txt           ``<cut_id>\t<error>`` for every cut whose audio could not be read or encoded
    encoder.json         the encoder that made them (elfs2t.features.record: tag, mode, dtype, weights fingerprint)
    stats.json, plan.json, .done

The cuts reference their archives by paths relative to the folder (``feats.0.ark``): open them with
:func:`elfs2t.features.storage.open_cuts` (training and decoding do), from any working directory.

Work is cut into shards of ``shard_size`` cuts (in manifest order); ``nj`` CPU processes or ``ngpu``
GPU processes take the pending shards round-robin. A shard is published (ark, scp, cuts, ``.done``)
only when complete, through temporary names; a re-run skips finished shards and redoes the others,
so an interrupted run resumes and never references a truncated archive. The merge writes
``cuts.jsonl.gz`` and ``.done`` last. A folder holding finished shards made from other cuts or another
encoder/mode/dtype is refused unless ``force`` (which starts it over); a folder where nothing was finished
(a start that failed, e.g. ``--ngpu 1`` on a CPU machine) is simply started over with the new settings.
``stats.json`` describes the whole set, over every run that encoded a part of it (a resumed run included):
its audio seconds and the encoding seconds they took (``x-real-time`` = their ratio). Worker processes
exit when their parent dies (a killed ``--nj 2`` run leaves no worker behind).
"""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Literal, Optional

import numpy as np
import torch
from lhotse import CutSet, Features
from lhotse.cut import Cut
from tqdm import tqdm

from elfs2t.atomic import write_manifest, write_text
from elfs2t.config import ConfigError, config_check, unstructure
from elfs2t.errors import InputError
from elfs2t.features.record import RECORD_FILE, EncoderRecord, read_record, write_record
from elfs2t.features.storage import STORAGE_TYPE, KaldiioArkWriter
from elfs2t.features.whisper import SAMPLE_RATE, WhisperFrontEnd
from elfs2t.orphans import exit_with_parent

log = logging.getLogger(__name__)


class CacheError(InputError):
    """The output folder cannot be used (other input or config) or workers failed."""


@dataclass(kw_only=True)
class CacheConfig:
    """Stage 2: which encoder, how to run it, how to split the work."""

    encoder: str = "openai/whisper-large-v3"
    """Whisper hub id or local Whisper directory (e.g. ``tools/models/whisper-tiny.en``)."""
    mode: Literal["trim", "pad30"] = "trim"
    """``trim``: encode only the needed frames (fast); ``pad30``: pad to 30 s as Whisper was trained."""
    name: Optional[str] = None
    """Model name in the encoder tag ``<name>_<mode>`` (default: from the model id/path, ``whisper-tiny.en``)."""
    batch_size: int = 8
    """Utterances per encoder forward."""
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    """Compute dtype: ``auto`` = float16 on GPU, float32 on CPU. Features are stored as float16."""
    device: str = "cpu"
    """``cpu`` or ``cuda[:N]`` for a single process; ``ngpu > 0`` uses cuda:0..ngpu-1."""
    nj: int = 1
    """CPU worker processes (ignored when ``ngpu > 0``)."""
    ngpu: int = 0
    """GPU worker processes, one per GPU."""
    shard_size: int = 500
    """Cuts per shard: the unit of work distribution and of resume."""
    num_threads: int = 0
    """Torch threads per CPU worker (0: CPU count / nj)."""

    def validate(self) -> None:
        config_check(self.batch_size > 0, "batch_size", self.batch_size, "must be positive")
        config_check(self.nj > 0, "nj", self.nj, "must be positive")
        config_check(self.ngpu >= 0, "ngpu", self.ngpu, "must be >= 0")
        config_check(self.shard_size > 0, "shard_size", self.shard_size, "must be positive")
        config_check(self.device == "cpu" or self.device.startswith("cuda"), "device", self.device,
                     "must be 'cpu' or 'cuda[:N]'")

    def resolved_dtype(self, device: str) -> str:
        if self.dtype != "auto":
            return self.dtype
        return "float16" if device.startswith("cuda") else "float32"


@dataclass(kw_only=True)
class CacheReport:
    """What a stage-2 run did (``stats.json``)."""

    out_dir: str
    tag: str
    num_cuts: int
    num_failed: int
    audio_seconds: float
    """Audio seconds of the set's cached cuts, encoded by this run and the earlier runs it resumed (0 when this
    run found the set finished)."""
    wall_seconds: float
    """Encoding seconds those took (encoder loading and the merge excluded): per shard, its seconds in its worker
    divided by the run's number of parallel workers, summed over the shards."""
    num_encoded: int = 0
    """Utterances processed by this run (cached or failed); less than the set when resuming."""
    skipped: bool = False

    @property
    def rtfx(self) -> float:
        """x-real-time: audio seconds per wall second."""
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def summary(self) -> str:
        if self.skipped:
            return f"{self.out_dir}: already cached ({self.num_cuts} cuts, {self.num_failed} failed)"
        utts = self.num_encoded
        if utts == 0:
            return f"{self.out_dir}: {self.num_cuts} cuts cached, {self.num_failed} failed (nothing left to encode)"
        return (f"{self.out_dir}: {self.num_cuts} cuts cached, {self.num_failed} failed ({utts} encoded by this "
                f"run); {self.audio_seconds:.1f} s of audio in {self.wall_seconds:.1f} s of encoding: "
                f"{(self.num_cuts + self.num_failed) / max(self.wall_seconds, 1e-9):.2f} utt/s, "
                f"x-real-time {self.rtfx:.1f} ({self.tag})")


# ---------------------------------------------------------------------------------------------
# One shard
# ---------------------------------------------------------------------------------------------
def load_cut_audio(cut: Cut) -> np.ndarray:
    """Mono 16 kHz float32 samples of a cut: resampled by Lhotse, channels averaged (stage 2's input, and
    ``elfs2t.load``'s: the same samples give the same features)."""
    if cut.sampling_rate != SAMPLE_RATE:
        cut = cut.resample(SAMPLE_RATE)
    audio = cut.load_audio()  # (C, N)
    audio = audio.mean(axis=0) if audio.ndim == 2 else audio.reshape(-1)
    if audio.size == 0 or not np.isfinite(audio).all():
        raise ValueError("empty or non-finite audio")
    return audio.astype(np.float32)


def _features(cut: Cut, shape: tuple[int, int], ark: str, key: str, spec: WhisperFrontEnd) -> Features:
    """Lhotse features of one cut: ``shape`` = (T, D) frames stored at ``ark``:``key`` (``ark`` relative to the
    folder of the manifests, :func:`elfs2t.features.storage.open_cuts`)."""
    return Features(
        type=spec.tag, num_frames=shape[0], num_features=shape[1], frame_shift=spec.frame_shift,
        sampling_rate=SAMPLE_RATE, start=cut.start, duration=cut.duration, storage_type=STORAGE_TYPE,
        storage_path=ark, storage_key=key, recording_id=cut.recording_id if cut.has_recording else None,
        channels=cut.channel if hasattr(cut, "channel") else 0,
    )


def encode_shard(cuts: list[Cut], out_dir: Path, k: int, encoder, batch_size: int,
                 progress: Callable[[int, float], None] = lambda n, s: None,
                 workers: int = 1) -> tuple[int, int, float]:
    """Encode the cuts of shard ``k`` and publish ``feats.<k>.ark/scp``, ``cuts.<k>.jsonl.gz``,
    ``failed.<k>.txt`` and ``shards/<k>.done`` (``<cached> <failed> <audio s> <encoding s> <workers>``, ``workers``
    the run's parallel workers). Returns (cached, failed, audio seconds)."""
    start = time.perf_counter()
    spec = encoder.spec
    writer = KaldiioArkWriter(out_dir / f"feats.{k}.ark")
    keys: dict[str, str] = {}
    shapes: dict[str, tuple[int, int]] = {}
    failed: list[str] = []
    audio_sec = 0.0
    order = sorted(range(len(cuts)), key=lambda i: -cuts[i].duration)  # similar lengths per batch
    batches = [[cuts[i] for i in order[s : s + batch_size]] for s in range(0, len(order), batch_size)]

    def load(batch: list[Cut]) -> list:
        out = []
        for cut in batch:
            try:
                out.append(load_cut_audio(cut))
            except Exception as exc:  # reported and excluded, not fatal
                out.append(exc)
        return out

    try:
        with ThreadPoolExecutor(1) as pool:  # read the next batch while this one is encoded
            nxt = pool.submit(load, batches[0]) if batches else None
            for b, batch in enumerate(batches):
                audios = nxt.result()
                nxt = pool.submit(load, batches[b + 1]) if b + 1 < len(batches) else None
                good = []
                for cut, a in zip(batch, audios):
                    if isinstance(a, Exception):
                        msg = f"{type(a).__name__}: {(str(a).splitlines() or [''])[0]}"
                        log.warning("cut %s excluded, cannot read its audio: %s", cut.id, msg)
                        failed.append(f"{cut.id}\t{msg}")
                    else:
                        good.append((cut, a))
                if good:
                    feats = encoder([a for _, a in good])
                    for (cut, a), f in zip(good, feats):
                        arr = f.float().cpu().numpy().astype(np.float16)  # (T, D)
                        keys[cut.id] = writer.write(cut.id, arr)
                        shapes[cut.id] = arr.shape
                        audio_sec += len(a) / SAMPLE_RATE
                progress(len(batch), sum(c.duration for c in batch))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    out_cuts = []
    for cut in cuts:
        if cut.id in keys:
            feats = _features(cut, shapes[cut.id], writer.ark.name, keys[cut.id], spec)
            out_cuts.append(replace(cut, features=feats))
    write_manifest(CutSet.from_cuts(out_cuts), out_dir / f"cuts.{k}.jsonl.gz")
    write_text(out_dir / f"failed.{k}.txt", "".join(f + "\n" for f in failed))
    seconds = time.perf_counter() - start
    write_text(out_dir / "shards" / f"{k}.done",
                 f"{len(out_cuts)} {len(failed)} {audio_sec:.3f} {seconds:.3f} {workers}\n")
    return len(out_cuts), len(failed), audio_sec


# ---------------------------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------------------------
def _worker(spec: WhisperFrontEnd, cfg: CacheConfig, device: str, shards: list[tuple[int, list[Cut]]],
            out_dir: Path, workers: int, queue=None) -> None:
    """Encode the given shards on one device; report progress through ``queue`` (or nothing)."""
    if device == "cpu":
        threads = cfg.num_threads or max(1, (os.cpu_count() or 1) // (1 if cfg.ngpu else cfg.nj))
        torch.set_num_threads(threads)
    encoder = spec.build(device=device, dtype=cfg.resolved_dtype(device))
    if queue is not None:
        queue.put(("ready", device, unstructure(EncoderRecord.from_encoder(encoder))))
    report = (lambda n, s: queue.put(("progress", n, s))) if queue is not None else (lambda n, s: None)
    for k, cuts in shards:
        encode_shard(cuts, out_dir, k, encoder, cfg.batch_size, report, workers=workers)
    if queue is not None:
        queue.put(("done", device, 0))


def _worker_main(parent: int, *args) -> None:  # runs in a spawned process
    exit_with_parent(parent)
    queue = args[-1]
    try:
        _worker(*args)
    except BaseException as exc:
        queue.put(("error", f"{type(exc).__name__}: {exc}", 0))
        raise


def _run_workers(spec, cfg, pending, out_dir: Path, bar: tqdm) -> float:
    """Encode the pending shards; returns the time at which the first encoder was loaded. The first encoder
    loaded writes its record (``encoder.json``, :mod:`elfs2t.features.record`)."""
    devices = [f"cuda:{i}" for i in range(cfg.ngpu)] if cfg.ngpu > 0 else ["cpu"] * cfg.nj
    devices = devices[: max(1, len(pending))]
    if len(devices) == 1:
        device = cfg.device if cfg.ngpu == 0 else devices[0]
        encoder = spec.build(device=device, dtype=cfg.resolved_dtype(device))
        write_record(EncoderRecord.from_encoder(encoder), out_dir / RECORD_FILE)
        if device == "cpu" and cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        bar.start_t = ready = time.time()
        for k, cuts in pending:
            encode_shard(cuts, out_dir, k, encoder, cfg.batch_size, lambda n, s: _tick(bar, n, s))
        return ready
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker_main, args=(os.getpid(), spec, cfg, dev, pending[i :: len(devices)], out_dir,
                                                    len(devices), queue))
             for i, dev in enumerate(devices)]
    running, errors, ready = len(procs), [], None
    try:
        for p in procs:
            p.start()
        while running:
            try:
                kind, a, b = queue.get(timeout=5)
            except Exception:  # queue.Empty: check that the workers are alive
                if all(not p.is_alive() for p in procs):
                    break
                continue
            if kind == "progress":
                _tick(bar, a, b)
            elif kind == "ready":
                if ready is None:
                    bar.start_t = ready = time.time()
                    write_record(EncoderRecord.from_dict(b), out_dir / RECORD_FILE)
            elif kind == "done":
                running -= 1
            else:
                errors.append(a)
                running -= 1
    finally:  # also on Ctrl-C or an error here: no worker outlives the run
        for p in procs:
            if p.is_alive() and running:
                p.terminate()
    for p in procs:
        p.join()
    if errors or any(p.exitcode != 0 for p in procs):
        raise CacheError(f"{out_dir}: worker(s) failed: {errors or [p.exitcode for p in procs]}; "
                         "re-run to resume (finished shards are kept)")
    return ready if ready is not None else time.time()


def _tick(bar: tqdm, n: int, seconds: float) -> None:
    bar.update(n)
    bar.audio = getattr(bar, "audio", 0.0) + seconds
    elapsed = max(time.time() - bar.start_t, 1e-9)
    bar.set_postfix_str(f"x-real-time {bar.audio / elapsed:.1f}", refresh=False)


# ---------------------------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------------------------
def _fingerprint(cuts: CutSet, spec: WhisperFrontEnd, cfg: CacheConfig, dtype: str) -> str:
    h = hashlib.sha256(json.dumps([unstructure(spec), dtype, cfg.shard_size]).encode())
    for cut in cuts:
        h.update(f"{cut.id} {cut.duration:.4f}\n".encode())
    return h.hexdigest()[:16]


def cache_features(cuts: CutSet | str | Path, out_dir: str | Path, cfg: CacheConfig,
                   spec: Optional[WhisperFrontEnd] = None, force: bool = False) -> CacheReport:
    """Cache encoder outputs of every cut into ``out_dir`` (see the module docstring); resumable."""
    out_dir = Path(out_dir)
    cfg.validate()
    if not isinstance(cuts, CutSet):
        if not Path(cuts).is_file():
            raise FileNotFoundError(f"cuts manifest not found: {cuts}")
        cuts = CutSet.from_file(cuts)
    cuts = cuts.to_eager()
    ids = [c.id for c in cuts]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{out_dir}: the input cuts have duplicate ids")
    spec = spec or WhisperFrontEnd.from_pretrained(cfg.encoder, cfg.mode, name=cfg.name)
    device0 = "cuda:0" if cfg.ngpu > 0 else cfg.device
    fp = _fingerprint(cuts, spec, cfg, cfg.resolved_dtype(device0))

    done, plan = out_dir / ".done", out_dir / "plan.json"
    if force and out_dir.exists():
        log.info("%s: --force, starting over", out_dir)
        shutil.rmtree(out_dir)
    if plan.is_file():
        old = json.loads(plan.read_text())
        if old.get("fingerprint") != fp:
            finished = sorted((out_dir / "shards").glob("*.done")) if (out_dir / "shards").is_dir() else []
            if finished or done.is_file():
                raise CacheError(
                    f"{out_dir} holds {len(finished)} finished shard(s) made from other cuts or another "
                    f"encoder/mode/dtype (then: {old.get('tag')}, {old.get('num_cuts')} cuts, dtype "
                    f"{old.get('dtype', '?')}; now: {spec.tag}, {len(ids)} cuts, dtype {cfg.resolved_dtype(device0)})"
                    "; use --force to redo it, or remove the folder")
            log.warning("%s: made for other settings (%s, %s cuts), but nothing was finished there: starting over",
                        out_dir, old.get("tag"), old.get("num_cuts"))
            shutil.rmtree(out_dir)
    if done.is_file() and (out_dir / "cuts.jsonl.gz").is_file():
        stats = json.loads((out_dir / "stats.json").read_text())
        return CacheReport(out_dir=str(out_dir), tag=spec.tag, num_cuts=stats["num_cuts"],
                           num_failed=stats["num_failed"], audio_seconds=0.0, wall_seconds=0.0, skipped=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(plan, json.dumps({"fingerprint": fp, "tag": spec.tag, "front_end": unstructure(spec),
                                   "num_cuts": len(ids), "shard_size": cfg.shard_size,
                                   "dtype": cfg.resolved_dtype(device0)}, indent=1))

    all_cuts = list(cuts)
    shards = [(k, all_cuts[s : s + cfg.shard_size]) for k, s in enumerate(range(0, len(all_cuts), cfg.shard_size))]
    pending = [(k, c) for k, c in shards if not (out_dir / "shards" / f"{k}.done").is_file()]
    if len(pending) < len(shards):
        log.info("%s: resuming, %d of %d shards already done", out_dir, len(shards) - len(pending), len(shards))
    with tqdm(total=sum(len(c) for _, c in pending), desc=f"encode {out_dir.name}", unit="utt",
              dynamic_ncols=True) as bar:
        if pending:
            _run_workers(spec, cfg, pending, out_dir, bar)
    if read_record(out_dir / RECORD_FILE) is None:  # a folder begun before records existed: describe it now
        device = "cuda:0" if cfg.ngpu > 0 else cfg.device
        write_record(EncoderRecord.from_encoder(spec.build(device=device, dtype=cfg.resolved_dtype(device))),
                     out_dir / RECORD_FILE)
    return _merge(out_dir, len(shards), spec, fp, sum(len(c) for _, c in pending))


def _shard_time(done_file: Path) -> tuple[float, float]:
    """``(audio seconds, encoding seconds / workers)`` of one finished shard (``shards/<k>.done``; a shard of an
    older version, without its seconds, counts its audio only)."""
    fields = done_file.read_text().split()
    audio = float(fields[2])
    seconds = float(fields[3]) / max(1, int(fields[4])) if len(fields) >= 5 else 0.0
    return audio, seconds


def _merge(out_dir: Path, n_shards: int, spec: WhisperFrontEnd, fp: str, encoded: int) -> CacheReport:
    """Join the shards into cuts.jsonl.gz, feats.scp, failed.txt; then stats.json (the whole set's audio and
    encoding seconds, over every run that encoded a shard) and .done."""
    merged, failed, scp = [], [], []
    audio = wall = 0.0
    for k in range(n_shards):
        done_file = out_dir / "shards" / f"{k}.done"
        if not done_file.is_file():
            raise CacheError(f"{out_dir}: shard {k} is not finished; re-run to resume")
        shard_audio, shard_wall = _shard_time(done_file)
        audio, wall = audio + shard_audio, wall + shard_wall
        merged.extend(CutSet.from_file(out_dir / f"cuts.{k}.jsonl.gz") or [])  # None when empty
        failed.extend(l for l in (out_dir / f"failed.{k}.txt").read_text().splitlines() if l)
        scp.append((out_dir / f"feats.{k}.scp").read_text())
    write_text(out_dir / "feats.scp", "".join(scp))
    write_text(out_dir / "failed.txt", "".join(f + "\n" for f in failed))
    if failed:
        log.warning("%s: %d cut(s) excluded (audio unreadable), listed in %s", out_dir, len(failed),
                    out_dir / "failed.txt")
    write_manifest(CutSet.from_cuts(merged), out_dir / "cuts.jsonl.gz")
    report = CacheReport(out_dir=str(out_dir), tag=spec.tag, num_cuts=len(merged), num_failed=len(failed),
                         audio_seconds=audio, wall_seconds=wall, num_encoded=encoded)
    write_text(out_dir / "stats.json", json.dumps({**unstructure(report), "rtfx": report.rtfx}, indent=1))
    write_text(out_dir / ".done", fp + "\n")
    return report
