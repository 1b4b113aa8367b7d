"""AudioProjector: frame stacking by hand, lengths, masks, zeroed padding."""
import pytest
import torch

from elfs2t.s2t.projector import AudioProjector


def _identity_projector(d: int, k: int) -> AudioProjector:
    proj = AudioProjector(d, d * k, stack=k)
    with torch.no_grad():
        proj.linear.weight.copy_(torch.eye(d * k))
        proj.linear.bias.zero_()
    return proj


def test_stacking_by_hand():
    # D = 2, k = 3, T = 7 -> T' = 3; identity weights expose the stacked vectors.
    feats = torch.arange(1, 15, dtype=torch.float32).reshape(1, 7, 2)  # frames [1,2],[3,4],...,[13,14]
    proj = _identity_projector(2, 3)
    prefix, mask = proj(feats, torch.tensor([7]))
    assert prefix.shape == (1, 3, 6) and mask.shape == (1, 3)
    expected = torch.tensor([[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12], [13, 14, 0, 0, 0, 0]], dtype=torch.float32)
    torch.testing.assert_close(prefix[0], expected)
    assert mask.tolist() == [[True, True, True]]


def test_lengths_mask_and_padding():
    torch.manual_seed(0)
    d, k = 4, 2
    proj = AudioProjector(d, 5, stack=k)
    feats = torch.randn(3, 5, d)  # T = 5 -> T' = 3
    lens = torch.tensor([5, 3, 1])
    feats_padded = feats.clone()
    feats_padded[1, 3:] = 99.0  # garbage in the padding must not leak
    feats_padded[2, 1:] = -7.0
    prefix, mask = proj(feats_padded, lens)
    assert prefix.shape == (3, 3, 5)
    assert mask.tolist() == [[True, True, True], [True, True, False], [True, False, False]]
    assert torch.all(prefix[~mask] == 0)
    # Row 1 (len 3): its second token stacks frame 2 with a zero frame.
    stacked = torch.cat([feats[1, 2], torch.zeros(d)])
    torch.testing.assert_close(prefix[1, 1], proj.linear(stacked))
    # Each row equals the row projected alone, without padding.
    alone, _ = proj(feats[1:2, :3], torch.tensor([3]))
    torch.testing.assert_close(prefix[1, :2], alone[0])


def test_stack_one_is_a_linear_layer():
    proj = AudioProjector(3, 4)
    feats = torch.randn(2, 6, 3)
    prefix, mask = proj(feats, torch.tensor([6, 4]))
    torch.testing.assert_close(prefix[0], proj.linear(feats[0]))
    torch.testing.assert_close(prefix[1, :4], proj.linear(feats[1, :4]))
    assert mask.sum(1).tolist() == [6, 4]


def test_bad_inputs():
    proj = AudioProjector(3, 4, stack=2)
    with pytest.raises(ValueError, match=r"expected feats \(B, T, 3\)"):
        proj(torch.randn(1, 5, 2), torch.tensor([5]))
    with pytest.raises(ValueError, match="do not fit"):
        proj(torch.randn(1, 5, 3), torch.tensor([6]))
    with pytest.raises(ValueError, match="stack=0"):
        AudioProjector(3, 4, stack=0)
