"""Tiny training fixtures shared by the trainer, checkpoint and DDP tests (not a test module)."""
from __future__ import annotations

import torch
from lhotse import CutSet
from lhotse.testing.dummies import DummyManifest
from torch import nn

from elfs2t.optim.build import OptimConfig
from elfs2t.train.config import TrainConfig
from elfs2t.train.data import build_dataloader


class RegressionDataset(torch.utils.data.Dataset):
    """CutSet -> {"cut_ids": list[str] (B), "x": (B, 4), "y": (B, 1)}, a fixed function of the cut index."""

    def __getitem__(self, cuts: CutSet) -> dict:
        idx = torch.tensor([int(c.id.rsplit("-", 1)[1]) for c in cuts], dtype=torch.float32)
        x = torch.stack([torch.sin(idx), torch.cos(idx), torch.sin(0.5 * idx), torch.cos(0.3 * idx)], dim=1)
        y = (x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])) + 0.1
        return {"cut_ids": [c.id for c in cuts], "x": x, "y": y}


class NoisyRegressor(nn.Module):
    """MLP regressor; input noise from the global RNG makes the loss depend on the RNG state."""

    def __init__(self, noise: float = 0.05):
        super().__init__()
        self.noise = noise
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, batch: dict):
        x = batch["x"] + self.noise * torch.randn_like(batch["x"])
        loss = (self.net(x) - batch["y"]).pow(2).mean()
        return loss, {"mse": float(loss.detach())}


def make_cuts(n: int = 40) -> CutSet:
    return DummyManifest(CutSet, begin_id=0, end_id=n)


def make_loader(n: int = 40, max_cuts: int = 4, shuffle: bool = True, rank: int = 0, world_size: int = 1,
                num_buckets: int = 2, num_workers: int = 0):
    return build_dataloader(make_cuts(n), RegressionDataset(), max_duration=1000.0, max_cuts=max_cuts,
                            num_buckets=num_buckets, shuffle=shuffle, seed=7, rank=rank, world_size=world_size,
                            num_workers=num_workers)


def make_model(seed: int = 0, noise: float = 0.05) -> NoisyRegressor:
    torch.manual_seed(seed)
    return NoisyRegressor(noise)


def optim_cfg(**kw) -> OptimConfig:
    base = dict(name="muon", lr=0.02, warmup_steps=3, clip=1.0, ema_decay=0.9, ema_warmup=False)
    base.update(kw)
    return OptimConfig(**base)


def train_cfg(**kw) -> TrainConfig:
    base = dict(max_steps=12, log_every=2, valid_every=0, save_every=4, keep_last=2, seed=11, progress=False)
    base.update(kw)
    return TrainConfig(**base)
