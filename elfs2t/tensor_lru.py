"""A least-recently-used cache of tensors bounded by bytes (and optionally by entries).

Memory is what a cache costs, and what grows with a corpus: a bound in entries that is harmless on a small
corpus (100,000 latents of L 24 x d 384) is 26 GB per process at L 128 x d 512. Every in-memory cache of
elfs2t is one of these, with a byte budget::

    cache = TensorLRU(max_bytes=1 << 30)
    cache.put(key, (ids, latents))       # a tensor or a tuple of tensors; evicts the least recently used
    value = cache.get(key)               # None when absent; a hit makes the entry the most recent

An entry's size is the bytes of its tensors plus its key (bytes or str); Python's own bookkeeping (about
200 bytes an entry) is not counted. An entry larger than the whole budget is not kept.
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
    """Bytes of a tensor's elements, or of every tensor in a (nested) tuple."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    return sum(nbytes(v) for v in value)


class TensorLRU:
    """LRU mapping ``key -> tensor(s)`` holding at most ``max_bytes`` (and ``max_items`` entries, when given)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, max_items: Optional[int] = None) -> None:
        if max_bytes < 1:
            raise ValueError(f"TensorLRU: max_bytes={max_bytes} must be >= 1")
        if max_items is not None and max_items < 1:
            raise ValueError(f"TensorLRU: max_items={max_items} must be >= 1")
        self.max_bytes, self.max_items = max_bytes, max_items
        self._store: OrderedDict[Hashable, tuple[Value, int]] = OrderedDict()
        self.nbytes = 0
        """Bytes held now."""

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._store

    def get(self, key: Hashable) -> Optional[Value]:
        """The entry (now the most recently used), or None."""
        item = self._store.get(key)
        if item is None:
            return None
        self._store.move_to_end(key)
        return item[0]

    def put(self, key: Hashable, value: Value) -> None:
        """Store ``value`` under ``key`` as the most recent entry, then evict down to the bounds."""
        size = nbytes(value) + (len(key) if isinstance(key, (bytes, str)) else 0)
        old = self._store.pop(key, None)
        if old is not None:
            self.nbytes -= old[1]
        if size > self.max_bytes:
            return
        self._store[key] = (value, size)
        self.nbytes += size
        while self.nbytes > self.max_bytes or (self.max_items is not None and len(self._store) > self.max_items):
            _, (_, evicted) = self._store.popitem(last=False)
            self.nbytes -= evicted

    def clear(self) -> None:
        """Drop every entry."""
        self._store.clear()
        self.nbytes = 0
