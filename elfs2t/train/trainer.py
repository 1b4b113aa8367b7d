"""The generic training loop: ``model(batch) -> (loss, stats)``, nothing else is known about the model
(except an optional ``model.begin_step(step, progress)``, called before every optimiser step with the run's
progress in [0, 1], for models whose objective follows a curriculum).

One :class:`Trainer` runs the same code in one CPU process and under torchrun on many GPUs or CPU
processes (the process group must be initialised by the caller, see :mod:`elfs2t.train.distributed`).
Per optimiser step: ``grad_accum`` batches (DDP gradient sync on the last only) under bf16 autocast on
CUDA; the loss is averaged over processes; gradient clipping; optimiser and warm-up schedule; EMA update.
At intervals: log (text ``train.log``, TensorBoard ``tensorboard/``, tqdm bar with loss, samples/s and the
share of time spent waiting for data), validation loss with the EMA weights plus the ``on_validate(model,
step) -> dict`` hook (main process; e.g. decode a few dev examples), checkpoints with everything needed to
continue exactly: model, EMA, optimiser, scheduler, step, data position, per-process RNG states, and the run's
training seconds (a time budget, ``max_minutes``, is the run's: a resumed run continues its schedule and stops
when the whole run has used it).

Validation draws its randomness under a fixed seed inside ``fork_rng``: its loss is comparable between
evaluations, and training randomness is the same whether or not (and how often) validation runs.
"""
from __future__ import annotations

import contextlib
import datetime
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

import torch
from torch import nn
from tqdm import tqdm

from elfs2t.config import unstructure
from elfs2t.optim.build import OptimConfig, build_optimizer, build_scheduler
from elfs2t.optim.ema import Ema
from elfs2t.train.checkpoint import (load_latest, remove_checkpoints, remove_partial, rng_state, save_checkpoint,
                                     set_rng_state)
from elfs2t.train.config import TrainConfig
from elfs2t.train.distributed import (all_gather_object, all_reduce_sum, barrier, dist_info, is_distributed,
                                      wrap_ddp)
from elfs2t.train.exp_dir import setup_file_logging
from elfs2t.train.stream import BatchStream

log = logging.getLogger(__name__)

__all__ = ["Trainer", "batch_size_of", "move_to_device"]

ValidateHook = Callable[[nn.Module, int], Optional[dict[str, Any]]]


def batch_size_of(batch: Any, stats: Optional[dict[str, float]] = None) -> int:
    """Samples in a batch: ``stats["num_samples"]``, else len of ``cut_ids`` / ``text``, else dim 0 of a tensor."""
    if stats and "num_samples" in stats:
        return int(stats["num_samples"])
    if isinstance(batch, dict):
        for key in ("cut_ids", "text"):
            if key in batch:
                return len(batch[key])
        batch = list(batch.values())
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    if isinstance(batch, (list, tuple)):
        for item in batch:
            if isinstance(item, torch.Tensor) and item.ndim:
                return int(item.shape[0])
        return len(batch)
    return 1


def move_to_device(batch: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Tensors inside dicts / lists / tuples moved to ``device``; everything else unchanged."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, dict):
        return {k: move_to_device(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(v, device, non_blocking) for v in batch)
    return batch


class Trainer:
    """Train ``model`` with ``optim_cfg`` / ``train_cfg``, writing to ``exp_dir``.

    Args:
        model: ``model(batch) -> (loss, stats)``, loss a scalar tensor, stats ``dict[str, float]``.
        train_loader / valid_loader: iterables of batches (DataLoaders over Lhotse samplers, typically).
        on_validate: ``hook(model, step) -> dict | None`` called on the main process with EMA weights.
        batch_size: global samples per optimiser step, for ``lr = lr_per_256 * batch_size / 256``.
        config: the full resolved config stored in checkpoints (default: optim + train configs).
        device: default ``cuda:<local_rank>`` when CUDA is available, else CPU.
    """

    #: the clock of the time budget (``max_minutes``); a test replaces it on the class or an instance
    #: instead of patching ``time.monotonic`` for the whole process (which the DataLoader's waits also read)
    clock: Callable[[], float] = staticmethod(time.monotonic)

    def __init__(self, model: nn.Module, optim_cfg: OptimConfig, train_cfg: TrainConfig, exp_dir: str | Path,
                 train_loader: Iterable, valid_loader: Optional[Iterable] = None,
                 on_validate: Optional[ValidateHook] = None, *, batch_size: Optional[int] = None,
                 config: Any = None, device: Optional[torch.device] = None) -> None:
        self.optim_cfg, self.cfg = optim_cfg, train_cfg
        self.exp_dir = Path(exp_dir)
        self.info = dist_info(device)
        self.device = self.info.device
        torch.manual_seed(train_cfg.seed + self.info.rank)
        self.module = model.to(self.device)
        self.model = wrap_ddp(self.module, self.info, train_cfg.find_unused_parameters)
        self.optimizer = build_optimizer(self.module, optim_cfg, batch_size)
        self._prior_seconds = 0.0  # training seconds of earlier invocations (from the resumed checkpoint)
        self._elapsed = 0.0  # training seconds of the run, averaged over processes (set by _out_of_time)
        self._start: Optional[float] = None  # self.clock() when fit started
        self._clock_leads = False  # the clock has run more than a step ahead of max_steps (logged once)
        self.scheduler = build_scheduler(self.optimizer, optim_cfg, self.progress)
        self.ema = Ema(self.module, optim_cfg.ema_decay, optim_cfg.ema_warmup) if optim_cfg.ema_decay > 0 else None
        self.stream = BatchStream(train_loader, seed=train_cfg.seed, max_epochs=train_cfg.max_epochs)
        self.valid_loader, self.on_validate = valid_loader, on_validate
        self.config = config if config is not None else {"optim": unstructure(optim_cfg), "train": unstructure(train_cfg)}
        use_bf16 = train_cfg.dtype == "bfloat16" or (train_cfg.dtype == "auto" and self.device.type == "cuda")
        self.autocast_dtype = torch.bfloat16 if use_bf16 else None
        self.step = 0
        self._saved_step = -1
        self._valid_step, self._valid_loss = -1, None  # the last validation's step and loss (for checkpoints)
        self.writer = None

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint holds, except the per-process RNG states (gathered in :meth:`save`)."""
        position = self.stream.state_dict()
        return {
            "step": self.step, "epoch": position["epoch"], "batches_in_epoch": position["batches_in_epoch"],
            "sampler": position["sampler"], "model": self.module.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None, "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "world_size": self.info.world_size,
            "train_seconds": self._elapsed,
            "valid_loss": self._valid_loss if self._valid_step == self.step else None,
            "config": self.config, "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        }

    def save(self) -> None:
        """Write ``checkpoint-<step>.pt`` and ``last.pt`` (main process; all processes must call)."""
        rngs = all_gather_object(rng_state())
        if self._start is not None:
            self._out_of_time()  # the run's training seconds up to now, for the checkpoint
        if self.info.is_main:
            save_checkpoint(self.exp_dir, {**self.state_dict(), "rng": rngs}, keep_last=self.cfg.keep_last,
                            keep_best=self.cfg.keep_best)
        self._saved_step = self.step
        barrier()

    def resume(self) -> bool:
        """Load the newest readable checkpoint of exp_dir, if any; True when one was loaded."""
        state = load_latest(self.exp_dir, map_location="cpu")
        if state is None:
            return False
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:
            if state.get("ema") is None:
                log.warning("%s has no EMA: the EMA restarts from the current weights", state["path"])
                self.ema = Ema(self.module, self.optim_cfg.ema_decay, self.optim_cfg.ema_warmup)
            else:
                self.ema.load_state_dict(state["ema"])
        self.step = self._saved_step = int(state["step"])
        self._prior_seconds = self._elapsed = float(state.get("train_seconds", 0.0))
        position = {"epoch": state["epoch"], "batches_in_epoch": state["batches_in_epoch"], "sampler": state["sampler"]}
        if state.get("world_size", 1) == self.info.world_size:
            self.stream.load_state_dict(position)
            set_rng_state(state["rng"][self.info.rank])
        else:
            log.warning("%s was written by %d processes, now %d: data restart at the beginning of epoch %d, RNG "
                        "re-seeded", state["path"], state.get("world_size", 1), self.info.world_size, state["epoch"])
            self.stream.load_state_dict({"epoch": state["epoch"], "batches_in_epoch": 0, "sampler": None})
            torch.manual_seed(self.cfg.seed + self.info.rank + self.step)
        log.info("resumed from %s at step %d (epoch %d, %d batches into it)", state["path"], self.step,
                 state["epoch"], state["batches_in_epoch"])
        return True

    # ------------------------------------------------------------------ steps
    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _train_step(self, batches: Iterator) -> Optional[dict[str, Any]]:
        """One optimiser step over grad_accum batches; None when the data ran out (a partial window is dropped)."""
        self.model.train()
        begin_step = getattr(self.module, "begin_step", None)
        if begin_step is not None:
            begin_step(self.step, self.progress(self.step))
        accum = self.cfg.grad_accum
        loss_sum, samples, data_time = 0.0, 0, 0.0
        stats_sum: dict[str, float] = {}
        for micro in range(accum):
            t0 = time.perf_counter()
            batch = next(batches, None)
            data_time += time.perf_counter() - t0
            if batch is None:
                self.optimizer.zero_grad(set_to_none=True)
                return None
            batch = move_to_device(batch, self.device, non_blocking=self.cfg.pin_memory)
            sync = micro == accum - 1 or not is_distributed()
            with (contextlib.nullcontext() if sync else self.model.no_sync()):
                with self._autocast():
                    loss, stats = self.model(batch)
                (loss / accum).backward()
            loss_sum += float(loss.detach())
            samples += batch_size_of(batch, stats)
            for key, value in (stats or {}).items():
                stats_sum[key] = stats_sum.get(key, 0.0) + float(value) / accum
        totals = all_reduce_sum(torch.tensor([loss_sum / accum, float(samples)], dtype=torch.float64, device=self.device))
        loss_mean = float(totals[0]) / self.info.world_size
        if not math.isfinite(loss_mean):
            raise FloatingPointError(f"step {self.step + 1}: training loss is {loss_mean} (exp dir {self.exp_dir})")
        grad_norm = None
        if self.optim_cfg.clip > 0:
            params = [p for p in self.module.parameters() if p.requires_grad]
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.optim_cfg.clip))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.module)
        self.step += 1
        return {"loss": loss_mean, "samples": int(totals[1]), "data_time": data_time, "stats": stats_sum,
                "grad_norm": grad_norm}

    @torch.no_grad()
    def validate(self) -> dict[str, Any]:
        """Validation loss with EMA weights (averaged over samples and processes) plus the hook's results."""
        results: dict[str, Any] = {}
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        swap = self.ema.swapped(self.module) if self.ema is not None else contextlib.nullcontext()
        with swap, torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.cfg.seed + 1_000_003 + self.info.rank)
            self.module.eval()
            if self.valid_loader is not None:
                total = torch.zeros(2, dtype=torch.float64, device=self.device)
                for i, batch in enumerate(self.valid_loader):
                    if self.cfg.valid_max_batches and i >= self.cfg.valid_max_batches:
                        break
                    batch = move_to_device(batch, self.device)
                    with self._autocast():
                        loss, stats = self.module(batch)
                    n = batch_size_of(batch, stats)
                    total += torch.tensor([float(loss) * n, n], dtype=torch.float64, device=self.device)
                all_reduce_sum(total)
                if total[1] > 0:
                    results["valid_loss"] = float(total[0] / total[1])
            if self.on_validate is not None and self.info.is_main:
                results.update(self.on_validate(self.module, self.step) or {})
            self.module.train()
        barrier()
        self._valid_step, self._valid_loss = self.step, results.get("valid_loss")
        if self.info.is_main:
            log.info("step %d validation: %s", self.step, _fmt(results))
            self._log_scalars("valid", results)
        return results

    # ------------------------------------------------------------------ logging
    def _log_scalars(self, prefix: str, values: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"{prefix}/{key}", value, self.step)
            elif isinstance(value, str):
                self.writer.add_text(f"{prefix}/{key}", value, self.step)

    def _lrs(self) -> dict[str, float]:
        groups = self.optimizer.param_groups
        if len(groups) == 1:
            return {"lr": groups[0]["lr"]}
        names = [("lr_muon" if g.get("use_muon") else "lr_adam") if "use_muon" in g else f"lr_{i}"
                 for i, g in enumerate(groups)]
        if len(set(names)) < len(names):
            names = [f"lr_{i}" for i in range(len(groups))]
        return {name: g["lr"] for name, g in zip(names, groups)}

    def _log_window(self, window: dict[str, Any], pbar: tqdm) -> float:
        stats_all = all_gather_object(window["stats"])
        stats = {k: sum(s.get(k, 0.0) for s in stats_all) / (len(stats_all) * window["steps"]) for k in stats_all[0]}
        elapsed = max(time.perf_counter() - window["start"], 1e-9)
        values = {"loss": window["loss"] / window["steps"], **self._lrs(),
                  "samples_per_s": window["samples"] / elapsed, "data_wait": window["data_time"] / elapsed, **stats}
        if window["grad_norm"]:
            values["grad_norm"] = window["grad_norm"] / window["steps"]
        if self.info.is_main:
            log.info("step %d epoch %d: %s", self.step, self.stream.epoch, _fmt(values))
            self._log_scalars("train", values)
            pbar.set_postfix(loss=f"{values['loss']:.4f}", sps=f"{values['samples_per_s']:.1f}",
                             data=f"{100 * values['data_wait']:.0f}%")
        return values["loss"]

    # ------------------------------------------------------------------ the loop
    def progress(self, step: int) -> float:
        """The run's progress in [0, 1] at optimiser step ``step``: the further of steps / max_steps and the
        run's training minutes / max_minutes (earlier invocations included: a resumed run continues its
        schedule). Drives the learning-rate decay (OptimConfig.decay_frac) and ``begin_step``'s curricula."""
        fracs = [step / self.cfg.max_steps] if self.cfg.max_steps else []
        if self.cfg.max_minutes > 0:
            fracs.append(self._elapsed / (60.0 * self.cfg.max_minutes))
            # a clock more than a step ahead of the steps sets the schedule (the start-up's fraction of a step
            # does not move any step's learning rate or curriculum)
            if len(fracs) == 2 and fracs[1] > (step + 1) / self.cfg.max_steps and not self._clock_leads:
                self._clock_leads = True
                log.warning("step %d: the clock (%.2f of %.1f min) is ahead of the step budget (%d of %d steps): "
                            "the schedule follows the clock from here, so this run will not repeat exactly",
                            step, self._elapsed / 60.0, self.cfg.max_minutes, step, self.cfg.max_steps)
        return min(1.0, max(fracs, default=0.0))

    def _out_of_time(self) -> bool:
        """Update the run's training seconds (this invocation's since :meth:`fit` started plus the resumed ones);
        True once they pass max_minutes. Collective under torchrun (every process calls it)."""
        seconds = self.clock() - self._start
        if self.cfg.max_minutes <= 0:
            self._elapsed = self._prior_seconds + seconds
            return False
        # the mean over processes: every process sees the same elapsed time, so the same learning rate
        elapsed = torch.tensor([seconds], dtype=torch.float64, device=self.device)
        self._elapsed = self._prior_seconds + float(all_reduce_sum(elapsed)[0]) / self.info.world_size
        return self._elapsed > 60.0 * self.cfg.max_minutes

    def fit(self, resume: bool = True) -> dict[str, Any]:
        """Train until max_steps / max_epochs / max_minutes; returns a summary dict.

        ``resume``: continue from the newest checkpoint of exp_dir; False deletes exp_dir's checkpoints first
        (the run starts over and replaces them).

        Keys: ``step``, ``epoch``, ``stopped_by`` ("max_steps" | "max_epochs" | "max_minutes"),
        ``losses`` (process-averaged loss of every step run by this call), ``train_loss`` (last log window),
        ``valid`` (last validation results), ``resumed`` (bool).
        """
        if self.info.is_main:
            setup_file_logging(self.exp_dir)
            remove_partial(self.exp_dir)  # a .tmp a killed checkpoint write left behind
            if not resume:  # starting over: the previous run's checkpoints go now, so nothing can fall back on them
                old = remove_checkpoints(self.exp_dir)
                if old:
                    log.warning("%s: resume=False: removed the previous run's checkpoints (%s); training starts "
                                "from scratch", self.exp_dir, ", ".join(p.name for p in old))
        barrier()
        resumed = self.resume() if resume else False
        if self.info.is_main:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(self.exp_dir / "tensorboard"))
        self._start = self.clock()
        cfg = self.cfg
        # learning curves (elfs2t.bin.learning_curves) measure wall time from this line of train.log
        log.info("training starts at step %d (max_steps %s, max_minutes %s)", self.step, cfg.max_steps or "-",
                 cfg.max_minutes or "-")
        if resumed and cfg.max_minutes > 0:
            log.info("%.1f of the %.1f training minutes were spent before this resume", self._prior_seconds / 60.0,
                     cfg.max_minutes)
        pbar = tqdm(total=cfg.max_steps or None, initial=self.step, desc=f"train {self.exp_dir.name}",
                    disable=not (self.info.is_main and cfg.progress), dynamic_ncols=True)
        batches = iter(self.stream)
        losses: list[float] = []
        valid: dict[str, Any] = {}
        train_loss = float("nan")
        window = _new_window()
        stopped_by = "max_epochs"
        try:
            while True:
                if cfg.max_steps and self.step >= cfg.max_steps:
                    stopped_by = "max_steps"
                    break
                if self._out_of_time():
                    stopped_by = "max_minutes"
                    log.info("wall-time budget of %.1f min reached at step %d", cfg.max_minutes, self.step)
                    break
                out = self._train_step(batches)
                if out is None:
                    break
                losses.append(out["loss"])
                pbar.update(1)
                _add_to_window(window, out)
                if self.step % cfg.log_every == 0:
                    train_loss = self._log_window(window, pbar)
                    window = _new_window()
                if cfg.valid_every and self.step % cfg.valid_every == 0:
                    valid = self.validate()
                if self.step % cfg.save_every == 0:
                    self.save()
            if window["steps"]:
                train_loss = self._log_window(window, pbar)
            if (self.valid_loader is not None or self.on_validate is not None) and (
                    not cfg.valid_every or self.step % cfg.valid_every != 0):
                valid = self.validate()  # before the last checkpoint, which then carries its loss
            if self.step > 0 and self._saved_step != self.step:
                self.save()
        finally:
            # end the epoch's DataLoader iterator now, also when a step raised (the traceback would keep it, and
            # non-persistent workers, alive until garbage collection; persistent ones live with the loader)
            batches.close()
            pbar.close()
            if self.writer is not None:
                self.writer.close()
                self.writer = None
        summary = {"step": self.step, "epoch": self.stream.epoch, "stopped_by": stopped_by, "losses": losses,
                   "train_loss": train_loss, "valid": valid, "resumed": resumed}
        log.info("training stopped by %s at step %d (epoch %d)", stopped_by, self.step, self.stream.epoch)
        return summary


def _new_window() -> dict[str, Any]:
    return {"steps": 0, "loss": 0.0, "samples": 0, "data_time": 0.0, "grad_norm": 0.0, "stats": {},
            "start": time.perf_counter()}


def _add_to_window(window: dict[str, Any], out: dict[str, Any]) -> None:
    window["steps"] += 1
    window["loss"] += out["loss"]
    window["samples"] += out["samples"]
    window["data_time"] += out["data_time"]
    window["grad_norm"] += out["grad_norm"] or 0.0
    for key, value in out["stats"].items():
        window["stats"][key] = window["stats"].get(key, 0.0) + value


def _fmt(values: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
