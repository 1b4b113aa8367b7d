"""Checkpoint averaging (elfs2t.train.average): which checkpoints, the mean of their weights, what training keeps
for it (train.keep_last / keep_best, valid_loss.json), and the decode / load side (--average N)."""
import pytest
import torch

from _train_fixtures import make_loader, make_model, optim_cfg, train_cfg
from elfs2t.train.average import average_checkpoints, select_checkpoints
from elfs2t.train.checkpoint import CheckpointError, list_checkpoints, read_valid_losses, save_checkpoint
from elfs2t.train.trainer import Trainer


def _save(folder, step, w, loss=None, ids=(1, 2), keep_last=10, keep_best=0):
    state = {"step": step, "model": {"w": torch.full((2,), float(w)), "ids": torch.tensor(ids)},
             "valid_loss": loss}
    save_checkpoint(folder, state, keep_last=keep_last, keep_best=keep_best)


def test_select_last_or_best(tmp_path):
    for step, loss in ((10, 5.0), (20, 1.0), (30, 4.0), (40, 2.0), (50, None)):
        _save(tmp_path, step, step, loss)
    assert read_valid_losses(tmp_path) == {10: 5.0, 20: 1.0, 30: 4.0, 40: 2.0}
    assert [s for s, _ in select_checkpoints(tmp_path, 2, "last")] == [40, 50]
    assert [s for s, _ in select_checkpoints(tmp_path, 2, "best")] == [20, 40]  # oldest first
    with pytest.raises(CheckpointError) as err:
        select_checkpoints(tmp_path, 5, "best")
    assert str(err.value) == (f"{tmp_path}: --average 5 --average-by best needs 5 checkpoints, the folder holds 4 "
                              "checkpoint(s) with a validation loss; train with train.keep_best (and save_every a "
                              "multiple of valid_every) >= 5")
    with pytest.raises(CheckpointError, match=r"holds 5 checkpoint\(s\); train with train.keep_last >= 6"):
        select_checkpoints(tmp_path, 6, "last")


def test_average_is_the_mean_of_the_weights(tmp_path):
    for step, w in ((1, 1.0), (2, 2.0), (3, 6.0)):
        _save(tmp_path, step, w)
    state = average_checkpoints([p for _, p in list_checkpoints(tmp_path)])
    assert torch.equal(state["model"]["w"], torch.full((2,), 3.0)) and state["model"]["w"].dtype == torch.float32
    assert torch.equal(state["model"]["ids"], torch.tensor([1, 2])) and state["averaged_steps"] == [1, 2, 3]
    assert state["ema"] is None and state["step"] == 3
    _save(tmp_path, 4, 0.0, ids=(1, 3))
    with pytest.raises(CheckpointError, match=r"checkpoint-4.pt: ids differs from .*checkpoint-1.pt's"):
        average_checkpoints([p for _, p in list_checkpoints(tmp_path)])


def test_pruning_keeps_the_last_and_the_best(tmp_path):
    for step, loss in ((1, 5.0), (2, 1.0), (3, 4.0), (4, 2.0), (5, 3.0)):
        _save(tmp_path, step, step, loss, keep_last=1, keep_best=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 4, 5]
    assert read_valid_losses(tmp_path) == {2: 1.0, 4: 2.0, 5: 3.0}  # only the kept ones


def test_trainer_records_the_validation_loss_of_its_checkpoints(tmp_path):
    from elfs2t.train.checkpoint import load_checkpoint

    trainer = Trainer(make_model(), optim_cfg(), train_cfg(max_steps=10, valid_every=4, save_every=4, keep_last=3),
                      tmp_path / "exp", make_loader(), valid_loader=make_loader(shuffle=False))
    trainer.fit(resume=False)
    losses = read_valid_losses(tmp_path / "exp")
    assert sorted(losses) == [4, 8, 10]  # the last checkpoint (step 10) is validated before it is written
    for step, path in list_checkpoints(tmp_path / "exp"):
        assert load_checkpoint(path)["valid_loss"] == pytest.approx(losses[step])
    assert len(set(losses.values())) == 3


@pytest.mark.slow  # the tiny model of conftest.py
def test_decode_and_load_average_checkpoints(tiny_asr):
    """--average 3 decodes the mean of the last three checkpoints' raw weights (tag _avg3); by validation loss
    with --average-by best."""
    from elfs2t.bin import decode as decode_bin
    from elfs2t.inference.trained import load_experiment
    from elfs2t.train.checkpoint import load_checkpoint

    loaded = load_experiment(tiny_asr.exp, average=3)
    paths = [p for _, p in list_checkpoints(tiny_asr.exp)][-3:]
    states = [load_checkpoint(p)["model"] for p in paths]
    name = "projector.linear.weight"
    mean = sum(s[name].double() for s in states) / 3
    assert torch.allclose(loaded.model.state_dict()[name].double(), mean, atol=1e-6)
    assert loaded.weights == "average of 3 checkpoints (last: steps 32, 36, 40)"
    best = load_experiment(tiny_asr.exp, average=2, average_by="best").weights
    assert best.startswith("average of 2 checkpoints (best: steps ")
    assert decode_bin.main(["--exp-dir", str(tiny_asr.exp), "--set", f"train={tiny_asr.feats}", "--average", "3",
                            "decode.strategy=draft"]) == 0
    assert (tiny_asr.exp / "decode_draft_avg3" / "train" / "text").is_file()
