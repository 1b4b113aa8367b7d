"""An endless stream of training batches that knows its position (epoch, batches consumed) and can resume it.

Position restore, exact even when DataLoader workers prefetch ahead of the training step:

* Samplers with ``state_dict`` / ``load_state_dict`` (Lhotse samplers): their state is saved with the
  consumed-batch count replaced by the trainer's own count (the sampler itself has run ahead by the
  prefetched batches); loading it makes the sampler fast-forward over cut metadata only.
* Any other loader: the epoch is re-seeded the same way (``set_epoch`` on the sampler when it has one, and
  the DataLoader's shuffling / worker seeds drawn under ``seed + epoch``), and the consumed batches are
  loaded again and skipped.
"""
from __future__ import annotations

import copy
import itertools
import logging
from typing import Any, Iterable, Iterator

import torch

log = logging.getLogger(__name__)

__all__ = ["BatchStream"]

_END = object()


def _find_sampler(loader: Iterable) -> Any:
    for attr in ("batch_sampler", "sampler"):
        sampler = getattr(loader, attr, None)
        if sampler is not None and hasattr(sampler, "state_dict") and hasattr(sampler, "load_state_dict"):
            return sampler
    return getattr(loader, "sampler", None)


class BatchStream:
    """Iterate ``loader`` epoch after epoch, up to ``max_epochs`` (0: forever); track the position."""

    def __init__(self, loader: Iterable, seed: int = 0, max_epochs: int = 0) -> None:
        self.loader = loader
        self.seed = seed
        self.max_epochs = max_epochs
        self.epoch = 0
        self.batches_in_epoch = 0
        self.sampler = _find_sampler(loader)
        self._restored_sampler = False
        self._skip = 0

    @property
    def stateful_sampler(self) -> bool:
        """True when the sampler can save and restore its own position (Lhotse samplers)."""
        return self.sampler is not None and hasattr(self.sampler, "state_dict") and hasattr(self.sampler, "load_state_dict")

    def state_dict(self) -> dict[str, Any]:
        """Epoch, batches consumed in it, and the sampler state (corrected to the consumed count) if any."""
        state: dict[str, Any] = {"epoch": self.epoch, "batches_in_epoch": self.batches_in_epoch, "sampler": None}
        if self.stateful_sampler:
            sd = copy.deepcopy(self.sampler.state_dict())
            diag = sd.get("diagnostics", {}).get("stats_per_epoch", {}).get(self.epoch)
            if isinstance(diag, dict) and "kept_batches" in diag:
                diag["kept_batches"], diag["discarded_batches"] = self.batches_in_epoch, 0
                sd["diagnostics"]["current_epoch"] = self.epoch
            sd["epoch"] = self.epoch
            state["sampler"] = sd
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at the saved position (takes effect when the next epoch iterator starts)."""
        self.epoch = int(state["epoch"])
        self.batches_in_epoch = int(state["batches_in_epoch"])
        sd = state.get("sampler")
        if sd is not None and self.stateful_sampler and self.batches_in_epoch > 0:
            self.sampler.load_state_dict(copy.deepcopy(sd))
            self._restored_sampler = True
            self._skip = 0
        else:
            self._skip = self.batches_in_epoch
        log.info("resuming data at epoch %d after %d batches (%s)", self.epoch, self.batches_in_epoch,
                 "sampler state" if self._restored_sampler else "re-seeded epoch, skipping batches")

    def _epoch_iterator(self) -> Iterator:
        if not self._restored_sampler and hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(self.epoch)
        self._restored_sampler = False
        # Shuffling in RandomSampler and worker base seeds come from the global generator, drawn at iter() or
        # at the first next(): draw them (and skip already-consumed batches) under a per-epoch seed, without
        # touching the training RNG stream, so a resumed run sees the same order and the same RNG state.
        skip, self._skip = self._skip, 0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed + self.epoch)
            it = iter(self.loader)
            for _ in range(max(skip, 1)):
                first = next(it, _END)
                if first is _END:  # empty epoch, or the saved position was its end
                    return iter(())
        return itertools.chain([first], it) if skip == 0 else it

    def __iter__(self) -> Iterator:
        while self.max_epochs <= 0 or self.epoch < self.max_epochs:
            fresh = self.batches_in_epoch == 0
            for batch in self._epoch_iterator():
                self.batches_in_epoch += 1
                yield batch
            if fresh and self.batches_in_epoch == 0:
                raise RuntimeError(f"the training data yields no batches (epoch {self.epoch}): check the cuts and "
                                   "the batch size limits (max_duration / max_cuts)")
            self.epoch += 1
            self.batches_in_epoch = 0
