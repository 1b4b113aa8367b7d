"""Training checkpoints: our own format, written atomically, with the previous ones kept.

Files in ``exp/<tag>/``: ``checkpoint-<step>.pt`` (the newest ``keep_last`` are kept, and the ``keep_best`` of
lowest validation loss) and ``last.pt``, a copy of the newest (a file of its own, not a link: damage to one of the
two leaves the other readable); ``valid_loss.json`` (``{step: loss}`` of every checkpoint written at a validation).
Each file is one ``torch.save`` dict::

    {"format": "elfs2t-checkpoint", "version": 1, "step": int, "epoch": int, "batches_in_epoch": int,
     "model": state_dict, "ema": Ema.state_dict() | None, "optimizer": ..., "scheduler": ...,
     "sampler": sampler state | None, "rng": [per-rank rng_state()], "config": plain dict, "time": str,
     "train_seconds": float,   # the run's training time so far (older checkpoints lack it: 0)
     "valid_loss": float | None}  # validation loss at that step (EMA weights), when validated there

Writes go to ``<name>.tmp`` then ``os.replace``: a crash never leaves a half-written ``.pt``; the ``.tmp`` a
kill leaves behind is never read, and :func:`remove_partial` (called when training starts) deletes it.
Loading uses ``weights_only=False`` (RNG states and sampler states are Python objects): load only
checkpoints you trust. :func:`load_latest` falls back to older checkpoints when the newest cannot be read;
:func:`remove_checkpoints` clears a folder for a run that starts over (``--no-resume``), so that no fallback can
reach an older run's files.
"""
from __future__ import annotations

import json
import logging
import random
import re
import shutil
import warnings
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from elfs2t.atomic import atomic_path
from elfs2t.errors import InputError

log = logging.getLogger(__name__)

__all__ = [
    "FORMAT", "VALID_INDEX", "CheckpointError", "rng_state", "set_rng_state", "list_checkpoints", "save_checkpoint",
    "load_checkpoint", "load_latest", "read_valid_losses", "remove_partial", "remove_checkpoints",
]

FORMAT = "elfs2t-checkpoint"
VALID_INDEX = "valid_loss.json"
_NAME = re.compile(r"^checkpoint-(\d+)\.pt$")
_PARTIAL = re.compile(r"^(checkpoint-\d+\.pt|last\.pt|valid_loss\.json)\.tmp$")


class CheckpointError(InputError):
    """A checkpoint file cannot be read or is not an elfs2t checkpoint; the message names the file."""


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU (and CUDA, if present) generator states of this process."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        else:
            log.warning("checkpoint has %d CUDA RNG states, this machine %d devices: CUDA RNG not restored",
                        len(cuda_states), torch.cuda.device_count())


def list_checkpoints(exp_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``checkpoint-<step>.pt`` in exp_dir, oldest first."""
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        return []
    found = []
    for path in exp_dir.iterdir():
        m = _NAME.match(path.name)
        if m:
            found.append((int(m.group(1)), path))
    return sorted(found)


def _atomic_save(obj: Any, path: Path) -> None:
    with atomic_path(path, fsync=True, tmp=path.with_name(path.name + ".tmp")) as tmp:  # _PARTIAL finds leftovers
        torch.save(obj, tmp)


def _atomic_copy(src: Path, dst: Path) -> None:
    with atomic_path(dst, fsync=True, tmp=dst.with_name(dst.name + ".tmp")) as tmp:
        shutil.copyfile(src, tmp)


def remove_partial(exp_dir: str | Path) -> list[Path]:
    """Delete the ``checkpoint-<step>.pt.tmp`` / ``last.pt.tmp`` files a killed write left in exp_dir (main
    process); returns them. They are never read, but a large one is disk space nobody would reclaim."""
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        return []
    partial = sorted(p for p in exp_dir.iterdir() if _PARTIAL.match(p.name))
    for path in partial:
        path.unlink(missing_ok=True)
        log.warning("removed %s: a checkpoint write that was interrupted", path)
    return partial


def remove_checkpoints(exp_dir: str | Path) -> list[Path]:
    """Delete every checkpoint of exp_dir (``checkpoint-<step>.pt``, ``last.pt``, ``valid_loss.json`` and partial
    writes): a run that starts over must not leave an older run's files where :func:`load_latest` would fall back
    to them, nor their validation losses for ``keep_best`` / ``--average-by best``."""
    exp_dir = Path(exp_dir)
    old = [p for _, p in list_checkpoints(exp_dir)] + [p for p in [exp_dir / "last.pt", exp_dir / VALID_INDEX]
                                                        if p.is_file()]
    for path in old:
        path.unlink(missing_ok=True)
    return old + remove_partial(exp_dir)


def read_valid_losses(exp_dir: str | Path) -> dict[int, float]:
    """``{step: validation loss}`` of the checkpoints written at a validation (``valid_loss.json``; {} if none)."""
    path = Path(exp_dir) / VALID_INDEX
    try:
        return {int(k): float(v) for k, v in json.loads(path.read_text()).items()} if path.is_file() else {}
    except (ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path}: unreadable validation-loss index ({exc})") from exc


def save_checkpoint(exp_dir: str | Path, state: dict[str, Any], keep_last: int = 2, keep_best: int = 0) -> Path:
    """Write ``state`` (must hold ``step``) as ``checkpoint-<step>.pt``, copy it to ``last.pt``, prune.

    Returns the path of the new checkpoint. A ``valid_loss`` in ``state`` goes into ``valid_loss.json``. Older
    checkpoints are deleted only after the new one is complete, except the newest ``keep_last`` and the
    ``keep_best`` of lowest validation loss.
    """
    if "step" not in state:
        raise ValueError("save_checkpoint: state has no 'step'")
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, "version": 1, **state}
    step = int(state["step"])
    path = exp_dir / f"checkpoint-{step}.pt"
    _atomic_save(state, path)
    _atomic_copy(path, exp_dir / "last.pt")
    losses = read_valid_losses(exp_dir)
    if state.get("valid_loss") is not None:
        losses[step] = float(state["valid_loss"])
    found = list_checkpoints(exp_dir)
    keep = {p for _, p in found[-max(1, keep_last):]} | {path}
    if keep_best > 0:
        scored = sorted((losses[s], s) for s, _ in found if s in losses)
        best = {s for _, s in scored[:keep_best]}
        keep |= {p for s, p in found if s in best}
    for s, old in found:
        if old not in keep:
            old.unlink(missing_ok=True)
    kept = {s for s, p in found if p in keep}
    index = exp_dir / VALID_INDEX
    if losses or index.is_file():
        with atomic_path(index, tmp=index.with_name(index.name + ".tmp")) as tmp:
            tmp.write_text(json.dumps({str(s): v for s, v in sorted(losses.items()) if s in kept}, indent=1) + "\n")
    log.info("saved %s", path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read one checkpoint; :class:`CheckpointError` naming the file when unreadable or foreign."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # truncated zip, pickle errors, ...
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an elfs2t checkpoint (no format={FORMAT!r} entry)")
    return state


def load_latest(exp_dir: str | Path, map_location: str | torch.device = "cpu") -> Optional[dict[str, Any]]:
    """The newest readable checkpoint of exp_dir (``last.pt`` first, then by step), or None if none exists.

    An unreadable file is skipped with a warning that names it, so a crash during a write (or a corrupt
    file) costs at most the steps since the previous checkpoint.
    """
    exp_dir = Path(exp_dir)
    candidates = [exp_dir / "last.pt"] if (exp_dir / "last.pt").is_file() else []
    candidates += [p for _, p in reversed(list_checkpoints(exp_dir))]
    for path in candidates:
        try:
            state = load_checkpoint(path, map_location)
        except CheckpointError as exc:
            warnings.warn(f"skipping unreadable checkpoint: {exc}", RuntimeWarning, stacklevel=2)
            log.warning("skipping unreadable checkpoint: %s", exc)
            continue
        state["path"] = str(path)
        return state
    return None
