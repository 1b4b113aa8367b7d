"""CTC forced alignment by hand, and the text-slot positions it gives."""
import math

import pytest
import torch

from elfs2t.s2t.ctc_align import ctc_align, ctc_align_confident, slot_positions


def _log_probs(frames: list[list[float]]) -> torch.Tensor:
    p = torch.tensor(frames)
    return (p / p.sum(-1, keepdim=True)).log()


def test_ctc_align_finds_the_best_path_by_hand():
    # V = 3 (0 blank), 6 frames; the posteriors put token 1 on frames 1-2 and token 2 on frame 4
    lp = _log_probs([[.8, .1, .1], [.1, .8, .1], [.2, .7, .1], [.8, .1, .1], [.1, .1, .8], [.8, .1, .1]])
    assert ctc_align(lp[None], torch.tensor([6]), [[1, 2]], blank=0) == [[1, 4]]
    # a repeated label needs a blank in between: 1 1 on frames 1 and 4 with frames 2-3 blank
    lp2 = _log_probs([[.8, .1, .1], [.1, .8, .1], [.8, .1, .1], [.8, .1, .1], [.1, .8, .1], [.8, .1, .1]])
    assert ctc_align(lp2[None], torch.tensor([6]), [[1, 1]], blank=0) == [[1, 4]]
    # the alignment is forced: token 2 must come out even where it is unlikely, within the valid frames only
    lp3 = _log_probs([[.1, .8, .1], [.8, .1, .1], [.8, .1, .1], [.1, .1, .8], [.1, .1, .8], [.1, .1, .8]])
    assert ctc_align(lp3[None], torch.tensor([3]), [[1, 2]], blank=0) == [[0, 1]] or \
        ctc_align(lp3[None], torch.tensor([3]), [[1, 2]], blank=0) == [[0, 2]]


def test_each_aligned_token_keeps_its_span_and_its_highest_posterior_over_it():
    lp = _log_probs([[.8, .1, .1], [.2, .7, .1], [.1, .8, .1], [.8, .1, .1], [.1, .1, .8], [.8, .1, .1]])
    (row, short) = ctc_align_confident(torch.stack([lp, lp]), torch.tensor([6, 1]), [[1, 2], [1, 1]], blank=0)
    assert [(f, last) for f, last, _ in row] == [(1, 2), (4, 4)]
    assert [c for _, _, c in row] == [pytest.approx(0.8), pytest.approx(0.8)]  # token 1: max(0.7, 0.8), not its first frame's
    assert short == []  # does not fit


def test_ctc_align_batches_rows_of_different_lengths_and_refuses_what_does_not_fit():
    lp = _log_probs([[.8, .1, .1], [.1, .8, .1], [.2, .7, .1], [.8, .1, .1], [.1, .1, .8], [.8, .1, .1]])
    batch = torch.stack([lp, lp, lp])
    out = ctc_align(batch, torch.tensor([6, 2, 6]), [[1, 2], [1, 1], []], blank=0)
    assert out[0] == [1, 4]
    assert out[1] == []  # 1 1 needs 3 frames, the row has 2
    assert out[2] == []  # no target


def test_slot_positions_place_content_slots_at_their_frames():
    pos = slot_positions([[3, 7, 8], []], length=7, scale=2.0, offset=1, shift=1)
    # row 0: BOS at 0, tokens at frames + shift, the tail every 2 positions after the last token
    assert pos[0].tolist() == [0, 4, 8, 9, 11, 13, 15]
    assert pos[1].tolist() == [round(i * 2.0) for i in range(7)]  # no frames: the scaled default
    cut = slot_positions([list(range(10))], length=4, scale=1.5, offset=0, shift=0)
    assert cut[0].tolist() == [0, 1, 2, 4]  # content cut to what fits before the final EOS slot, which follows it
    assert not math.isnan(float(cut.float().sum()))


# --- ELF-S2T with elf.text_positions: ctc -----------------------------------------------------------------
import pytest  # noqa: E402

from elfs2t.config import ConfigError  # noqa: E402
from elfs2t.s2t.elf_s2t import ElfS2T  # noqa: E402
from conftest import decoding, tiny_cfg  # noqa: E402

SELF = {"hidden": 32, "depth": 2, "heads": 2, "bottleneck": 16, "prefix_attention": "self", "text_pos_scale": 1.5}


def test_ctc_positions_need_the_ctc_and_a_self_attending_condition():
    with pytest.raises(ConfigError, match="text_positions"):
        tiny_cfg(text_positions="ctc", denoiser=SELF)  # no CTC
    with pytest.raises(ConfigError, match="text_positions"):
        tiny_cfg(text_positions="ctc", ctc_weight=1.0)  # prefix_attention: full
    tiny_cfg(text_positions="ctc", ctc_weight=1.0, denoiser=SELF)


def test_ctc_positions_training_is_the_full_forward_with_the_text_slots_moved(batch, monkeypatch):  # noqa: F811
    flow = {"decode_frac": 0.5, "p_drop": 0.3, "self_cond_prob": 0.5}
    ref = ElfS2T(tiny_cfg(ctc_weight=1.0, denoiser=SELF, flow=flow))
    model = ElfS2T(tiny_cfg(ctc_weight=1.0, denoiser=SELF, flow=flow, text_positions="ctc"), text_space=ref.text_space)
    model.load_state_dict(ref.state_dict())
    seen = []
    default = torch.stack([(torch.arange(8) * 1.5).round().long()] * 3)

    def scale_positions(readout, targets, length, rows):
        seen.append(rows.clone())
        return default, [0, 0, 0]

    monkeypatch.setattr(model, "_aligned_positions", scale_positions)
    for seed in range(6):  # some seeds drop a row's audio (p_drop 0.3): the split forward must zero it too
        torch.manual_seed(seed)
        loss_ref, stats_ref = ref(batch)
        torch.manual_seed(seed)
        loss, stats = model(batch)
        # with the scale's own positions the split forward (condition first, then the text) is the full forward
        assert float(loss.detach()) == pytest.approx(float(loss_ref.detach()), rel=1e-5)
        assert stats["ctc"] == pytest.approx(stats_ref["ctc"], rel=1e-5)
    assert any(not bool(rows.all()) for rows in seen)  # a dropped row was among them
    loss.backward()
    assert model.projector.linear.weight.grad.abs().sum() > 0


def test_aligned_positions_follow_the_ctc_alignment_of_the_true_text(batch, monkeypatch):  # noqa: F811
    model = ElfS2T(tiny_cfg(ctc_weight=1.0, denoiser=SELF, text_positions="ctc", token_shortlist=True)).eval()
    ts = model.text_space
    model.set_token_shortlist([t.lower() for t in batch["text"]])
    ids = ts.tokenize([t.lower() for t in batch["text"]])
    cond, mask = model.condition(batch)
    C = cond.shape[1]
    # script the audio slots' posteriors: row b says its tokens one per two slots, starting at slot 1
    vocab = model.vocab

    def fake_logits(hidden, v=None):
        out = torch.full((hidden.shape[0], hidden.shape[1], vocab.numel()), -10.0)
        blank = int((vocab == ts.pad_id).nonzero())
        out[..., blank] = 0.0
        for b in range(hidden.shape[0]):
            toks = [t for t in ids[b].tolist() if t not in (ts.bos_id, ts.eos_id)]
            for j, tok in enumerate(toks):
                out[b, 1 + 2 * j, int((vocab == tok).nonzero())] = 10.0
        return out

    monkeypatch.setattr(model.denoiser, "token_logits", fake_logits)
    targets = model._ctc_targets(ids, batch["text"])
    pos, lengths = model._aligned_positions(model._ctc_readout(cond, mask, targets), targets, ids.shape[1],
                                            torch.tensor([True, False, True]))
    n0 = model.count_tokens(batch["text"][0])
    assert lengths[0] == n0 and lengths[1] == 0  # aligned content slots; none for a dropped row
    assert pos[0, 1:1 + n0].tolist() == [1 + 2 * j for j in range(n0)]  # at the aligned slots (no task token)
    assert pos[1].tolist() == [round(i * 1.5) for i in range(8)]  # a dropped row keeps the scale's positions
    assert C >= 2 * n0


def test_decodings_read_at_the_draft_positions_and_cfg_gives_the_unconditional_branch_the_prior(batch, monkeypatch):  # noqa: F811,E501
    model = ElfS2T(tiny_cfg(ctc_weight=1.0, denoiser=SELF, text_positions="ctc")).eval()
    given = []
    real = model.denoiser.forward

    def spy(*args, **kw):
        given.append(kw.get("text_pos"))
        return real(*args, **kw)

    monkeypatch.setattr(model.denoiser, "forward", spy)
    cond, mask = model.condition(batch)
    draft = model.draft(cond, mask, torch.Generator().manual_seed(0))
    for strategy, settings in (("refine", dict(steps=1, t_start=0.8)), ("flow", dict(steps=2)), ("readout", {})):
        given.clear()
        model.generate(batch, decoding(model, strategy, **settings), generator=torch.Generator().manual_seed(0))
        used = [p for p in given if p is not None]
        assert used and all(torch.equal(p.cpu(), draft.text_pos.cpu()) for p in used), strategy
    given.clear()  # CFG: one forward over 2B rows, the conditional ones at the draft's positions, the others at the prior
    model.generate(batch, decoding(model, "flow", steps=2, guidance=2.0), generator=torch.Generator().manual_seed(0))
    both = [p for p in given if p is not None and p.shape[0] == 6]
    prior = model.prior_positions(3)
    assert len(both) == 2 and all(torch.equal(p[:3].cpu(), draft.text_pos.cpu()) and torch.equal(p[3:].cpu(), prior)
                                  for p in both)
