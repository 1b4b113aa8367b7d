"""A least-recently-used cache of tensor rows, bounded by bytes (and optionally by entries).

Memory is what a cache costs, and what grows with a corpus: a bound of 100,000 entries, 3.7 GB of latents at
L 24 x d 384 (never reached on a small corpus), is 26 GB per process at L 128 x d 512 on LibriSpeech. Every
in-memory cache of elfs2t is one of these, with a byte budget::

    cache = TensorLRU(max_bytes=1 << 30)
    cache.put(key, (ids, latents))       # a tensor or a tuple of tensors
    value = cache.get(key)               # None when absent; a hit makes the entry the most recent

While every entry has the shapes and dtypes of the first (training: fixed-length text rows), the entries live in
preallocated *slabs*, one tensor of ``capacity`` rows per part of the value, with ``capacity = max_bytes // bytes
of one entry``: an evicted entry's row is reused by the next one. So the cache never holds more than its budget,
and it cannot fragment the heap either (freed rows of one size between live ones made the process's resident
memory twice the cache's under glibc's allocator). The slabs are allocated at the first ``put`` (their pages are
only touched as rows are written). The first entry of another shape (the analysis encodes batches of varying
length) turns the cache *loose*: every entry becomes a tensor of its own, and the least recent are evicted while
the bytes held would pass the budget. ``get`` returns *views* of the cache's tensors: copy what you keep
(``torch.stack`` does) before the next ``put``, which may reuse the row. Keys (bytes, str, any hashable) are not
counted in the budget.
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
    """LRU mapping ``key -> tensor(s)``, holding at most ``max_bytes`` of them (and ``max_items`` entries, when
    given); see the module docstring."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, max_items: Optional[int] = None) -> None:
        if max_bytes < 1:
            raise ValueError(f"TensorLRU: max_bytes={max_bytes} must be >= 1")
        if max_items is not None and max_items < 1:
            raise ValueError(f"TensorLRU: max_items={max_items} must be >= 1")
        self.max_bytes, self.max_items = max_bytes, max_items
        # key -> its row of the slabs, or (loose) its own tensors; least recent first
        self._slots: OrderedDict[Hashable, Union[int, tuple]] = OrderedDict()
        self._free: list[int] = []
        self._slabs: Optional[list[torch.Tensor]] = None
        self._single: Optional[bool] = None  # the values are tensors (not tuples); fixed by the first put
        self._row_bytes = 0
        self._loose = False
        self._loose_bytes = 0

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._slots

    @property
    def loose(self) -> bool:
        """Whether entries of several shapes made the cache keep each entry as tensors of its own."""
        return self._loose

    @property
    def capacity(self) -> int:
        """Entries the slabs hold (0 before the first ``put``, which fixes the entries' size, and once loose)."""
        return 0 if self._slabs is None else self._slabs[0].shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes of the entries held now."""
        return self._loose_bytes if self._loose else len(self._slots) * self._row_bytes

    def get(self, key: Hashable) -> Optional[Value]:
        """Views of the entry's tensors (now the most recently used), or None; valid until the next ``put``."""
        slot = self._slots.get(key)
        if slot is None:
            return None
        self._slots.move_to_end(key)
        parts = slot if self._loose else tuple(slab[slot] for slab in self._slabs)
        return parts[0] if self._single else parts

    def _allocate(self, parts: tuple[torch.Tensor, ...]) -> None:
        self._row_bytes = sum(nbytes(p) for p in parts)
        capacity = self.max_bytes // max(1, self._row_bytes)
        if self.max_items is not None:
            capacity = min(capacity, self.max_items)
        self._slabs = [torch.empty((capacity, *p.shape), dtype=p.dtype) for p in parts]
        self._free = list(range(capacity - 1, -1, -1))

    def _go_loose(self) -> None:
        """Entries of another shape: copy the slabs' entries out and free the slabs."""
        self._slots = OrderedDict((k, tuple(slab[row].clone() for slab in self._slabs))
                                  for k, row in self._slots.items())
        self._loose_bytes = len(self._slots) * self._row_bytes
        self._slabs, self._free, self._loose = None, [], True

    def _put_loose(self, key: Hashable, parts: tuple[torch.Tensor, ...]) -> None:
        old = self._slots.pop(key, None)
        if old is not None:
            self._loose_bytes -= nbytes(old)
        size = nbytes(parts)
        if size > self.max_bytes:
            return
        while self._slots and (self._loose_bytes + size > self.max_bytes
                               or (self.max_items is not None and len(self._slots) >= self.max_items)):
            self._loose_bytes -= nbytes(self._slots.popitem(last=False)[1])
        self._slots[key] = tuple(p.detach().to("cpu").clone() for p in parts)
        self._loose_bytes += size

    def put(self, key: Hashable, value: Value) -> None:
        """Copy ``value`` into the cache under ``key`` as the most recent entry, evicting the least recent ones
        when the budget is full. Every value must be of the first's kind (a tensor, or a tuple of as many)."""
        single = isinstance(value, torch.Tensor)
        parts = (value,) if single else tuple(value)
        if self._single is None:
            self._single, self._arity = single, len(parts)
            self._allocate(parts)
        if single != self._single or len(parts) != self._arity:
            want = "a tensor" if self._single else f"{self._arity} tensors"
            raise ValueError(f"TensorLRU: entries must all be {want}, got {'a tensor' if single else len(parts)}")
        if not self._loose and [(p.shape, p.dtype) for p in parts] != [(s.shape[1:], s.dtype) for s in self._slabs]:
            self._go_loose()
        if self._loose:
            self._put_loose(key, parts)
            return
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
        self._loose_bytes = 0
        self._free = list(range(self.capacity - 1, -1, -1))
