"""Auxiliary CTC on the audio slots: targets, the batch-restricted softmax against a hand-built reference,
the shortlist with its blank, and the ELF-S2T loss with it (the frames feature lengths in the fixture are long enough for CTC)."""
import pytest
import torch
import torch.nn.functional as F

from elfs2t.s2t.ctc_aux import ctc_greedy, ctc_loss, ctc_readout, ctc_targets, ctc_vocab


def test_ctc_targets_skip_cls_and_eos_and_cut_to_fit():
    ids = torch.tensor([[101, 7, 8, 9, 102, 102], [101, 5, 102, 102, 102, 102], [101, 1, 2, 3, 4, 102]])
    flat, lens = ctc_targets(ids, [3, 1, 9], offset=1)  # the third text was longer than L: cut to 4
    assert lens.tolist() == [3, 1, 4] and flat.tolist() == [7, 8, 9, 5, 1, 2, 3, 4]
    flat, lens = ctc_targets(torch.tensor([[7, 8, 1, 1]]), [2], offset=0)  # T5 style: no BOS
    assert flat.tolist() == [7, 8] and lens.tolist() == [2]


def test_ctc_greedy_merges_runs_drops_blanks_and_keeps_the_best_posterior_of_a_run():
    best = torch.tensor([[5, 5, 0, 5, 7, 7, 0, 9], [0, 3, 3, 3, 0, 0, 0, 0]])
    prob = torch.tensor([[.5, .9, .99, .6, .3, .8, .9, .7], [.9, .2, .4, .3, .9, .9, .9, .9]])
    tokens, confs, frames, peaks = ctc_greedy(best, prob, torch.tensor([7, 8]), blank=0)
    assert tokens == [[5, 5, 7], [3]]  # frame 7 of row 0 (the 9) is past its length
    assert confs == [pytest.approx([.9, .6, .8]), pytest.approx([.4])]
    assert frames == [[0, 3, 4], [1]]
    assert peaks == [[1, 3, 5], [2]]  # the frame of each run's best posterior


def two_rows():
    """A random linear token head over 50 ids, two rows of 7 and 5 frames, targets (11 30 11) and (42 30)."""
    torch.manual_seed(0)
    W = torch.randn(6, 50)
    head = lambda h, vocab: h @ W[:, vocab]  # noqa: E731
    hidden = torch.randn(2, 7, 6)
    mask = torch.tensor([[True] * 7, [True] * 5 + [False] * 2])
    return W, head, hidden, mask, torch.tensor([11, 30, 11, 42, 30]), torch.tensor([3, 2])


def test_ctc_over_the_batch_vocabulary_equals_ctc_over_the_subset_logits():
    W, head, hidden, mask, targets, lens = two_rows()
    vocab = ctc_vocab(None, targets, blank_id=0)
    assert vocab.ids.tolist() == [0, 11, 30, 42] and vocab.blank == 0
    readout = ctc_readout(head, hidden, mask, vocab)
    assert readout.in_lens.tolist() == [7, 5]
    nll, n = ctc_loss(readout, targets, lens)
    # by hand: vocab [blank=0, 11, 30, 42] -> local ids
    lp = F.log_softmax(hidden @ W[:, vocab.ids], -1).transpose(0, 1)
    ref = F.ctc_loss(lp, torch.tensor([1, 2, 1, 3, 2]), torch.tensor([7, 5]), lens, blank=0, reduction="sum")
    assert n == 5 and torch.allclose(nll, ref, atol=1e-5)
    # a dropped row does not count; a row with too few frames (5 < 2 * 3 + 1) is left out
    nll1, n1 = ctc_loss(readout, targets, lens, rows=torch.tensor([False, True]))
    assert n1 == 2
    short = ctc_readout(head, hidden, mask, ctc_vocab(None, torch.tensor([1, 2, 3, 4]), 0))
    nll2, n2 = ctc_loss(short, torch.tensor([1, 2, 3, 4]), torch.tensor([1, 3]))
    assert n2 == 1


def test_ctc_over_a_shortlist_with_the_blank_inside_it():
    W, head, hidden, mask, targets, lens = two_rows()
    # the blank (the padding id, 9 here) sits at its sorted place: the loss uses that index
    short = torch.tensor([5, 9, 11, 30, 42])
    vocab = ctc_vocab(short, targets, blank_id=9)
    assert vocab.blank == 1
    nll, n = ctc_loss(ctc_readout(head, hidden, mask, vocab), targets, lens)
    lp = F.log_softmax(hidden @ W[:, short], -1).transpose(0, 1)
    ref = F.ctc_loss(lp, torch.tensor([2, 3, 2, 4, 3]), torch.tensor([7, 5]), lens, blank=1, reduction="sum")
    assert n == 5 and torch.allclose(nll, ref, atol=1e-5)
    # a row with a target outside the shortlist (42: row 1) is left out; the other is scored over the shortlist
    short4 = torch.tensor([5, 9, 11, 30])
    nll4, n4 = ctc_loss(ctc_readout(head, hidden, mask, ctc_vocab(short4, targets, 9)), targets, lens)
    lp4 = F.log_softmax(hidden[:1] @ W[:, short4], -1).transpose(0, 1)
    ref4 = F.ctc_loss(lp4, torch.tensor([2, 3, 2]), torch.tensor([7]), lens[:1], blank=1, reduction="sum")
    assert n4 == 3 and torch.allclose(nll4, ref4, atol=1e-5)
    with pytest.raises(ValueError, match="lacks the blank"):
        ctc_vocab(torch.tensor([5, 11, 30]), targets, blank_id=9)


def test_elf_s2t_loss_with_ctc_reaches_projector_and_token_head(tmp_path):
    from conftest import tiny_cfg
    from elfs2t.data.dataset import S2TDataset
    from elfs2t.s2t.elf_s2t import ElfS2T
    from feature_fixtures import make_feature_cuts

    cuts = make_feature_cuts(tmp_path, ["a dog ran", "the cat sat down", "yes"], dim=8)
    batch = S2TDataset()[cuts]
    model = ElfS2T(tiny_cfg(ctc_weight=0.5, flow={"decode_frac": 0.0, "p_drop": 0.0}))
    plain = ElfS2T(tiny_cfg(flow={"decode_frac": 0.0, "p_drop": 0.0}), text_space=model.text_space)
    plain.load_state_dict(model.state_dict())
    torch.manual_seed(0)
    loss, stats = model(batch)
    assert stats["ctc"] > 0 and torch.isfinite(loss)
    loss.backward()
    assert model.denoiser.unembed_kernel.grad.abs().sum() > 0  # no decoding rows: only CTC reaches the head
    assert model.projector.linear.weight.grad.abs().sum() > 0
    torch.manual_seed(0)
    loss0, stats0 = plain(batch)
    assert "ctc" not in stats0 and torch.allclose(loss0 + 0.5 * stats["ctc"], loss, atol=1e-4)
