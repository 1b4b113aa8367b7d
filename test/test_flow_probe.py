"""Flow probe (elfs2t.analysis.flow_probe, elfs2t.bin.flow_probe): its formulas by hand, the probe end to end on a
tiny ELF-S2T whose CTC draft has learnt its texts, and the refusals."""
import copy
import math

import pytest
import torch
import yaml

from elfs2t.analysis.flow_probe import (TRAIN_T, channel_variance, check_probe_model, draft_matches, format_table,
                                        linear_probe_mse, run_probe, token_mean_oracle_mse)
from elfs2t.bin import flow_probe as flow_probe_bin
from elfs2t.config import ConfigError, structure
from elfs2t.data.dataset import S2TDataset
from elfs2t.experiment import ExperimentConfig
from elfs2t.s2t.elf_s2t import ElfS2T
from conftest import tiny_cfg
from feature_fixtures import make_feature_cuts

TEXTS = ["a dog ran", "the cat sat down", "yes", "a cat ran"]
SELF = {"hidden": 32, "depth": 2, "heads": 2, "bottleneck": 16, "prefix_attention": "self", "text_pos_scale": 1.0}


# --- the formulas, by hand ---------------------------------------------------------------------------------------
def test_token_mean_oracle_and_variance_by_hand():
    ids = torch.tensor([[1, 2, 1], [2, 3, 0]])
    x = torch.tensor([[[0.0, 2.0], [1.0, 1.0], [2.0, 0.0]], [[3.0, 3.0], [5.0, 5.0], [9.0, 9.0]]])
    mask = torch.tensor([[True, True, True], [True, True, False]])  # the last position (id 0) left out
    # id 1: (0, 2), (2, 0) -> mean (1, 1), squared errors 1 + 1 per position; id 2: (1, 1), (3, 3) -> mean (2, 2),
    # errors 1 + 1 per position; id 3 alone: 0. Over 5 positions x 2 channels: (4 * 2) / 10.
    assert token_mean_oracle_mse(ids, x, mask) == pytest.approx(0.8)
    assert token_mean_oracle_mse(torch.zeros_like(ids), x, mask) == pytest.approx(channel_variance(x[mask]))
    # channel 0 of the masked rows: 0, 1, 2, 3, 5 (mean 2.2); channel 1: 2, 1, 0, 3, 5 (mean 2.2)
    var0 = sum((v - 2.2) ** 2 for v in (0, 1, 2, 3, 5)) / 5
    var1 = sum((v - 2.2) ** 2 for v in (2, 1, 0, 3, 5)) / 5
    assert channel_variance(x[mask]) == pytest.approx((var0 + var1) / 2)


def test_linear_probe_finds_a_linear_map_and_holds_out_a_fifth():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(200, 5, generator=g)
    w, b = torch.randn(5, 3, generator=g), torch.tensor([1.0, -2.0, 0.5])
    mse, test = linear_probe_mse(feats, feats @ w + b, torch.Generator().manual_seed(1))
    assert mse < 1e-4 and test.numel() == 40 and test.unique().numel() == 40
    noise = torch.randn(200, 3, generator=g)  # nothing to read: the probe does about as well as the mean
    mse, test = linear_probe_mse(feats, noise, torch.Generator().manual_seed(1))
    assert mse == pytest.approx(channel_variance(noise[test]), rel=0.5)
    with pytest.raises(ValueError, match="at least 2 positions"):
        linear_probe_mse(feats[:1], noise[:1], g)


def test_draft_matches_whole_rows_only():
    ids = torch.tensor([[101, 5, 6, 102, 102], [101, 7, 102, 102, 102], [101, 8, 9, 102, 102]])
    draft = torch.tensor([[101, 5, 6, 102, 102], [101, 7, 7, 102, 102], [101, 8, 9, 102, 102]])
    assert draft_matches(draft, ids).tolist() == [True, False, True]
    with pytest.raises(ValueError, match="differ in shape"):
        draft_matches(draft[:, :4], ids)


# --- refusals and the CLI ----------------------------------------------------------------------------------------
def test_models_without_a_ctc_draft_are_refused_by_name():
    with pytest.raises(ConfigError, match=r"^exp/ar: the flow probe needs an ELF-S2T experiment, not model 'ar'$"):
        check_probe_model(ExperimentConfig(model="ar"), "exp/ar")
    with pytest.raises(ConfigError, match=r"^exp/plain: .*CTC draft \(elf.ctc_weight > 0\), got 0"):
        check_probe_model(ExperimentConfig(), "exp/plain")
    with pytest.raises(ConfigError, match=r"^exp/scale: .*text_positions: ctc, got 'scale'"):
        check_probe_model(structure(ExperimentConfig, {"elf": {"ctc_weight": 1.0}}), "exp/scale")


def test_cli_help_and_an_ar_experiment(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        flow_probe_bin.main(["--help"])
    assert exc.value.code == 0 and "--max-utts" in capsys.readouterr().out
    exp = tmp_path / "exp" / "ar"
    exp.mkdir(parents=True)
    (exp / "config.yaml").write_text(yaml.safe_dump({"model": "ar"}))
    assert flow_probe_bin.main(["--exp-dir", str(exp), "--set", f"x={tmp_path / 'cuts.jsonl.gz'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"flow_probe: error: {exp}: the flow probe needs an ELF-S2T experiment, not model 'ar'"]
    assert flow_probe_bin.main(["--exp-dir", str(tmp_path / "none"), "--set", "x=y"]) == 1  # no experiment there


# --- end to end --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(module_tmp):
    """A tiny ELF-S2T (CTC draft, text slots at the CTC alignment, slot_audio) trained until the draft of each of
    its four utterances is its text; its experiment config; the cuts; and a cut whose text is out of its shortlist
    (so that no draft can be it)."""
    torch.manual_seed(0)
    cuts = make_feature_cuts(module_tmp / "f", TEXTS, dim=8)
    model = ElfS2T(tiny_cfg(ctc_weight=1.0, text_positions="ctc", slot_audio=True, token_shortlist=True,
                            lowercase=True, denoiser=SELF))
    batch = S2TDataset(text_transform=str.lower)[cuts]
    model.set_token_shortlist(batch["text"])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for step in range(100):
        model.train()
        loss, _ = model(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 9 and _drafts_right(model, batch).all():
            break
    assert _drafts_right(model, batch).all()
    unseen = make_feature_cuts(module_tmp / "unseen", ["Zebra zebra"], dim=8).modify_ids(lambda i: f"unseen-{i}")
    return model, ExperimentConfig(model="elf_s2t", elf=model.cfg), cuts, unseen


def _drafts_right(model, batch, seed=0):
    """Rows whose greedy CTC draft (sampler noise seeded with ``seed``) is their text, computed here."""
    model.eval()
    with torch.no_grad():
        cond, mask = model.condition(batch)
        draft = model.draft(cond, mask, torch.Generator().manual_seed(seed))
    ids = model.text_space.tokenize(batch["text"])
    return torch.tensor([bool((draft.ids[b] == ids[b]).all()) for b in range(len(ids))])


def test_probe_end_to_end(trained):
    model, cfg, cuts, _ = trained
    res = run_probe(model, cfg, cuts, title="tiny / train", times=(0.1, 0.9), seed=3, show_progress=False)
    assert (res.rows_kept, res.rows_total) == (4, 4)
    batch = S2TDataset(text_transform=str.lower)[cuts]
    ids = model.text_space.tokenize(batch["text"])
    x, content = model.text_space.encode(ids), model.content_mask(ids)
    assert res.positions == {"content": int(content.sum()), "all": ids.numel()}
    assert res.variance["content"] == pytest.approx(channel_variance(x[content]), rel=1e-5)
    assert res.variance["all"] == pytest.approx(channel_variance(x.flatten(0, 1)), rel=1e-5)
    assert res.oracle["content"] == pytest.approx(token_mean_oracle_mse(ids, x, content), rel=1e-5)
    assert res.oracle["content"] < res.variance["content"]
    assert list(res.times) == ["0.1", "0.9", TRAIN_T]
    assert set(res.times["0.1"]) == {"mse_content", "mse_all", "token_acc"}  # velocities at the training times only
    train = res.times[TRAIN_T]
    assert train["vel_all"] >= train["mse_all"] and train["vel_content"] >= train["mse_content"]  # / (1 - t)^2
    assert all(0.0 <= r["token_acc"] <= 1.0 and math.isfinite(r["mse_all"]) for r in res.times.values())
    assert math.isfinite(res.linear["probe"]) and res.linear["positions"] == ids.numel() - int(0.8 * ids.numel())
    again = run_probe(model, cfg, cuts, title="tiny / train", times=(0.1, 0.9), seed=3, show_progress=False)
    assert again == res  # seeded
    table = format_table(res)
    assert "4 of 4 utterances kept" in table and "| token-mean oracle |" in table
    assert all(len(line) <= 120 for line in table.splitlines())


def test_x_hat_errors_are_against_the_true_latents(trained):
    """With the flow head zeroed (x_hat = 0; the CTC draft does not read it) every x_hat MSE is the latents' mean
    square, at every t, and the velocity MSE at the training times is larger by 1 / (1 - t)^2 >= 1."""
    model, cfg, cuts, _ = trained
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        zeroed.denoiser.final_layer.linear.weight.zero_()
        zeroed.denoiser.final_layer.linear.bias.zero_()
    res = run_probe(zeroed, cfg, cuts, title="zeroed", times=(0.1, 0.7), show_progress=False)
    ids = model.text_space.tokenize(S2TDataset(text_transform=str.lower)[cuts]["text"])
    x, content = model.text_space.encode(ids), model.content_mask(ids)
    for r in res.times.values():
        assert r["mse_content"] == pytest.approx(float(x[content].pow(2).mean()), rel=1e-5)
        assert r["mse_all"] == pytest.approx(float(x.pow(2).mean()), rel=1e-5)
    assert res.times[TRAIN_T]["vel_all"] > res.times[TRAIN_T]["mse_all"]


def test_probe_keeps_only_the_rows_whose_draft_is_their_text(trained):
    model, cfg, cuts, unseen = trained
    both = cuts + unseen
    assert not _drafts_right(model, S2TDataset(text_transform=str.lower)[unseen]).any()
    res = run_probe(model, cfg, both, title="tiny", times=(0.5,), show_progress=False)
    assert (res.rows_kept, res.rows_total) == (4, 5)
    alone = run_probe(model, cfg, cuts, title="tiny", times=(0.5,), show_progress=False)
    for key in ("content", "all"):  # the same kept positions
        assert res.variance[key] == pytest.approx(alone.variance[key])
        assert res.oracle[key] == pytest.approx(alone.oracle[key])
    assert run_probe(model, cfg, both, title="tiny", times=(0.5,), max_utts=2, max_cuts=1,
                     show_progress=False).rows_total == 2


def test_no_right_draft_is_an_error(trained):
    model, cfg, _, unseen = trained
    with pytest.raises(ConfigError, match=r"^tiny: no utterance of 1 has a CTC draft equal to its text"):
        run_probe(model, cfg, unseen, title="tiny", show_progress=False)
