"""Checkpoint averaging: the mean of the trained weights of N checkpoints (as icefall's ``--avg``).

``--average N`` (``elfs2t.bin.decode``, ``elfs2t.bin.export``, ``elfs2t.load(..., average=N)``) takes the last N
checkpoints of an experiment folder (``--average-by last``) or the N of lowest validation loss (``best``; the loss
training measured at that step, with the EMA weights: ``valid_loss.json``). The raw weights (``model``) of the
checkpoints are averaged, float tensors in float64 then cast back; integer tensors (a token shortlist, its head
ids) must agree between the checkpoints and are taken as they are. Training keeps as many checkpoints as averaging
needs when told to: ``train.keep_last`` (the last N), ``train.keep_best`` (the best N).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import torch

from elfs2t.train.checkpoint import CheckpointError, list_checkpoints, load_checkpoint, read_valid_losses

log = logging.getLogger(__name__)

__all__ = ["select_checkpoints", "average_checkpoints"]

AverageBy = Literal["last", "best"]


def select_checkpoints(exp_dir: str | Path, n: int, by: AverageBy = "last") -> list[tuple[int, Path]]:
    """``(step, path)`` of the ``n`` checkpoints to average, oldest first; CheckpointError (naming the folder and
    what it holds) when there are fewer."""
    exp_dir = Path(exp_dir)
    if n < 1:
        raise ValueError(f"--average {n}: must be >= 1")
    found = list_checkpoints(exp_dir)
    if by == "last":
        chosen = found[-n:]
        have = f"{len(found)} checkpoint(s)"
    elif by == "best":
        losses = read_valid_losses(exp_dir)
        scored = sorted((losses[s], s) for s, _ in found if s in losses)
        steps = {s for _, s in scored[:n]}
        chosen = [(s, p) for s, p in found if s in steps]
        have = f"{len(scored)} checkpoint(s) with a validation loss"
    else:
        raise ValueError(f"--average-by {by!r}: must be last or best")
    if len(chosen) < n:
        keep = "train.keep_last" if by == "last" else "train.keep_best (and save_every a multiple of valid_every)"
        raise CheckpointError(f"{exp_dir}: --average {n} --average-by {by} needs {n} checkpoints, the folder holds "
                              f"{have}; train with {keep} >= {n}")
    return chosen


def average_checkpoints(paths: list[Path]) -> dict[str, Any]:
    """The state of the last checkpoint of ``paths`` with ``model`` replaced by the mean of their ``model`` weights
    (``averaged_steps`` lists what went in)."""
    if not paths:
        raise ValueError("average_checkpoints: no checkpoints")
    total: dict[str, torch.Tensor] = {}
    state: dict[str, Any] = {}
    steps = []
    for path in paths:
        state = load_checkpoint(path)
        steps.append(int(state["step"]))
        weights = state["model"]
        if total and set(weights) != set(total):
            raise CheckpointError(f"{path}: its weights' names differ from {paths[0]}'s: not one model")
        for name, value in weights.items():
            if value.is_floating_point():
                total[name] = total[name] + value.double() if name in total else value.double()
            elif name not in total:
                total[name] = value.clone()
            elif not torch.equal(total[name], value):
                raise CheckpointError(f"{path}: {name} differs from {paths[0]}'s (integer tensors must agree)")
    model = {name: (value / len(paths)).to(state["model"][name].dtype) if value.is_floating_point() else value
             for name, value in total.items()}
    log.info("averaged the weights of %d checkpoints (steps %s)", len(paths), steps)
    return {**state, "model": model, "ema": None, "averaged_steps": steps}
