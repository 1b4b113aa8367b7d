"""Checkpoint files: bit-exact round trip, previous kept, atomic writes, corrupt fallback, exp dirs."""
import random
import warnings

import numpy as np
import pytest
import torch

from _train_fixtures import make_loader, make_model, optim_cfg, train_cfg
from elfs2t.config import ConfigError, structure
from elfs2t.train.checkpoint import (CheckpointError, list_checkpoints, load_checkpoint, load_latest, rng_state,
                                     save_checkpoint, set_rng_state)
from elfs2t.train.config import TrainConfig
from elfs2t.train.exp_dir import ExpDirError, config_diff, prepare_exp_dir
from elfs2t.train.trainer import Trainer


def _assert_equal(a, b, path="state"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _assert_equal(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_equal(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), path
    else:
        assert a == b, path


def test_trainer_checkpoint_round_trip_is_bit_exact(tmp_path):
    trainer = Trainer(make_model(), optim_cfg(), train_cfg(max_steps=5, save_every=100), tmp_path / "exp",
                      make_loader())
    trainer.fit(resume=False)
    saved = load_checkpoint(tmp_path / "exp" / "last.pt")
    assert saved["step"] == 5 and saved["format"] == "elfs2t-checkpoint"
    live = trainer.state_dict()
    for key in ("model", "ema", "optimizer", "scheduler", "sampler", "epoch", "batches_in_epoch"):
        _assert_equal(live[key], saved[key], key)
    assert any(len(s) for s in saved["optimizer"]["state"].values())  # momentum / Adam moments are there

    other = Trainer(make_model(seed=99), optim_cfg(), train_cfg(max_steps=5), tmp_path / "exp", make_loader())
    assert other.resume() and other.step == 5
    reloaded = other.state_dict()
    for key in ("model", "ema", "optimizer", "scheduler", "sampler"):
        _assert_equal(live[key], reloaded[key], key)


def test_rng_state_round_trip():
    state = rng_state()
    a = (random.random(), np.random.rand(), torch.rand(3))
    set_rng_state(state)
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


def test_previous_kept_no_temp_files_and_pruning(tmp_path):
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, {"step": step, "w": torch.full((2,), float(step))}, keep_last=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 3]
    assert not list(tmp_path.glob("*.tmp"))
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 3
    assert torch.equal(load_latest(tmp_path)["w"], torch.full((2,), 3.0))


def test_corrupt_last_falls_back_to_previous_with_warning(tmp_path):
    for step in (4, 8):
        save_checkpoint(tmp_path, {"step": step}, keep_last=2)
    (tmp_path / "last.pt").unlink()
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint, a crash left this")
    with pytest.warns(RuntimeWarning, match="last.pt"):
        state = load_latest(tmp_path)
    assert state["step"] == 8 and state["path"].endswith("checkpoint-8.pt")
    (tmp_path / "checkpoint-8.pt").write_bytes(b"\x00" * 10)  # truncated newest as well
    with pytest.warns(RuntimeWarning):
        assert load_latest(tmp_path)["step"] == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_latest(tmp_path / "nothing") is None


def test_foreign_file_is_refused_with_its_name(tmp_path):
    torch.save({"model": {}}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="x.pt"):
        load_checkpoint(tmp_path / "x.pt")


def test_exp_dir_refuses_a_different_config(tmp_path):
    exp = tmp_path / "exp" / "tag"
    cfg = TrainConfig(max_steps=10, seed=1)
    prepare_exp_dir(exp, cfg, argv=["-m", "elfs2t.bin.train", "--tag", "tag"])
    assert (exp / "config.yaml").is_file() and (exp / "config.hash").read_text().strip()
    assert "elfs2t.bin.train" in (exp / "cmd.txt").read_text()
    prepare_exp_dir(exp, TrainConfig(max_steps=20, seed=1), argv=["again"])  # longer run: allowed
    assert (exp / "cmd.txt").read_text().count("# ") == 2
    save_checkpoint(exp, {"step": 1})  # a checkpoint of seed 1: another seed would resume it
    with pytest.raises(ExpDirError, match=r"seed: 1 -> 2"):
        prepare_exp_dir(exp, TrainConfig(max_steps=20, seed=2), argv=[])
    prepare_exp_dir(exp, TrainConfig(max_steps=20, seed=2), argv=[], overwrite=True)
    assert "seed: 2" in (exp / "config.yaml").read_text()


def test_config_diff_and_train_config_validation():
    assert config_diff({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3, "d": 4}}) == {
        "a.c": (2, 3), "a.d": ("<absent>", 4)}
    # a setting added later with a null default (e.g. data.train[i].task) does not block reusing an older folder
    old = {"data": {"train": [{"cuts": "a", "target": "transcript"}]}}
    assert config_diff(old, {"data": {"train": [{"cuts": "a", "target": "transcript", "task": None}]}}) == {}
    assert config_diff(old, {"data": {"train": [{"cuts": "a", "target": "transcript", "task": "asr"}]}}) == {
        "data.train.0.task": ("<absent>", "asr")}
    assert config_diff(old, {"data": {"train": [{"cuts": "a", "target": "transcript"}, {"cuts": "b"}]}}) == {
        "data.train.1.cuts": ("<absent>", "b")}
    with pytest.raises(ConfigError, match="grad_accum"):
        structure(TrainConfig, {"grad_accum": 0})
    with pytest.raises(ConfigError, match="max_steps"):
        structure(TrainConfig, {"max_steps": 0, "max_epochs": 0})
