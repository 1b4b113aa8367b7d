"""Experiment folders ``exp/<tag>/``: resolved config, its hash, the exact command, the text log.

:func:`prepare_exp_dir` writes ``config.yaml`` (resolved), ``config.hash``, appends the command line with
a UTC timestamp to ``cmd.txt``, and refuses to reuse a folder whose stored ``config.yaml`` differs from the
new config — listing the differing keys — unless ``overwrite=True``. Keys that only lengthen or
re-resource a run (``max_steps``, ``max_epochs``, ``max_minutes``, ``num_workers``, ``pin_memory``,
``progress``, ``log_every``, and how many checkpoints are kept: ``keep_last``, ``keep_best``) may change: that is
how a finished run is continued.
"""
from __future__ import annotations

import datetime
import logging
import shlex
import sys
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import yaml

from elfs2t.config import config_hash, dump_config, unstructure

log = logging.getLogger(__name__)

__all__ = ["ExpDirError", "RESUMABLE_KEYS", "config_diff", "prepare_exp_dir", "setup_file_logging"]

RESUMABLE_KEYS: tuple[str, ...] = ("max_steps", "max_epochs", "max_minutes", "num_workers", "pin_memory",
                                   "progress", "log_every", "keep_last", "keep_best")
"""Last components of dotted keys that may differ when an experiment folder is reused."""


class ExpDirError(RuntimeError):
    """An experiment folder exists with a different config."""


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, list) and any(isinstance(item, dict) for item in data):  # e.g. data.train: key.<index>.field
        data = {str(i): item for i, item in enumerate(data)}
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out if out or not prefix else {prefix: {}}
    return {prefix: data}


def config_diff(old: Any, new: Any) -> dict[str, tuple[Any, Any]]:
    """``{dotted.key: (old, new)}`` for every leaf that differs (missing leaves read as ``<absent>``; a leaf absent
    from ``old`` and null in ``new`` -- a setting added later whose null default keeps the old behaviour -- is no
    difference). Lists of mappings are compared item by item (``data.train.1.target``)."""
    a, b = _flatten(unstructure(old)), _flatten(unstructure(new))
    absent = "<absent>"
    keys = [k for k in sorted(set(a) | set(b)) if not (k not in a and b[k] is None)]
    return {k: (a.get(k, absent), b.get(k, absent)) for k in keys if a.get(k, absent) != b.get(k, absent)}


def prepare_exp_dir(
    exp_dir: str | Path,
    config: Any,
    *,
    overwrite: bool = False,
    argv: Optional[Sequence[str]] = None,
    resumable_keys: Iterable[str] = RESUMABLE_KEYS,
) -> Path:
    """Create (or safely reuse) ``exp_dir`` for ``config`` and record config, hash and command.

    Call it on the main process only (before the other processes read the folder). Raises :class:`ExpDirError` when ``exp_dir/config.yaml`` holds a different config (other than in
    ``resumable_keys``) and ``overwrite`` is False; the message lists each differing key as old -> new.
    """
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    stored = exp_dir / "config.yaml"
    if stored.is_file():
        try:
            old = yaml.safe_load(stored.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ExpDirError(f"{stored}: unreadable stored config ({exc}); remove it or pass overwrite") from exc
        diff = config_diff(old, config)
        allowed = tuple(resumable_keys)
        blocking = {k: v for k, v in diff.items() if k.rsplit(".", 1)[-1] not in allowed}
        if blocking and not overwrite:
            lines = "\n".join(f"  {k}: {o!r} -> {n!r}" for k, (o, n) in blocking.items())
            raise ExpDirError(
                f"{exp_dir} already holds an experiment with a different config ({stored}):\n{lines}\n"
                "Use another tag, or overwrite (the old checkpoints would be resumed with the new config)."
            )
        for key, (o, n) in diff.items():
            log.info("%s: %s changed %r -> %r", exp_dir, key, o, n)
    dump_config(config, stored)
    (exp_dir / "config.hash").write_text(config_hash(config) + "\n")
    # sys.orig_argv keeps "python -m elfs2t.bin.<stage> ..." as typed; argv (tests, wrappers) replaces it.
    command = list(sys.orig_argv) if argv is None else [sys.executable, *argv]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with open(exp_dir / "cmd.txt", "a") as fh:
        fh.write(f"# {stamp}\n{shlex.join(command)}\n")
    return exp_dir


def setup_file_logging(exp_dir: str | Path, name: str = "train.log", level: int = logging.INFO) -> Path:
    """Add a handler writing the root logger to ``exp_dir/name`` (once per file); return its path."""
    path = (Path(exp_dir) / name).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) == path:
            return path
    handler = logging.FileHandler(path)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    if root.level > level or root.level == logging.NOTSET:
        root.setLevel(level)
    return path
