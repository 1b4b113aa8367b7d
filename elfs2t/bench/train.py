"""Training benchmark: samples/s and tokens/s of ELF-S2T and the AR baseline (random init), the share of time
spent waiting for data, and scaling from 1 to N processes (gloo on CPU, NCCL on GPUs; ``mp.spawn``).

One step is what the trainer does: ``loss, stats = model(batch)``, backward, clip 1.0, optimiser step
(Muon by default with the vocabulary-sized matrices on Adam,
:func:`elfs2t.optim.build.build_optimizer`), under bf16 autocast with ``dtype bf16``.
``warmup`` untimed steps come first. Data come from the real pipeline (:func:`elfs2t.train.data.build_dataloader`
over stage-2 cuts, ``num_workers`` workers) or from synthetic in-memory batches (no loading cost).

* ``samples/s``: training utterances per second, summed over processes;
* ``tokens/s``: loss positions per second (ELF-S2T: the ``L`` text slots of every row, EOS tail included;
  AR: target tokens + EOS);
* ``data wait``: time blocked in ``next(loader)`` / step time (the slowest process);
* ``text enc`` (ELF-S2T): time in the frozen text encoder (``text_space.encode``) / step time;
* ``scaling``: samples/s with N processes / (N x samples/s with 1).
* ``elf_s2t`` runs the frozen text encoder on every batch; ``elf_s2t +latent cache`` (what ``ElfS2T`` does by
  default, ``elf.cache_latents``) has :class:`elfs2t.text.latent.LatentCache` in front of the
  frozen text encoder, i.e. the targets' latents are not recomputed once seen (with ``max_cuts`` small
  enough that the timed steps revisit the warm-up's cuts, the steady state of epoch 2 onwards).
"""
from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

import torch

from elfs2t.bench import flops as F
from elfs2t.bench.common import Utterance, collate, format_table
from elfs2t.config import config_check

log = logging.getLogger(__name__)

__all__ = ["TrainBenchConfig", "run_train_bench", "train_worker"]


@dataclass(kw_only=True)
class TrainBenchConfig:
    """What to train, for how long, on how many processes."""

    models: list[str] = field(default_factory=lambda: ["elf_s2t", "ar"])
    """Models to measure: elf_s2t and/or ar."""
    size: str = "mini"
    """Model size (elfs2t.bench.models.SIZES)."""
    prefix_attention: str = "full"
    """ELF-S2T denoiser prefix_attention (training cost is the same mask either way)."""
    latent_cache: bool = True
    """Also measure ELF-S2T with the frozen text latents cached (LatentCache)."""
    batch_size: int = 16
    """Utterances per batch per process."""
    steps: int = 8
    """Timed steps."""
    warmup: int = 2
    """Untimed steps before."""
    processes: list[int] = field(default_factory=lambda: [1, 2])
    """Process counts to measure (> 1: DDP through mp.spawn)."""
    threads: int = 1
    """Torch threads per process."""
    num_workers: int = 0
    """DataLoader workers per process (real data only)."""
    optim: str = "muon"
    """Optimiser name (elfs2t.optim.build.OptimConfig.name)."""
    adam_patterns: list[str] = field(default_factory=lambda: ["unembed_kernel", "embed_tokens", "lm_head"])
    """Vocabulary-sized matrices kept on Adam under Muon (as the mini_synth recipe does: Newton-Schulz on a
    d x V matrix would dominate the step)."""
    stack: int = 2
    """Frame stacking."""
    text_len: int = 24
    """L of the ELF-S2T latent space."""
    device: str = "cpu"
    """cpu or cuda (process r uses cuda:r)."""
    dtype: str = "fp32"
    """fp32, or bf16 autocast."""
    peak_tflops: float = 0.0
    """Peak TFLOP/s for MFU (0: the table for known GPUs)."""
    max_cuts: int = 0
    """Train on the first N cuts only (0: all); the loader cycles over them epoch after epoch."""
    seed: int = 0

    def validate(self) -> None:
        config_check(set(self.models) <= {"elf_s2t", "ar"} and bool(self.models), "models", self.models,
                     "must be elf_s2t and/or ar")
        for key in ("batch_size", "steps", "threads"):
            config_check(getattr(self, key) >= 1, key, getattr(self, key), "must be >= 1")
        config_check(self.warmup >= 0, "warmup", self.warmup, "must be >= 0")
        config_check(all(p >= 1 for p in self.processes) and bool(self.processes), "processes", self.processes,
                     "must be >= 1")
        config_check(self.dtype in ("fp32", "bf16"), "dtype", self.dtype, "must be fp32 or bf16")


def _batches(cfg: TrainBenchConfig, utts: Optional[list[Utterance]], cuts: Optional[str], rank: int, world: int):
    """Endless iterator of training batches for this rank."""
    if cuts:
        from elfs2t.data.dataset import S2TDataset
        from elfs2t.features.storage import open_cuts  # stage 2's feature paths are relative to the manifest
        from elfs2t.train.data import build_dataloader

        cutset = open_cuts(cuts).to_eager()
        if cfg.max_cuts:
            cutset = cutset.subset(first=min(cfg.max_cuts, len(cutset)))
        loader = build_dataloader(cutset, S2TDataset(), max_cuts=cfg.batch_size, max_duration=1e9,
                                  num_buckets=2, seed=cfg.seed, rank=rank, world_size=world,
                                  num_workers=cfg.num_workers, pin_memory=cfg.device.startswith("cuda"))
        epoch = 0
        while True:
            loader.sampler.set_epoch(epoch)
            yield from loader
            epoch += 1
    shard = utts[rank::world]
    i = 0
    while True:
        rows = [shard[(i + j) % len(shard)] for j in range(cfg.batch_size)]
        i += cfg.batch_size
        yield collate(rows)


def _model(name: str, cfg: TrainBenchConfig, feat_dim: int, cached: bool):
    from elfs2t.bench.models import default_text_model, random_ar, random_elf_s2t

    if name == "ar":
        return random_ar(cfg.size, feat_dim=feat_dim, stack=cfg.stack, seed=cfg.seed)
    from elfs2t.text.latent import LatentCache, TextLatentConfig, TextLatentSpace

    space = TextLatentSpace(TextLatentConfig(name_or_path=default_text_model(), max_len=cfg.text_len))
    return random_elf_s2t(cfg.size, prefix_attention=cfg.prefix_attention, feat_dim=feat_dim, stack=cfg.stack,
                          text_len=cfg.text_len, text_space=LatentCache(space) if cached else space, seed=cfg.seed)


def _step_flops(name: str, model, batch: dict, stats: dict) -> float:
    stack = model.cfg.stack
    n_audio = -(-int(batch["feat_lens"].max()) // stack) + (1 if model.cfg.tasks else 0)
    b = len(batch["text"])
    if name == "ar":
        text = max(len(t) for t in model.tokenize(batch["text"]))
        return F.ar_train_flops(model.lm.config, b, n_audio + 1, text)
    return F.elf_train_flops(model.denoiser.cfg, b, model.text_space.max_len, n_audio, stats.get("frac_self_cond", 0.0),
                             stats.get("frac_decode", 0.0))


def train_worker(rank: int, world: int, name: str, cached: bool, cfg: TrainBenchConfig, utts, cuts, feat_dim: int,
                 port: int, queue=None) -> dict:
    """Train ``cfg.warmup + cfg.steps`` steps on this rank; returns (and puts on ``queue``) its timings."""
    from elfs2t.optim.build import OptimConfig, build_optimizer
    from elfs2t.train.distributed import cleanup, init_distributed, wrap_ddp

    torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device if not cfg.device.startswith("cuda") else f"cuda:{rank}")
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                          LOCAL_RANK=str(rank))
        info = init_distributed(backend="nccl" if device.type == "cuda" else "gloo")
    else:
        from elfs2t.train.distributed import DistInfo

        info = DistInfo(device=device)
    torch.manual_seed(cfg.seed)
    model = _model(name, cfg, feat_dim, cached).to(device).train()
    text_seconds = [0.0]
    space = getattr(model, "text_space", None)
    if space is not None:  # time the frozen text encoder (or its cache) inside the ELF-S2T step
        encode = space.encode

        def timed_encode(ids, encode=encode):
            t0 = time.perf_counter()
            out = encode(ids)
            text_seconds[0] += time.perf_counter() - t0
            return out

        space.encode = timed_encode
    ddp = wrap_ddp(model, info)
    opt = build_optimizer(model, OptimConfig(name=cfg.optim, warmup_steps=1, adam_patterns=cfg.adam_patterns), cfg.batch_size * world)
    data = _batches(cfg, utts, cuts, rank, world)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.dtype == "bf16")
    totals = dict(seconds=0.0, data_seconds=0.0, text_seconds=0.0, samples=0, tokens=0.0, audio=0.0, flops=0.0)
    for step in range(cfg.warmup + cfg.steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        batch = next(data)
        t_data = time.perf_counter() - t0
        text_before = text_seconds[0]
        with autocast:
            loss, stats = ddp(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step >= cfg.warmup:
            b = len(batch["text"])
            totals["seconds"] += time.perf_counter() - t0
            totals["data_seconds"] += t_data
            totals["text_seconds"] += text_seconds[0] - text_before
            totals["samples"] += b
            totals["tokens"] += stats.get("num_tokens", b * getattr(getattr(model, "text_space", None), "max_len", 0))
            totals["audio"] += float(batch["duration"].sum())
            totals["flops"] += _step_flops(name, model, batch, stats)
    totals["rank"] = rank
    if cached:
        totals["cache_hit_rate"] = model.text_space.hits / max(1, model.text_space.hits + model.text_space.misses)
    if world > 1:
        cleanup()
    if queue is not None:
        queue.put(totals)
    return totals


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(name: str, cached: bool, world: int, cfg: TrainBenchConfig, utts, cuts, feat_dim: int) -> list[dict]:
    if world == 1:
        return [train_worker(0, 1, name, cached, cfg, utts, cuts, feat_dim, 0)]
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.spawn(train_worker, args=(world, name, cached, cfg, utts, cuts, feat_dim, _free_port(), queue), nprocs=world,
             join=True)
    return [queue.get() for _ in range(world)]


def run_train_bench(cfg: TrainBenchConfig, utts: Optional[list[Utterance]] = None, cuts: Optional[str] = None,
                    feat_dim: int = 384) -> dict:
    """Measure every model x process count; returns ``{"rows", "table"}``."""
    cfg.validate()
    if (utts is None) == (cuts is None):
        raise ValueError("run_train_bench: give either synthetic utterances or a cuts manifest")
    peak = F.peak_flops(cfg.device, cfg.dtype, cfg.peak_tflops)
    runs = [(m, False) for m in cfg.models] + ([("elf_s2t", True)] if cfg.latent_cache and "elf_s2t" in cfg.models else [])
    rows, single = [], {}
    for name, cached in runs:
        for world in cfg.processes:
            parts = _run(name, cached, world, cfg, utts, cuts, feat_dim)
            seconds = max(p["seconds"] for p in parts)
            samples = sum(p["samples"] for p in parts)
            label = name + (" +latent cache" if cached else "")
            row = {"model": label, "procs": world, "samples_s": samples / seconds,
                   "tokens_s": sum(p["tokens"] for p in parts) / seconds,
                   "audio_x": sum(p["audio"] for p in parts) / seconds,
                   "data_wait": 100 * max(p["data_seconds"] / p["seconds"] for p in parts),
                   "text_enc": 100 * max(p["text_seconds"] / p["seconds"] for p in parts) if name == "elf_s2t" else None,
                   "tflop_s": sum(p["flops"] for p in parts) / seconds / 1e12,
                   "cache_hits": 100 * parts[0]["cache_hit_rate"] if "cache_hit_rate" in parts[0] else None}
            if peak:
                row["mfu"] = 100 * row["tflop_s"] * 1e12 / (peak * world)
            if world == 1:
                single[label] = row["samples_s"]
            if label in single:
                row["scaling"] = row["samples_s"] / (world * single[label])
            rows.append(row)
            log.info("train %s x%d: %.1f samples/s", label, world, row["samples_s"])
    cols = [("model", "model", ""), ("procs", "procs", ""), ("samples_s", "samples/s", ".1f"),
            ("tokens_s", "tokens/s", ".0f"), ("audio_x", "audio s/s", ".1f"), ("data_wait", "data wait %", ".1f"),
            ("text_enc", "text enc %", ".1f"),
            ("scaling", "scaling", ".2f"), ("tflop_s", "TFLOP/s", ".3f"), ("mfu", "MFU %", ".1f"),
            ("cache_hits", "latent hits %", ".0f")]
    return {"rows": rows, "table": format_table(rows, cols), "config": asdict(cfg)}
