"""Loading a trained experiment folder ``exp/<tag>/`` (stage 4's output) as a model ready to decode.

:func:`load_experiment` reads ``config.yaml`` (plus ``decode.*`` overrides: the recorded setting, then the
caller's), builds the model's structure through the registry and loads weights: the EMA weights of the latest
checkpoint (``decode.use_ema``, the default), a given checkpoint, or the average of N checkpoints
(:mod:`elfs2t.train.average`). Paths in the config are relative to where training ran (``../../tools/models/...``
from a recipe folder); a path that does not exist from the working directory is looked up from the training run's
directory (``run_info.json``) and from the recipe folder above ``exp/`` (:func:`config_bases`), so a model loads
from anywhere.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from elfs2t.config import ConfigError, load_config
from elfs2t.experiment import MODELS, ExperimentConfig
from elfs2t.features.record import EncoderRecord, check_features, features_record, model_record
from elfs2t.inference.setting import check_overrides, read_setting
from elfs2t.train.average import AverageBy, average_checkpoints, select_checkpoints
from elfs2t.train.checkpoint import load_checkpoint, load_latest
from elfs2t.text.ngram import NGRAM_FILE, attach_ngram
from elfs2t.train.run_info import read_run_info

log = logging.getLogger(__name__)

__all__ = ["Loaded", "config_bases", "resolve_path", "set_key", "load_experiment", "load_trained", "experiment_encoder",
           "check_sets"]


@dataclass
class Loaded:
    """A model loaded for decoding and what it came from."""

    model: nn.Module
    cfg: ExperimentConfig
    state: dict[str, Any]
    """The checkpoint's entries (``step``, ...) -- its weights are in the model."""
    weights: str
    """Which weights, in words (``EMA weights of step 670``, ``average of checkpoints 500-670``)."""


def config_bases(exp_dir: str | Path) -> list[Path]:
    """Folders relative config paths may be relative to: the last training run's working directory, the recipe
    folder of ``<recipe>/exp/<tag>``, and the experiment folder itself."""
    exp_dir = Path(exp_dir).absolute()
    runs = read_run_info(exp_dir)
    bases = [Path(runs[-1]["cwd"])] if runs and runs[-1].get("cwd") else []
    return bases + [exp_dir.parent.parent, exp_dir]


def resolve_path(value: Optional[str], bases: list[Path]) -> Optional[str]:
    """``value`` itself if it exists from here (or is not relative), else the first ``base / value`` that exists,
    else ``value`` (a hub id, or a path whose loader will name it)."""
    if not value or Path(value).is_absolute() or Path(value).expanduser().exists():
        return value
    for base in bases:
        if (base / value).exists():
            return str(base / value)
    return value


def set_key(cfg: Any, dotted: str, value: Any) -> None:
    """Set a dotted config key (``elf.text.name_or_path``) on a structured config."""
    *parents, last = dotted.split(".")
    for part in parents:
        cfg = getattr(cfg, part)
    setattr(cfg, last, value)


def load_experiment(exp_dir: str | Path, overrides: list[str] = (), *, checkpoint: Optional[Path] = None,
                    average: int = 0, average_by: AverageBy = "last", use_setting: bool = False,
                    device: str | torch.device = "cpu", paths: Optional[dict[str, str]] = None) -> Loaded:
    """The model of a trained experiment folder (see the module docstring). ``use_setting``: decode with the
    recorded setting (``decode_setting.yaml``) under the caller's ``overrides``; ``paths``: ``{dotted key:
    location}`` of models to load from elsewhere than the config says."""
    exp_dir = Path(exp_dir)
    if not (exp_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{exp_dir}: not a trained experiment folder (no config.yaml)")
    recorded = read_setting(exp_dir)[0] if use_setting else []
    cfg = load_config(ExperimentConfig, exp_dir / "config.yaml", recorded + check_overrides(list(overrides)))
    cfg.init.denoiser = None  # the trained weights come from the checkpoint
    kind = MODELS[cfg.model]
    bases = config_bases(exp_dir)
    for key, value in kind.loads_from(cfg).items():
        set_key(cfg, key, resolve_path(value, bases))
    for key, value in (paths or {}).items():
        set_key(cfg, key, value)
    if average and checkpoint is not None:
        raise ConfigError("--average and --checkpoint exclude each other")
    if average:
        state = average_checkpoints([p for _, p in select_checkpoints(exp_dir, average, average_by)])
        steps = state["averaged_steps"]
        weights = f"average of {len(steps)} checkpoints ({average_by}: steps {', '.join(map(str, steps))})"
    else:
        state = load_checkpoint(checkpoint) if checkpoint else load_latest(exp_dir)
        if state is None:
            raise FileNotFoundError(f"no checkpoint in {exp_dir}: run stage 4 first")
        use_ema = cfg.decode.use_ema and state.get("ema") is not None
        weights = f"{'EMA' if use_ema else 'raw'} weights of step {state['step']}"
    model = kind.build_for_weights(cfg)
    model.load_state_dict(state["model"])
    if not average and cfg.decode.use_ema and state.get("ema"):
        shadow = state["ema"]["shadow"]
        with torch.no_grad():
            for name, value in model.state_dict(keep_vars=True).items():
                if name in shadow:
                    value.copy_(shadow[name].to(value.dtype))
    log.info("loaded %s: %s", state.get("path", checkpoint or exp_dir), weights)
    if attach_ngram(model, exp_dir):
        log.info("with its n-gram model %s", exp_dir / NGRAM_FILE)
    model.to(device).eval()
    state = {k: v for k, v in state.items() if k not in ("model", "ema", "optimizer", "rng")}
    return Loaded(model, cfg, state, weights)


def experiment_encoder(exp_dir: str | Path, cfg: ExperimentConfig) -> Optional[EncoderRecord]:
    """The encoder a model was trained on: ``exp_dir/encoder.json``, or for folders from before the record the
    record of its training features (if they are still where the config says); None when neither is there."""
    record = model_record(exp_dir)
    if record is not None:
        return record
    bases = config_bases(exp_dir)
    for spec in cfg.data.train:
        path = resolve_path(str(spec.cuts), bases)
        if path and Path(path).is_file():
            log.info("%s has no encoder.json (trained before the record): the encoder is taken from %s", exp_dir, path)
            return features_record(path)
    return None


def check_sets(exp_dir: str | Path, cfg: ExperimentConfig, manifests: list[str | Path]) -> None:
    """Refuse (:class:`~elfs2t.features.record.FeatureMismatchError`, one line) cached features of the manifests
    that another encoder, mode or dtype made than the model's; a folder without any record is only warned about."""
    encoder = experiment_encoder(exp_dir, cfg)
    if encoder is None:
        log.warning("%s: no record of the encoder it was trained on: the features' encoder is not checked", exp_dir)
        return
    for path in manifests:
        check_features(encoder, features_record(path), model_where=str(exp_dir), feats_where=str(path))


def load_trained(exp_dir: Path, overrides: list[str], checkpoint: Path | None = None, average: int = 0,
                 average_by: str = "last"):
    """Model + config of a trained experiment (EMA weights when ``decode.use_ema``, or an average of ``average``
    checkpoints) and the checkpoint's entries (:func:`load_experiment`)."""
    loaded = load_experiment(exp_dir, overrides, checkpoint=checkpoint, average=average, average_by=average_by)
    return loaded.model, loaded.cfg, loaded.state
