"""Minimum-Bayes-risk selection among noise draws (``decode.flow.samples``, ``decode.readout.samples``)."""
import pytest
import torch

from elfs2t.config import ConfigError
from elfs2t.s2t.decoding.mbr import decode_mbr, edit_distance, mbr_index
from elfs2t.s2t.elf_s2t import ElfS2T
from conftest import decoding, tiny_cfg  # (the batch fixture is conftest's)


def test_edit_distance_by_hand():
    assert edit_distance([1, 2, 3], [1, 2, 3]) == 0
    assert edit_distance([1, 2, 3], [1, 4, 3]) == 1       # one substitution
    assert edit_distance([1, 2, 3], [2, 3]) == 1          # one deletion
    assert edit_distance([], [7, 8]) == 2


def test_mbr_index_keeps_the_draw_nearest_the_others_and_the_earliest_among_ties():
    # sums of distances: draw 0: 1 + 0 + 3 = 4, draw 1: 1 + 1 + 3 = 5, draw 2: 0 + 1 + 3 = 4, draw 3: 9
    assert mbr_index([[1, 2, 3], [1, 2, 4], [1, 2, 3], [9]]) == 0
    assert mbr_index([[9], [1, 2, 4], [1, 2, 3], [1, 2, 3]]) == 2
    assert mbr_index([[5]]) == 0


def test_decode_mbr_reads_each_utterance_k_times_side_by_side_and_ignores_specials():
    eos = 0
    cond, mask = torch.tensor([[[10.0]], [[20.0]]]), torch.ones(2, 1, dtype=torch.bool)
    draws = torch.tensor([[5, 6, eos], [5, 7, eos], [5, 6, eos],      # utterance 0: draw 0 (= draw 2) is kept
                          [8, eos, eos], [9, 9, eos], [9, eos, 9]])   # utterance 1: [9, 9] twice once EOS is ignored
    seen = {}

    def read(c, m):
        seen["cond"] = c
        return draws

    out = decode_mbr(read, cond, mask, 3, special={eos})
    assert seen["cond"][:, 0, 0].tolist() == [10, 10, 10, 20, 20, 20]
    assert out.tolist() == [[5, 6, eos], [9, 9, eos]]
    assert decode_mbr(lambda c, m: c[:, 0].long(), cond, mask, 1, special={eos}).tolist() == [[10], [20]]


@pytest.mark.parametrize("strategy, settings", [("flow", {"steps": 2}), ("readout", {})])
def test_samples_keeps_one_of_the_draws_of_the_repeated_batch(batch, strategy, settings):
    torch.manual_seed(0)
    model = ElfS2T(tiny_cfg()).eval()
    one, three = decoding(model, strategy, **settings), decoding(model, strategy, samples=3, **settings)
    assert three.tag() == one.tag() + "_mbr3" and "MBR of 3 draws" in three.reader
    cond, mask = model.condition(batch)
    with torch.no_grad():
        picked = three(model, cond, mask, torch.Generator().manual_seed(0))
        draws = one(model, cond.repeat_interleave(3, 0), mask.repeat_interleave(3, 0), torch.Generator().manual_seed(0))
    for b in range(cond.shape[0]):
        assert any(torch.equal(picked[b], draws[3 * b + k]) for k in range(3))


@pytest.mark.parametrize("strategy", ["flow", "readout"])
def test_samples_under_one_is_refused_by_name(strategy):
    with pytest.raises(ConfigError, match="samples"):
        decoding(ElfS2T(tiny_cfg()), strategy, samples=0)
