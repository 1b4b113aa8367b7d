"""The training loop: kill-and-resume continues identically, accumulation, validation, logs, budgets."""
import pytest
import torch
from torch.utils.data import DataLoader

from _train_fixtures import RegressionDataset, make_cuts, make_loader, make_model, optim_cfg, train_cfg
from elfs2t.train.checkpoint import list_checkpoints, load_checkpoint
from elfs2t.train.data import build_sampler
from elfs2t.train.trainer import Trainer, batch_size_of


class Crash(RuntimeError):
    pass


class CrashingModel(torch.nn.Module):
    """Wraps a model and raises on the n-th training forward, like a process killed mid-run."""

    def __init__(self, inner, crash_at):
        super().__init__()
        self.inner, self.crash_at, self.calls = inner, crash_at, 0

    def forward(self, batch):
        if self.training:
            self.calls += 1
            if self.calls == self.crash_at:
                raise Crash("killed")
        return self.inner(batch)


def _params(trainer):
    return {k: v.detach().clone() for k, v in trainer.module.state_dict().items()}


def _run(exp, loader_fn, *, crash_at=None, resume=False, **cfg):
    model = make_model()
    if crash_at is not None or resume:
        model = CrashingModel(model, crash_at or -1)
    trainer = Trainer(model, optim_cfg(), train_cfg(**cfg), exp, loader_fn())
    return trainer, trainer.fit(resume=resume)


def _strip(state):  # straight runs have no wrapper: compare inner weights
    return {k.removeprefix("inner."): v for k, v in state.items()}


@pytest.mark.parametrize("grad_accum,num_workers", [(1, 0), (2, 2)])
def test_kill_and_resume_continues_identically(tmp_path, grad_accum, num_workers):
    loader = lambda: make_loader(n=40, max_cuts=4, num_workers=num_workers)  # noqa: E731  (10 batches / epoch)
    straight, out = _run(tmp_path / "a", loader, grad_accum=grad_accum)
    assert out["step"] == 12 and len(out["losses"]) == 12 and out["epoch"] >= 1  # crosses epochs
    with pytest.raises(Crash):  # dies during step 7, after the checkpoint at step 4
        _run(tmp_path / "b", loader, crash_at=6 * grad_accum + 1, grad_accum=grad_accum)
    assert [s for s, _ in list_checkpoints(tmp_path / "b")] == [4]
    resumed, out2 = _run(tmp_path / "b", loader, resume=True, grad_accum=grad_accum)
    assert out2["resumed"] and out2["step"] == 12
    assert out2["losses"] == out["losses"][4:]  # same data order, same noise, same updates
    assert all(torch.equal(a, b) for a, b in zip(_params(straight).values(), _strip(_params(resumed)).values()))
    saved = load_checkpoint(tmp_path / "b" / "last.pt")
    assert saved["step"] == 12
    assert saved["epoch"] == load_checkpoint(tmp_path / "a" / "last.pt")["epoch"]
    assert saved["batches_in_epoch"] == load_checkpoint(tmp_path / "a" / "last.pt")["batches_in_epoch"]


def test_resume_without_sampler_state_skips_batches(tmp_path):
    """A plain DataLoader (RandomSampler, no state_dict): re-seeded epoch + skipped batches."""
    data = [{"x": torch.randn(4), "y": torch.randn(1)} for _ in range(30)]
    loader = lambda: DataLoader(data, batch_size=3, shuffle=True)  # noqa: E731
    _, out = _run(tmp_path / "a", loader, max_steps=14, save_every=5)
    with pytest.raises(Crash):
        _run(tmp_path / "b", loader, crash_at=8, max_steps=14, save_every=5)
    _, out2 = _run(tmp_path / "b", loader, resume=True, max_steps=14, save_every=5)
    assert out2["losses"] == out["losses"][5:]


def test_validation_uses_ema_logs_and_does_not_disturb_training(tmp_path):
    calls = []

    def hook(model, step):
        calls.append(step)
        return {"hyp_0": "a decoded example", "wer": 12.5}

    t_plain = Trainer(make_model(), optim_cfg(), train_cfg(max_steps=6), tmp_path / "plain", make_loader())
    plain = t_plain.fit(resume=False)
    valid_loader = make_loader(n=8, shuffle=False)
    t_val = Trainer(make_model(), optim_cfg(), train_cfg(max_steps=6, valid_every=3), tmp_path / "val",
                    make_loader(), valid_loader=valid_loader, on_validate=hook)
    out = t_val.fit(resume=False)
    assert out["losses"] == plain["losses"]
    assert calls == [3, 6]
    assert out["valid"]["wer"] == 12.5 and out["valid"]["valid_loss"] > 0
    # validation runs with EMA weights and restores the trained ones afterwards
    with t_val.ema.swapped(t_val.module):
        expected = t_val.validate()["valid_loss"]
    assert out["valid"]["valid_loss"] == pytest.approx(expected)
    assert calls == [3, 6, 6]
    log = (tmp_path / "val" / "train.log").read_text()
    assert "validation" in log and "loss=" in log and "lr_muon=" in log and "lr_adam=" in log
    assert list((tmp_path / "val" / "tensorboard").glob("events.out.tfevents.*"))


def test_max_epochs_and_time_budget_stop(tmp_path):
    t = Trainer(make_model(), optim_cfg(), train_cfg(max_steps=0, max_epochs=2), tmp_path / "e", make_loader(n=12))
    out = t.fit(resume=False)
    assert out["stopped_by"] == "max_epochs" and out["step"] == 6  # 3 batches per epoch
    t2 = Trainer(make_model(), optim_cfg(), train_cfg(max_steps=1000, max_minutes=1e-9), tmp_path / "t",
                 make_loader())
    out2 = t2.fit(resume=False)
    assert out2["stopped_by"] == "max_minutes" and out2["step"] == 0


def test_a_resumed_time_budgeted_run_continues_its_schedule(tmp_path, monkeypatch):
    """The checkpoint carries the run's training seconds: a resumed run counts them against max_minutes (its
    learning-rate decay and begin_step curricula continue instead of starting over), and a run whose budget is
    spent stops at once."""
    clock = [1000.0]
    monkeypatch.setattr(Trainer, "clock", staticmethod(lambda: clock[0]))
    model = make_model()
    seen = []
    model.begin_step = lambda step, progress: (seen.append(progress), clock.__setitem__(0, clock[0] + 6.0))
    t = Trainer(model, optim_cfg(), train_cfg(max_steps=4, max_minutes=1.0), tmp_path / "r", make_loader())
    assert t.fit(resume=False)["stopped_by"] == "max_steps"
    assert seen == pytest.approx([0.0, 0.25, 0.5, 0.75])  # steps are further than 6 s per step of 60 s
    saved = load_checkpoint(tmp_path / "r" / "last.pt")
    assert saved["train_seconds"] == pytest.approx(24.0)  # 4 steps x 6 s
    model2 = make_model()
    seen2 = []
    model2.begin_step = lambda step, progress: (seen2.append(progress), clock.__setitem__(0, clock[0] + 6.0))
    t2 = Trainer(model2, optim_cfg(), train_cfg(max_steps=100, max_minutes=1.0), tmp_path / "r", make_loader())
    out = t2.fit(resume=True)
    # 24 s before the resume, then 6 s per step: progress 0.4, 0.5, ... and the budget is past after 66 s
    assert seen2[:3] == pytest.approx([0.4, 0.5, 0.6]) and out["stopped_by"] == "max_minutes" and out["step"] == 11
    assert "0.4 of the 1.0 training minutes were spent before this resume" in (tmp_path / "r" / "train.log").read_text()
    t3 = Trainer(make_model(), optim_cfg(), train_cfg(max_steps=100, max_minutes=1.0), tmp_path / "r", make_loader())
    out3 = t3.fit(resume=True)
    assert out3["stopped_by"] == "max_minutes" and out3["step"] == 11 and out3["losses"] == []


def test_learning_rate_decays_with_the_run_progress(tmp_path, caplog):
    # steps budget: progress = step / max_steps; the rate falls linearly over the last half to 0
    t = Trainer(make_model(), optim_cfg(warmup_steps=0, decay_frac=0.5), train_cfg(max_steps=8), tmp_path / "s",
                make_loader(n=64))
    lrs = []
    step = t._train_step

    def spy(batches):
        lrs.append(t.optimizer.param_groups[0]["lr"])
        return step(batches)

    t._train_step = spy
    t.fit(resume=False)
    base = 0.02
    assert lrs == pytest.approx([base] * 5 + [base * 0.75, base * 0.5, base * 0.25])
    # time budget: progress is the run's elapsed share of max_minutes, the further of the two
    t2 = Trainer(make_model(), optim_cfg(), train_cfg(max_steps=100, max_minutes=2.0), tmp_path / "t", make_loader())
    t2._elapsed = 60.0
    assert t2.progress(80) == pytest.approx(0.8)  # the steps lead: a repeatable run
    assert t2.progress(49) == pytest.approx(0.5) and not t2._clock_leads  # less than a step ahead: not yet
    with caplog.at_level("WARNING", logger="elfs2t.train.trainer"):
        assert t2.progress(10) == pytest.approx(0.5)
        assert t2.progress(11) == pytest.approx(0.5)
    assert [r.getMessage() for r in caplog.records].count(
        "step 10: the clock (1.00 of 2.0 min) is ahead of the step budget (10 of 100 steps): the schedule follows "
        "the clock from here, so this run will not repeat exactly") == 1


def test_begin_step_hook_gets_the_step_and_progress(tmp_path):
    model = make_model()
    calls = []
    model.begin_step = lambda step, progress: calls.append((step, progress))
    Trainer(model, optim_cfg(), train_cfg(max_steps=4), tmp_path / "h", make_loader()).fit(resume=False)
    assert calls == [(0, 0.0), (1, 0.25), (2, 0.5), (3, 0.75)]


def test_nan_loss_is_an_error_naming_the_step(tmp_path):
    class NanModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, batch):
            return self.w.sum() * float("nan"), {}

    t = Trainer(NanModel(), optim_cfg(), train_cfg(), tmp_path / "n", make_loader())
    with pytest.raises(FloatingPointError, match="step 1"):
        t.fit(resume=False)


def test_batch_size_of():
    assert batch_size_of({"cut_ids": ["a", "b"]}) == 2
    assert batch_size_of({"text": ["a"], "x": torch.zeros(5)}) == 1
    assert batch_size_of({"x": torch.zeros(3, 2)}) == 3
    assert batch_size_of({"x": torch.zeros(3, 2)}, {"num_samples": 7.0}) == 7
    assert batch_size_of(RegressionDataset()[make_cuts(5)]) == 5


def test_empty_training_data_is_an_error(tmp_path):
    t = Trainer(make_model(), optim_cfg(), train_cfg(max_steps=3), tmp_path / "x", DataLoader([], batch_size=2))
    with pytest.raises(RuntimeError, match="no batches"):
        t.fit(resume=False)


def test_sampler_ranks_split_the_data_and_drop_last_in_ddp():
    cuts = make_cuts(21)
    ranks = [build_sampler(cuts, max_cuts=2, shuffle=True, seed=3, rank=r, world_size=2) for r in (0, 1)]
    assert all(s.drop_last for s in ranks)
    seen = [[c.id for batch in s for c in batch] for s in ranks]
    assert not set(seen[0]) & set(seen[1]) and len(seen[0]) == len(seen[1])
    assert not build_sampler(cuts, max_cuts=2).drop_last
    valid = [build_sampler(cuts, max_cuts=2, shuffle=False, rank=r, world_size=2, drop_last=False) for r in (0, 1)]
    counts = [sum(1 for _ in s) for s in valid]
    assert counts[0] == counts[1] and sum(len(b) for b in valid[0]) + sum(len(b) for b in valid[1]) >= 21
    with pytest.raises(ValueError, match="max_duration"):
        build_sampler(cuts)
    with pytest.raises(ValueError, match="num_buckets"):
        build_sampler(cuts, max_cuts=2, num_buckets=1)


def test_bfloat16_autocast_when_asked(tmp_path):
    seen = []

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 1)

        def forward(self, batch):
            out = self.lin(batch["x"])
            seen.append(out.dtype)
            return (out.float() - batch["y"]).pow(2).mean(), {}

    Trainer(Probe(), optim_cfg(), train_cfg(max_steps=1, dtype="bfloat16"), tmp_path / "bf", make_loader()).fit()
    Trainer(Probe(), optim_cfg(), train_cfg(max_steps=1, dtype="auto"), tmp_path / "auto", make_loader()).fit()
    assert seen == [torch.bfloat16, torch.float32]  # auto = float32 on CPU


def test_tiny_set_is_sampled_without_buckets():
    """A one-cut dev set cannot be bucketed: it still yields its cut (and its sampler state round-trips)."""
    cuts = make_cuts(1)
    sampler = build_sampler(cuts, max_duration=100.0, shuffle=False, num_buckets=4)
    assert [[c.id for c in batch] for batch in sampler] == [[cuts[0].id]]
    assert sampler.state_dict()["max_duration"] == 100.0
