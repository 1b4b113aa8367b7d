"""DataLoaders over Lhotse cuts: a DynamicBucketingSampler feeding a map-style dataset.

The sampler yields a ``CutSet`` per batch and the dataset turns it into the batch dict
(``dataset[cuts] -> dict``), as Lhotse's own datasets do; the DataLoader only adds workers and pinning.
The sampler lives in the main process, so its ``state_dict`` is what the trainer saves for a mid-epoch
resume. In DDP every rank builds its own loader with its ``rank`` / ``world_size``; ``drop_last`` is then
on by default, so all ranks see the same number of batches.
"""
from __future__ import annotations

import logging
from typing import Optional

from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler, DynamicCutSampler
from torch.utils.data import DataLoader, Dataset

log = logging.getLogger(__name__)

__all__ = ["build_sampler", "build_dataloader"]


def build_sampler(
    cuts: CutSet,
    *,
    max_duration: Optional[float] = None,
    max_cuts: Optional[int] = None,
    num_buckets: int = 10,
    shuffle: bool = True,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    drop_last: Optional[bool] = None,
    buffer_size: int = 20000,
) -> DynamicBucketingSampler | DynamicCutSampler:
    """A DynamicBucketingSampler; ``drop_last`` defaults to ``world_size > 1``.

    An in-memory CutSet with fewer cuts than ``num_buckets`` (a tiny dev set) gets a plain
    DynamicCutSampler instead: duration buckets cannot be estimated from so few cuts.

    Keep the default for DDP training (every rank gets the same number of full batches). ``drop_last=False``
    with several ranks suits validation: Lhotse then spreads the last examples over all ranks (duplicating a
    few if needed), so no rank is left without a batch.
    """
    if max_duration is None and max_cuts is None:
        raise ValueError("build_sampler: give max_duration (seconds per batch) or max_cuts")
    if num_buckets < 2:
        raise ValueError(f"build_sampler: num_buckets={num_buckets} must be >= 2 (Lhotse's bucket estimation)")
    if drop_last is None:
        drop_last = world_size > 1
    if cuts.is_lazy is False and len(cuts) < num_buckets:
        log.info("%d cuts < num_buckets=%d: sampling without duration buckets", len(cuts), num_buckets)
        return DynamicCutSampler(cuts, max_duration=max_duration, max_cuts=max_cuts, shuffle=shuffle, seed=seed,
                                 rank=rank, world_size=world_size, drop_last=drop_last)
    return DynamicBucketingSampler(
        cuts, max_duration=max_duration, max_cuts=max_cuts, num_buckets=num_buckets, shuffle=shuffle,
        seed=seed, rank=rank, world_size=world_size, drop_last=drop_last, buffer_size=buffer_size,
    )


def build_dataloader(
    cuts: CutSet,
    dataset: Dataset,
    *,
    max_duration: Optional[float] = None,
    max_cuts: Optional[int] = None,
    num_buckets: int = 10,
    shuffle: bool = True,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    drop_last: Optional[bool] = None,
    buffer_size: int = 20000,
    num_workers: int = 0,
    pin_memory: bool = False,
    persistent_workers: Optional[bool] = None,
) -> DataLoader:
    """DataLoader(dataset, sampler=DynamicBucketingSampler(...), batch_size=None) with workers set up.

    ``persistent_workers`` defaults to ``num_workers > 0``. The sampler is ``loader.sampler``.
    """
    sampler = build_sampler(cuts, max_duration=max_duration, max_cuts=max_cuts, num_buckets=num_buckets,
                            shuffle=shuffle, seed=seed, rank=rank, world_size=world_size,
                            drop_last=drop_last, buffer_size=buffer_size)
    if persistent_workers is None:
        persistent_workers = num_workers > 0
    return DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=num_workers,
                      pin_memory=pin_memory, persistent_workers=persistent_workers and num_workers > 0)
