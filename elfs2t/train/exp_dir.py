"""Experiment folders ``exp/<tag>/``: resolved config, its hash, the exact command, the text log.

:func:`check_exp_dir` refuses to reuse a folder whose stored ``config.yaml`` differs from the new config --
listing the differing keys -- unless ``overwrite=True``, or unless the folder holds no checkpoint (then nothing
would be resumed with the wrong config, and a run that failed before its first checkpoint -- a mistyped data
path -- does not block the corrected one). Keys that only lengthen or re-resource a run (``max_steps``,
``max_epochs``, ``max_minutes``, ``num_workers``, ``pin_memory``, ``progress``, ``log_every``, and how many
checkpoints are kept: ``keep_last``, ``keep_best``) may change: that is how a finished run is continued. :func:`record_exp_dir` then writes ``config.yaml`` (resolved),
``config.hash`` and appends the command line with a UTC timestamp to ``cmd.txt`` -- call it once the run can
start (its data read, its model built), so that a failed start leaves the folder as it was.
:func:`prepare_exp_dir` does both at once.
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
from elfs2t.errors import InputError
from elfs2t.train.checkpoint import list_checkpoints

log = logging.getLogger(__name__)

__all__ = ["ExpDirError", "RESUMABLE_KEYS", "check_exp_dir", "config_diff", "prepare_exp_dir", "record_exp_dir",
           "setup_file_logging", "write_dropped_cuts"]

RESUMABLE_KEYS: tuple[str, ...] = ("max_steps", "max_epochs", "max_minutes", "num_workers", "pin_memory",
                                   "progress", "log_every", "keep_last", "keep_best")
"""Last components of dotted keys that may differ when an experiment folder is reused."""


class ExpDirError(InputError):
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


def _has_checkpoint(exp_dir: Path) -> bool:
    return (exp_dir / "last.pt").is_file() or bool(list_checkpoints(exp_dir))


def check_exp_dir(
    exp_dir: str | Path,
    config: Any,
    *,
    overwrite: bool = False,
    resumable_keys: Iterable[str] = RESUMABLE_KEYS,
) -> dict[str, tuple[Any, Any]]:
    """May ``exp_dir`` hold a run of ``config``? Returns the differences to its stored config (``{}``: none or new
    folder); writes nothing.

    Raises :class:`ExpDirError` when ``exp_dir/config.yaml`` holds a different config (other than in
    ``resumable_keys``), the folder holds checkpoints (which a run would resume) and ``overwrite`` is False; the
    message lists each differing key as old -> new. Without a checkpoint the difference is logged and accepted.
    """
    exp_dir = Path(exp_dir)
    stored = exp_dir / "config.yaml"
    if not stored.is_file():
        return {}
    try:
        old = yaml.safe_load(stored.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ExpDirError(f"{stored}: unreadable stored config ({exc}); remove it or pass overwrite") from exc
    diff = config_diff(old, config)
    allowed = tuple(resumable_keys)
    blocking = {k: v for k, v in diff.items() if k.rsplit(".", 1)[-1] not in allowed}
    if blocking and not overwrite:
        if _has_checkpoint(exp_dir):
            lines = "\n".join(f"  {k}: {o!r} -> {n!r}" for k, (o, n) in blocking.items())
            raise ExpDirError(
                f"{exp_dir} already holds an experiment with a different config ({stored}):\n{lines}\n"
                "Use another tag, or overwrite (the old checkpoints would be resumed with the new config)."
            )
        log.warning("%s: the stored config differs (%s) but no checkpoint was written with it: the new config "
                    "replaces it", exp_dir, ", ".join(blocking))
    for key, (o, n) in diff.items():
        log.info("%s: %s changed %r -> %r", exp_dir, key, o, n)
    return diff


def record_exp_dir(exp_dir: str | Path, config: Any, *, argv: Optional[Sequence[str]] = None) -> Path:
    """Write ``config.yaml`` (resolved), ``config.hash`` and append the command to ``cmd.txt`` (main process)."""
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    dump_config(config, exp_dir / "config.yaml")
    (exp_dir / "config.hash").write_text(config_hash(config) + "\n")
    # sys.orig_argv keeps "python -m elfs2t.bin.<stage> ..." as typed; argv (tests, wrappers) replaces it.
    command = list(sys.orig_argv) if argv is None else [sys.executable, *argv]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with open(exp_dir / "cmd.txt", "a") as fh:
        fh.write(f"# {stamp}\n{shlex.join(command)}\n")
    return exp_dir


def prepare_exp_dir(
    exp_dir: str | Path,
    config: Any,
    *,
    overwrite: bool = False,
    argv: Optional[Sequence[str]] = None,
    resumable_keys: Iterable[str] = RESUMABLE_KEYS,
) -> Path:
    """:func:`check_exp_dir` then :func:`record_exp_dir`: create (or safely reuse) ``exp_dir`` for ``config``.

    Call it on the main process only (before the other processes read the folder).
    """
    check_exp_dir(exp_dir, config, overwrite=overwrite, resumable_keys=resumable_keys)
    return record_exp_dir(exp_dir, config, argv=argv)


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


def write_dropped_cuts(exp_dir: str | Path, dropped: dict[str, list[tuple]], name: str = "dropped_cuts.tsv") -> Path:
    """Write ``exp_dir/<name>``: one line per cut the data filter dropped, ``set<TAB>cut_id<TAB>reason<TAB>value
    <TAB>limit`` under a header (``dropped``: set name -> ``(cut id, reason, value, limit)`` rows); atomically,
    replaced at every start (it describes the data of the current run). Returns the path."""
    path = Path(exp_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["set\tcut_id\treason\tvalue\tlimit\n"]
    lines += ["\t".join((set_name, *map(str, row))) + "\n" for set_name, rows in dropped.items() for row in rows]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(lines))
    tmp.replace(path)
    return path
