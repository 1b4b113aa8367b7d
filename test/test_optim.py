"""Optimiser building (parameter split, lr rule), warm-up schedule and the weight EMA."""
import pytest
import torch
from torch import nn

from elfs2t.config import ConfigError, structure
from elfs2t.optim.build import (OptimConfig, build_optimizer, build_scheduler, decay_factor, resolve_lr,
                                split_params)
from elfs2t.optim.ema import Ema
from elfs2t.optim.muon import Muon


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.proj = nn.Linear(4, 6)
        self.norm = nn.LayerNorm(6)
        self.tokens = nn.Parameter(torch.zeros(3, 6))
        self.conv = nn.Conv1d(6, 2, 3)
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self.register_buffer("running", torch.zeros(2))


def test_split_every_2d_weight_to_muon_rest_to_adam():
    muon, adam = split_params(Tiny())
    assert sorted(n for n, _ in muon) == ["embed.weight", "proj.weight", "tokens"]
    assert sorted(n for n, _ in adam) == ["conv.bias", "conv.weight", "norm.bias", "norm.weight", "proj.bias"]
    muon, adam = split_params(Tiny(), ["embed"])
    assert "embed.weight" in {n for n, _ in adam}


def test_build_muon_is_one_optimizer_with_two_group_kinds():
    model = Tiny()
    cfg = OptimConfig(name="muon", lr=None, lr_per_256=1e-3, muon_lr=0.02)
    opt = build_optimizer(model, cfg, batch_size=512)
    assert isinstance(opt, Muon)
    kinds = {g["use_muon"]: g for g in opt.param_groups}
    assert kinds[True]["lr"] == pytest.approx(0.02)
    assert kinds[False]["lr"] == pytest.approx(2e-3)  # 1e-3 x 512 / 256
    n_opt = sum(len(g["params"]) for g in opt.param_groups)
    assert n_opt == sum(1 for p in model.parameters() if p.requires_grad)


def test_adamw_and_lr_rule():
    opt = build_optimizer(Tiny(), OptimConfig(name="adamw", lr=3e-4))
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["lr"] == 3e-4
    assert resolve_lr(OptimConfig(lr_per_256=1e-3), 64) == pytest.approx(2.5e-4)
    with pytest.raises(ConfigError, match="batch"):
        resolve_lr(OptimConfig(), None)


def test_config_validation_names_key():
    with pytest.raises(ConfigError, match="momentum"):
        structure(OptimConfig, {"momentum": 1.5})
    with pytest.raises(ConfigError, match="name"):
        structure(OptimConfig, {"name": "sgd"})


def test_warmup_then_constant_by_hand():
    p = nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=0.8)
    sched = build_scheduler(opt, OptimConfig(warmup_steps=4))
    seen = []
    for _ in range(6):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.2, 0.4, 0.6, 0.8, 0.8, 0.8])
    opt2 = torch.optim.SGD([p], lr=0.8)
    sched2 = build_scheduler(opt2, OptimConfig(warmup_steps=4))
    sched2.load_state_dict(sched.state_dict())
    opt2.param_groups[0]["lr"] = sched2.get_last_lr()[0]
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.8)
    no_warm = build_scheduler(torch.optim.SGD([p], lr=0.5), OptimConfig(warmup_steps=0))
    assert no_warm.get_last_lr() == [0.5]


def test_decay_factor_by_hand():
    # decay over the last 40% of the run down to 0.1 x lr
    assert decay_factor(0.0, 0.4, 0.1) == 1.0
    assert decay_factor(0.6, 0.4, 0.1) == pytest.approx(1.0)
    assert decay_factor(0.8, 0.4, 0.1) == pytest.approx(0.55)  # half-way: 1 - 0.9 * 0.5
    assert decay_factor(1.0, 0.4, 0.1) == pytest.approx(0.1)
    assert decay_factor(1.7, 0.4, 0.1) == pytest.approx(0.1)  # clamped
    assert decay_factor(0.9, 0.0, 0.1) == 1.0  # no decay


def test_warmup_stable_decay_follows_progress():
    p = nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = build_scheduler(opt, OptimConfig(warmup_steps=2, decay_frac=0.5), progress=lambda step: step / 8)
    seen = []
    for _ in range(8):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # warm-up 0.5, 1; stable until progress 0.5 (step 4); then 1 - (p - 0.5) / 0.5
    assert seen == pytest.approx([0.5, 1.0, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25])
    with pytest.raises(ValueError, match="progress"):
        build_scheduler(torch.optim.SGD([p], lr=1.0), OptimConfig(decay_frac=0.5))
    with pytest.raises(ConfigError, match="decay_frac"):
        structure(OptimConfig, {"decay_frac": 1.5})


def test_ema_formula_by_hand():
    lin = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    ema = Ema(lin, decay=0.9)
    with torch.no_grad():
        lin.weight.fill_(3.0)
    ema.update(lin)  # 0.9 * 1 + 0.1 * 3
    assert ema.shadow["weight"].item() == pytest.approx(1.2)
    with torch.no_grad():
        lin.weight.fill_(0.0)
    ema.update(lin)
    assert ema.shadow["weight"].item() == pytest.approx(1.08)


def test_ema_warmup_decay():
    lin = nn.Linear(1, 1)
    ema = Ema(lin, decay=0.9999, warmup=True)
    assert ema.current_decay() == pytest.approx(2 / 11)
    ema.update(lin)
    assert ema.current_decay() == pytest.approx(3 / 12)


def test_ema_swap_restores_and_handles_buffers_and_frozen():
    model = Tiny()
    ema = Ema(model, decay=0.5)
    assert "frozen.weight" not in ema.shadow and "count" in ema.shadow
    with torch.no_grad():
        model.proj.weight.add_(2.0)
        model.count.fill_(7)
    ema.update(model)
    trained = model.proj.weight.detach().clone()
    with ema.swapped(model) as m:
        torch.testing.assert_close(m.proj.weight, trained - 1.0)  # halfway back
        assert int(m.count) == 7  # integer buffers are copied, not averaged
    assert torch.equal(model.proj.weight, trained)


def test_ema_state_dict_round_trip():
    model = Tiny()
    ema = Ema(model, decay=0.7)
    with torch.no_grad():
        model.proj.weight.mul_(2)
    ema.update(model)
    other = Ema(Tiny(), decay=0.1)
    other.load_state_dict(ema.state_dict())
    assert other.decay == 0.7 and other.num_updates == 1
    for k in ema.shadow:
        assert torch.equal(other.shadow[k], ema.shadow[k])
    with pytest.raises(KeyError):
        Ema(nn.Linear(2, 2)).load_state_dict(ema.state_dict())


def test_ema_sees_through_a_ddp_like_wrapper():
    class Wrapper(nn.Module):  # same `.module` layout as DistributedDataParallel
        def __init__(self, module):
            super().__init__()
            self.module = module

    inner = nn.Linear(2, 2)
    ema = Ema(Wrapper(inner), decay=0.5)
    assert set(ema.shadow) == {"weight", "bias"}
    with torch.no_grad():
        inner.weight.add_(4.0)
    ema.update(Wrapper(inner))
    with ema.swapped(Wrapper(inner)):
        torch.testing.assert_close(inner.weight, ema.shadow["weight"])
