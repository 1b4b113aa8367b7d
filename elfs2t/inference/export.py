"""Exported model folders: a trained model in a form that loads anywhere, without unpickling.

``python -m elfs2t.bin.export --exp-dir exp/asr_elf --out my_model/`` (:func:`export_model`) writes::

    my_model/
      model.safetensors   the weights (EMA by default; --average N checkpoints; --raw the last checkpoint's own)
      config.yaml         the experiment config without machine paths: no data section, the recorded decoding
                          setting applied, frozen models named (all-MiniLM-L6-v2), recipe-made files by relative path
      model.json          format, model type, tasks, the Whisper encoder's record and the frozen models' references
                          (name, hub id, weights fingerprint: elfs2t.inference.references), the decoding setting,
                          the longest training utterance, training step / minutes / data, the code's commit
      README.md           its scores, how it was trained, how to use it
      lm/                 (AR baseline) its tokenizer and LM structure
      ngram.json          (ELF-S2T, if the experiment has one) the token n-gram of its training texts

:func:`load_exported` (``elfs2t.load`` on such a folder) reads JSON, YAML and safetensors only; the frozen Whisper
and text encoders are found by reference (the location the user passes, ``$ELFS2T_MODELS/<name>``, this
installation's ``tools/models/<name>``, or the hub id) and checked against the recorded fingerprints.
"""
from __future__ import annotations

import json
import logging
import shlex
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional, Sequence

from elfs2t.config import ConfigError, dump_config, load_config, unstructure
from elfs2t.experiment import MODELS, ExperimentConfig
from elfs2t.features.record import EncoderRecord
from elfs2t.inference.references import ModelRef, find_model, make_ref, read_frozen
from elfs2t.inference.setting import check_overrides, read_setting
from elfs2t.inference.trained import config_bases, experiment_encoder, load_experiment, set_key
from elfs2t.text.ngram import attach_ngram
from elfs2t.train.run_info import read_run_info, read_train_data

log = logging.getLogger(__name__)

__all__ = ["FORMAT", "MODEL_FILE", "export_model", "load_exported"]

FORMAT = "elfs2t-model"
MODEL_FILE = "model.json"
WEIGHTS_FILE = "model.safetensors"


def _scores(exp_dir: Path) -> list[dict[str, Any]]:
    """Every scored decode of the experiment: set, decoding tag, metrics."""
    from elfs2t.results import parse_result_file

    rows = []
    for result in sorted(exp_dir.glob("decode_*/*/result.txt")):
        metrics, counts = parse_result_file(result)
        if metrics:
            rows.append({"set": result.parent.name, "decoding": result.parent.parent.name[len("decode_"):],
                         "metrics": metrics, "num_utts": counts.get("num_utts")})
    return rows


def _portable_command(runs: list[dict], exp_dir: Path) -> Optional[str]:
    """The first training command, with the interpreter as ``python`` (no machine paths)."""
    cmd = (runs[0].get("command") if runs else None) or []
    if not cmd:
        cmd_txt = exp_dir / "cmd.txt"
        lines = [l for l in cmd_txt.read_text().splitlines() if l and not l.startswith("#")] if cmd_txt.is_file() else []
        cmd = shlex.split(lines[0]) if lines else []
    return shlex.join(["python", *cmd[1:]]) if cmd else None


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 360 else f"{seconds / 60:.1f} min"


def _readme(meta: dict[str, Any], scores: list[dict[str, Any]], name: str) -> str:
    enc, train = meta["encoder"], meta["train"]
    lines = [f"# {name}", "",
             f"An elfs2t {meta['model_name']} model ({', '.join(meta['tasks'])}), exported from `{meta['exported_from']}` "
             f"with elfs2t (commit {meta['source'].get('commit') or 'unknown'}).", "",
             "## Use", "", "```python", "import elfs2t", f'model = elfs2t.load("{name}")']
    lines += ['print(model.transcribe("audio.wav").text)' if "asr" in meta["tasks"] else
              'print(model.translate("audio.wav").text)', "```", "",
              f"or `python -m elfs2t.bin.transcribe --model {name} audio.wav` (`--help` for JSON / CTM output and "
              "n-best lists). The frozen models are found by name: "
              + ", ".join(f"`{r['name']}`" for r in [meta["encoder_ref"], *meta["frozen"].values()])
              + " (pass `encoder=` / `text_model=` to `elfs2t.load`, `--encoder` / `--text-model` to transcribe, or "
              "put them under `$ELFS2T_MODELS`); their weights must match the recorded fingerprints.", "",
              "## Scores", ""]
    setting = meta["decode_setting"]["tag"]
    if scores:
        metrics = sorted({m for s in scores for m in s["metrics"]} & {"WER", "CER", "BLEU", "chrF"})
        lines += ["| set | decoding | " + " | ".join(metrics) + " | utterances |",
                  "|---|---|" + "---|" * len(metrics) + "---|"]
        for s in scores:
            mark = " (this model's setting)" if s["decoding"] == setting else ""
            vals = " | ".join(f"{s['metrics'][m]:.2f}" if m in s["metrics"] else "-" for m in metrics)
            lines.append(f"| {s['set']} | {s['decoding']}{mark} | {vals} | {s['num_utts'] or '-'} |")
        lines += ["", f"Weights exported: {meta['weights']}; the scores above were measured with the EMA weights "
                      "unless the decoding's name says otherwise."]
    else:
        lines.append("No scored decodes in the experiment folder.")
    data = train.get("data") or {}
    lines += ["", "## Training", "",
              f"* model: {meta['model_name']}, {meta['params'] / 1e6:.2f} M trained parameters",
              f"* encoder: {enc['tag']} (frozen; dtype {enc.get('dtype') or '?'}, weights {enc.get('fingerprint') or '?'})",
              f"* steps: {train.get('step')}, training minutes: "
              + (f"{train['minutes']:.1f}" if train.get("minutes") is not None else "?"),
              f"* data: {', '.join(train.get('sets') or []) or '?'}"
              + (f" ({data['num_cuts']} utterances, {_hours(data['seconds'])}, the longest {data['max_duration']:.1f} s)"
                 if data.get("num_cuts") else ""),
              f"* decoding setting: {', '.join(meta['decode_setting']['overrides']) or 'the config section decode'}"]
    if train.get("command"):
        lines += ["", "Trained with:", "", "```", train["command"], "```"]
    return "\n".join(lines) + "\n"


def export_model(exp_dir: str | Path, out_dir: str | Path, *, average: int = 0, average_by: str = "last",
                 raw: bool = False, overwrite: bool = False) -> Path:
    """Write the portable folder of a trained experiment (see the module docstring); returns it."""
    from safetensors.torch import save_model

    exp_dir, out_dir = Path(exp_dir), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty (--overwrite replaces it)")
    loaded = load_experiment(exp_dir, ["decode.use_ema=false"] if raw else [], average=average,
                             average_by=average_by, use_setting=True)
    model, cfg = loaded.model, loaded.cfg
    kind = MODELS[cfg.model]
    record = experiment_encoder(exp_dir, cfg)
    if record is None:
        raise ConfigError(f"{exp_dir}: no record of the Whisper encoder it was trained on; cannot export it")
    bases = config_bases(exp_dir)
    frozen = read_frozen(exp_dir)
    refs = {key: frozen.get(key) or make_ref(value, None, bases)
            for key, value in kind.frozen_models(cfg).items() if value}
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    portable = kind.portable(model, cfg, tmp)
    out_cfg = load_config(ExperimentConfig, base=unstructure(cfg))
    out_cfg.data.train, out_cfg.data.valid = [], []
    out_cfg.init.denoiser = None
    for key, ref in refs.items():
        set_key(out_cfg, key, ref.name)
    for key, rel in portable.items():
        set_key(out_cfg, key, rel)
    dump_config(out_cfg, tmp / "config.yaml")
    save_model(model, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT, "model": cfg.model})
    from elfs2t.inference.model import model_tasks
    from elfs2t.inference.audio import model_seconds
    from elfs2t.results import count_params, train_minutes

    runs = read_run_info(exp_dir)
    train_data = read_train_data(exp_dir)
    overrides, tag = read_setting(exp_dir)
    enc = {k: v for k, v in asdict(record).items() if k != "model"}
    enc_ref = make_ref(record.model or record.name or record.tag, record.fingerprint, bases)
    enc_ref.value = None  # no machine paths: found by name (or hub id)
    meta = {
        "format": FORMAT, "version": 1, "model": cfg.model,
        "model_name": kind.display_name,
        "tasks": model_tasks(cfg), "weights": loaded.weights, "params": count_params(model),
        "encoder": enc, "encoder_ref": asdict(enc_ref),
        "frozen": {k: {**asdict(r), "value": r.hub_id} for k, r in refs.items()},
        "portable": portable,
        "decode_setting": {"overrides": overrides, "tag": tag},
        "max_seconds": model_seconds(train_data.get("max_duration"), cfg.data.max_utt_duration, None)[0],
        "train": {"step": loaded.state.get("step"), "minutes": train_minutes(exp_dir), "data": train_data,
                  "sets": [f"{Path(s.cuts).parent.name} ({s.target})" for s in cfg.data.train],
                  "command": _portable_command(runs, exp_dir)},
        "source": runs[-1].get("git", {}) if runs else {},
        "exported_from": exp_dir.name,
    }
    (tmp / MODEL_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    (tmp / "README.md").write_text(_readme(meta, _scores(exp_dir), out_dir.name))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    log.info("exported %s (%s) -> %s", exp_dir, loaded.weights, out_dir)
    return out_dir


def load_exported(folder: str | Path, *, device: str = "cpu", overrides: Sequence[str] = (),
                  encoder: Optional[str] = None, text_model: Optional[str] = None):
    """The :class:`~elfs2t.inference.model.SpeechModel` of an exported folder (no unpickling)."""
    from safetensors.torch import load_model

    from elfs2t.inference.model import SpeechModel, _check_frozen, build_encoder

    folder = Path(folder)
    try:
        meta = json.loads((folder / MODEL_FILE).read_text())
    except ValueError as exc:
        raise ConfigError(f"{folder / MODEL_FILE}: unreadable ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise ConfigError(f"{folder / MODEL_FILE}: not an exported elfs2t model (format {meta.get('format')!r})")
    cfg = load_config(ExperimentConfig, folder / "config.yaml", check_overrides(list(overrides)))
    kind = MODELS[cfg.model]
    frozen = {k: ModelRef(**v) for k, v in meta["frozen"].items()}
    locations = {k: find_model(ref, text_model, [folder], k) for k, ref in frozen.items()}
    for key, value in locations.items():
        set_key(cfg, key, value)
    for key, rel in meta.get("portable", {}).items():
        set_key(cfg, key, str(folder / rel))
    model = kind.build_for_weights(cfg)
    load_model(model, str(folder / WEIGHTS_FILE))
    _check_frozen(kind, model, cfg, frozen, locations)
    attach_ngram(model, folder)
    model.to(device).eval()
    record = EncoderRecord.from_dict(meta["encoder"])
    enc = build_encoder(record, find_model(ModelRef(**meta["encoder_ref"]), encoder, [folder], "encoder"), device,
                        str(folder))
    return SpeechModel(model, cfg, enc, source=str(folder), weights=meta["weights"],
                       max_seconds=float(meta["max_seconds"]), limit_why="its longest training utterance",
                       tasks=list(meta["tasks"]), device=device)
