"""A least-recently-used cache of fixed-shape tensor rows, bounded by bytes (and optionally by entries).

Memory is what a cache costs, and what grows with a corpus: a bound of 100,000 entries, 3.7 GB of latents at
L 24 x d 384 (never reached on a small corpus), is 26 GB per process at L 128 x d 512 on LibriSpeech. Every
in-memory cache of elfs2t is one of these, with a byte budget::

    cache = TensorLRU(max_bytes=1 << 30)
    cache.put(key, (ids, latents))       # a tensor or a tuple of tensors, the same shapes for every entry
    value = cache.get(key)               # None when absent; a hit makes the entry the most recent

The entries live in preallocated *slabs*, one tensor of ``capacity`` rows per part of the value, with
``capacity = max_bytes // bytes of one entry``: an evicted entry's row is reused by the next one. So the cache
never holds more than its budget, and it cannot fragment the heap either (freed rows of one size between live
ones made the process's resident memory twice the cache's under glibc's allocator). The slabs are allocated
at the first ``put`` (their pages are only touched as rows are written). ``get`` returns *views* of the rows:
copy what you keep (``torch.stack`` does) before the next ``put``, which may reuse the row. Keys (bytes, str,
any hashable) are not counted in the budget.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Hashable, Optional, Union

import torch

__all__ = ["DEFAULT_MAX_BYTES", "TensorLRU", "nbytes"]

#: The default budget of a cache, per process: 1 GiB.
DEFAULT_MAX_BYTES = 1 << 30

Value = Union[torch.Tensor, tuple]


def nbytes(value: Value) -> int:
    """Bytes of a tensor's elements, or of every tensor in a tuple."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    return sum(nbytes(v) for v in value)


class TensorLRU:
    """LRU mapping ``key -> tensor(s)`` of one fixed shape, holding at most ``max_bytes`` of them (and
    ``max_items`` entries, when given); see the module docstring."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, max_items: Optional[int] = None) -> None:
        if max_bytes < 1:
            raise ValueError(f"TensorLRU: max_bytes={max_bytes} must be >= 1")
        if max_items is not None and max_items < 1:
            raise ValueError(f"TensorLRU: max_items={max_items} must be >= 1")
        self.max_bytes, self.max_items = max_bytes, max_items
        self._slots: OrderedDict[Hashable, int] = OrderedDict()  # key -> row, least recent first
        self._free: list[int] = []
        self._slabs: Optional[list[torch.Tensor]] = None
        self._single = True  # the values are tensors (not tuples)
        self._row_bytes = 0

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._slots

    @property
    def capacity(self) -> int:
        """Entries the budget holds (0 before the first ``put``, which fixes the entries' size)."""
        return 0 if self._slabs is None else self._slabs[0].shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes of the entries held now."""
        return len(self._slots) * self._row_bytes

    def get(self, key: Hashable) -> Optional[Value]:
        """Views of the entry's rows (now the most recently used), or None; valid until the next ``put``."""
        row = self._slots.get(key)
        if row is None:
            return None
        self._slots.move_to_end(key)
        parts = tuple(slab[row] for slab in self._slabs)
        return parts[0] if self._single else parts

    def _allocate(self, parts: tuple[torch.Tensor, ...]) -> None:
        self._row_bytes = sum(nbytes(p) for p in parts)
        capacity = self.max_bytes // max(1, self._row_bytes)
        if self.max_items is not None:
            capacity = min(capacity, self.max_items)
        self._slabs = [torch.empty((capacity, *p.shape), dtype=p.dtype) for p in parts]
        self._free = list(range(capacity - 1, -1, -1))

    def put(self, key: Hashable, value: Value) -> None:
        """Copy ``value`` into the cache under ``key`` as the most recent entry, evicting the least recent one
        when the budget is full. Every value must have the shapes and dtypes of the first."""
        single = isinstance(value, torch.Tensor)
        parts = (value,) if single else tuple(value)
        if self._slabs is None:
            self._single = single
            self._allocate(parts)
        shapes = [(s.shape[1:], s.dtype) for s in self._slabs]
        if single != self._single or [(p.shape, p.dtype) for p in parts] != shapes:
            raise ValueError(f"TensorLRU: entries must all be {shapes}, got {[(p.shape, p.dtype) for p in parts]}")
        if self.capacity == 0:
            return
        row = self._slots.pop(key, None)
        if row is None:
            row = self._free.pop() if self._free else self._slots.popitem(last=False)[1]
        for slab, part in zip(self._slabs, parts):
            slab[row].copy_(part)
        self._slots[key] = row

    def clear(self) -> None:
        """Drop every entry (the slabs stay allocated for the next ones)."""
        self._slots.clear()
        self._free = list(range(self.capacity - 1, -1, -1))
