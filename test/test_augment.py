"""Masking of cached encoder frames (elfs2t.s2t.augment): spans inside the valid frames, bands, training only."""
import pytest
import torch

from elfs2t.config import ConfigError, structure
from elfs2t.s2t.augment import FeatureMaskConfig, mask_features


def test_off_by_default_returns_the_input():
    x = torch.randn(2, 10, 8)
    assert mask_features(x, torch.tensor([10, 6]), FeatureMaskConfig()) is x


def test_time_spans_stay_inside_valid_frames_and_within_width():
    g = torch.Generator().manual_seed(0)
    x = torch.ones(64, 50, 4)
    lens = torch.randint(10, 51, (64,))
    cfg = FeatureMaskConfig(time_masks=1, max_time_frac=0.2)
    y = mask_features(x, lens, cfg, generator=g)
    assert torch.equal(x, torch.ones(64, 50, 4))  # input kept
    zero_t = (y == 0).all(dim=2)  # (B, T) masked frames: whole frames, every channel
    assert torch.equal(zero_t, (y == 0).any(dim=2))
    for b in range(64):
        idx = zero_t[b].nonzero().flatten()
        if idx.numel():
            assert int(idx.max()) < int(lens[b])  # never past the valid frames
            assert idx.numel() == int(idx.max() - idx.min()) + 1  # one contiguous span
            assert idx.numel() <= int(lens[b] * 0.2)
    assert zero_t.any()


def test_feature_bands_cover_whole_rows_in_time():
    g = torch.Generator().manual_seed(1)
    x = torch.ones(16, 12, 40)
    y = mask_features(x, torch.full((16,), 12), FeatureMaskConfig(feat_masks=2, max_feat_width=5), generator=g)
    zero_c = (y == 0).all(dim=1)  # (B, D): a masked channel is zero at every frame
    assert torch.equal(zero_c, (y == 0).any(dim=1))
    assert zero_c.sum(dim=1).max() <= 10 and zero_c.any()


def test_bad_config_names_the_key():
    with pytest.raises(ConfigError, match="max_time_frac"):
        structure(FeatureMaskConfig, {"time_masks": 1, "max_time_frac": 1.5})
