"""What an experiment folder records about the runs that made it: code, packages, hardware, training data.

``exp/<tag>/run_info.json`` gets one entry per training invocation (a resumed run adds one)::

    {"runs": [{"time": "2025-12-05T07:06:11Z", "command": [...], "cwd": "/.../egs/mini_synth",
               "git": {"commit": "97b7e96...", "dirty": false}, "python": "3.11.2",
               "packages": {"torch": "2.9.1", "lhotse": "1.33.0", ...},
               "hardware": {"platform": "Linux-...", "cpu": "AMD EPYC ...", "cpu_count": 2, "memory_gb": 7.8,
                            "gpus": [], "cuda": null}, "world_size": 1}]}

``cwd`` is where relative paths of the config (``../../tools/models/...``) are relative to: loading the model from
elsewhere resolves them against it. ``exp/<tag>/train_data.json`` summarises the training cuts after filtering
(number, seconds, the longest utterance): the longest is what the model has seen, so ``transcribe`` segments
longer audio.
"""
from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, Optional

__all__ = ["PACKAGES", "run_info", "append_run_info", "read_run_info", "write_train_data", "read_train_data",
           "source_commit"]

PACKAGES = ("elfs2t", "torch", "torchaudio", "lhotse", "transformers", "tokenizers", "safetensors", "numpy",
            "kaldiio", "sentencepiece", "jiwer", "sacrebleu")
"""Packages whose versions a run records."""

_ROOT = Path(__file__).resolve().parents[2]  # the source tree (a git checkout, for an editable install)


def source_commit() -> dict[str, Any]:
    """``{"commit": sha, "dirty": bool}`` of the elfs2t source tree, or ``{"commit": None}`` outside a checkout."""
    def git(*args: str) -> Optional[str]:
        try:
            out = subprocess.run(["git", "-C", str(_ROOT), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status)}


def _versions(names: Iterable[str]) -> dict[str, Optional[str]]:
    out: dict[str, Optional[str]] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> Optional[float]:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _hardware() -> dict[str, Any]:
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {"platform": platform.platform(), "cpu": _cpu_name(), "cpu_count": os.cpu_count(), "memory_gb": _memory_gb(),
            "gpus": gpus, "cuda": torch.version.cuda if gpus else None}


def run_info(world_size: int = 1, argv: Optional[list[str]] = None) -> dict[str, Any]:
    """This process's entry of ``run_info.json``."""
    return {
        "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": list(sys.orig_argv) if argv is None else [sys.executable, *argv],
        "cwd": os.getcwd(),
        "git": source_commit(),
        "python": platform.python_version(),
        "packages": _versions(PACKAGES),
        "hardware": _hardware(),
        "world_size": world_size,
    }


def _atomic_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


def read_run_info(exp_dir: str | Path) -> list[dict[str, Any]]:
    """The recorded runs of an experiment folder (oldest first; empty for folders from before the record)."""
    path = Path(exp_dir) / "run_info.json"
    if not path.is_file():
        return []
    try:
        return list(json.loads(path.read_text()).get("runs", []))
    except (ValueError, AttributeError):
        return []


def append_run_info(exp_dir: str | Path, world_size: int = 1, argv: Optional[list[str]] = None) -> dict[str, Any]:
    """Add this invocation to ``exp_dir/run_info.json``; returns the entry."""
    entry = run_info(world_size, argv)
    _atomic_json(Path(exp_dir) / "run_info.json", {"runs": read_run_info(exp_dir) + [entry]})
    return entry


def write_train_data(exp_dir: str | Path, cuts: Iterable) -> dict[str, Any]:
    """Summarise the (filtered) training cuts into ``exp_dir/train_data.json``; returns the summary."""
    durations = [c.duration for c in cuts]
    summary = {"num_cuts": len(durations), "seconds": round(sum(durations), 3),
               "max_duration": round(max(durations), 3) if durations else None,
               "mean_duration": round(sum(durations) / len(durations), 3) if durations else None}
    _atomic_json(Path(exp_dir) / "train_data.json", summary)
    return summary


def read_train_data(exp_dir: str | Path) -> dict[str, Any]:
    """``train_data.json`` of an experiment folder ({} when absent)."""
    path = Path(exp_dir) / "train_data.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return {}
