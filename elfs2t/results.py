"""The comparison table of a recipe (stage 6): every scored decode of every experiment, per test set.

Layout scanned: ``<recipe>/exp/<exp>/decode_<inference>/<set>/result.txt`` (written by
:mod:`elfs2t.score`) with ``timing.json`` beside it (written by :mod:`elfs2t.decode`, annotated by
stage 5 with :func:`decode_info` and by ``elfs2t.bin.whisper_decode``). One row per
(experiment, inference setting, set); the table has one section per set, rows ordered ELF-S2T
(by steps, guidance), AR baseline, Whisper zero-shot, cascade, text ELF. Where each column comes from:

Audio-reliance diagnostic decodes (``timing.json`` ``audio``: zero / noise / swap) are left out.

* **model**: ``timing.json`` ``model`` (``elf_s2t``, ``ar``, ``whisper``, ``cascade``, ``mt``), else
  ``exp/<exp>/config.yaml`` ``model``, else ``whisper`` for ``exp/whisper_*``. That name picks the row's
  :class:`RowKind` (:func:`row_kinds`): a trained model's from its :class:`~elfs2t.kinds.base.ModelKind`, the
  systems that are no model of the registry (Whisper zero-shot, the cascade, text ELF) from :data:`OTHER_ROWS`.
* **tokens from**: ``timing.json`` ``reader`` -- which part of the model produced the tokens (ELF-S2T: the flow
  from noise, the text slots' readout, the CTC readout, the draft refined by the flow or rescored; the AR decoder;
  Whisper's decoder).
* **steps / g / beam**: ``timing.json`` (``steps``, ``guidance``, ``beam_size``), else the set's
  ``decode_config.yaml`` (the strategy's section: ``flow.steps``, ``flow.guidance``, ...; ``beam_size``), else
  the inference tag (``flow8_g2_ctc``, ``refine1_g1_t0.8``, ``steps32_g2.0``, ``nfe16``, ``beam4``).
* **RTFx**: audio seconds / ``decode_seconds``: text generation from encoder states, the same
  measure for every model (cached features for ELF-S2T / AR; for Whisper its decoder only).
  **RTFx e2e** adds the encoder: ``1 / (1 / RTFx + 1 / encoder_rtfx)``, where ``encoder_rtfx`` is
  Whisper's own log-mel + encoder throughput (pad30), or, for cached features, the stage-2 encoding
  throughput of the decoded set (``dump/<tag>/<set>/stats.json``, trim mode, all its processes).
* **params (M)**: parameters that turn encoder states into text (projector + denoiser / LM; the
  Whisper decoder), ``timing.json`` ``params``; the frozen encoder is named in **encoder**.
* **train / pre-train (min)**: wall time of stage 4 in ``exp/<exp>/train.log`` and of the backbone
  it starts from (``init.denoiser`` / ``ar.lm`` folder) — see :func:`train_minutes`.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

log = logging.getLogger(__name__)

__all__ = ["ResultRow", "RowKind", "OTHER_ROWS", "row_kinds", "parse_result_file", "decode_info", "train_minutes",
           "collect_results", "format_results_table", "write_results_table", "row_order"]

METRICS = ("WER", "CER", "BLEU", "BLEU_lc", "chrF", "chrF_lc")
SETTINGS = ("steps", "guidance", "beam_size")
"""The decoding-setting columns of the table (``steps``, ``g``, ``beam``)."""


@dataclass(frozen=True)
class RowKind:
    """How the table shows the rows of one kind of system (the name ``timing.json`` ``model`` records)."""

    title: str
    """The ``model`` column."""
    settings: tuple[str, ...] = SETTINGS
    """The setting columns (of :data:`SETTINGS`) that it has; the others stay empty."""
    reader: Optional[str] = None
    """The ``tokens from`` column where ``timing.json`` has no ``reader``."""
    zero_shot: bool = False
    """Not trained by the recipe: the ``train`` column says ``zero-shot``, no training time is read."""


OTHER_ROWS = {
    "whisper": RowKind("Whisper zero-shot", ("beam_size",), reader="Whisper's decoder", zero_shot=True),
    "cascade": RowKind("Cascade (ASR -> text ELF)"),
    "mt": RowKind("Text ELF (reference transcripts)"),
}
"""The systems of the table that are no model of the registry: Whisper zero-shot (``elfs2t.bin.whisper_decode``)
and the text-ELF translations of ``elfs2t.bin.translate_text`` (of an ASR output, or of the references)."""


def row_kinds() -> dict[str, RowKind]:
    """Every kind of row, in table order: the registry's models (:data:`elfs2t.experiment.MODELS`), then
    :data:`OTHER_ROWS`."""
    from elfs2t.experiment import MODELS

    return {**{name: RowKind(kind.title, kind.table_settings) for name, kind in MODELS.items()}, **OTHER_ROWS}


_UNKNOWN = RowKind("")
"""The rows of a ``model`` no kind has (titled by that name)."""
_METRIC_LINE = re.compile(r"^(WER|CER|BLEU|BLEU_lc|chrF|chrF_lc):\s*([-+]?(?:[0-9.]+|inf|nan))", re.MULTILINE)
_INT_LINE = re.compile(r"^(num_utts|missing_hyps):\s*(\d+)", re.MULTILINE)
_TAG_PARTS = {
    "steps": re.compile(r"(?:^|[_-])(?:steps?|nfe|ode|sde|flow|refine)(\d+)(?=$|[_-])"),
    "guidance": re.compile(r"(?:^|[_-])(?:g|cfg|guidance)(\d+(?:\.\d+)?)(?=$|[_-])"),
    "beam_size": re.compile(r"(?:^|[_-])beam(\d+)(?=$|[_-])"),
}
_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*?(step (\d+) epoch \d+: |training stopped by \S+ at step (\d+))")


@dataclass
class ResultRow:
    """One scored set of one experiment and inference setting."""

    exp: str
    inference: str
    set_name: str
    metrics: dict[str, float] = field(default_factory=dict)
    num_utts: Optional[int] = None
    missing: Optional[int] = None
    model: Optional[str] = None
    """Model kind: a key of :func:`row_kinds`, or whatever the experiment's config says."""
    reader: Optional[str] = None
    """What produced the tokens (``timing.json`` ``reader``, e.g. ``flow from noise``, ``CTC readout ...``)."""
    steps: Optional[str] = None
    guidance: Optional[str] = None
    beam_size: Optional[str] = None
    rtfx: Optional[float] = None
    rtfx_e2e: Optional[float] = None
    params: Optional[int] = None
    encoder: Optional[str] = None
    train_minutes: Optional[float] = None
    pretrain_minutes: Optional[float] = None


def parse_result_file(path: str | Path) -> tuple[dict[str, float], dict[str, int]]:
    """Metric values and counts (``num_utts``, ``missing_hyps``) of one ``result.txt``."""
    text = Path(path).read_text(encoding="utf-8")
    metrics = {m.group(1): float(m.group(2)) for m in _METRIC_LINE.finditer(text)}
    counts = {m.group(1): int(m.group(2)) for m in _INT_LINE.finditer(text)}
    return metrics, counts


# ---------------------------------------------------------------------------------------------
# What stage 5 records (timing.json)
# ---------------------------------------------------------------------------------------------
def count_params(module: Any) -> int:
    """Distinct parameters of a torch module (tied weights counted once)."""
    seen: dict[int, int] = {}
    for p in module.parameters():
        seen.setdefault(id(p), p.numel())
    return sum(seen.values())


def stage2_encoder(cuts: str | Path) -> dict[str, Any]:
    """``encoder`` tag and ``encoder_rtfx`` of a stage-2 cuts manifest, from ``plan.json`` / ``stats.json``
    beside it (empty when the cuts were not written by stage 2, or nothing was encoded in that run)."""
    folder = Path(cuts).parent
    info: dict[str, Any] = {}
    try:
        info["encoder"] = json.loads((folder / "plan.json").read_text())["tag"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        stats = json.loads((folder / "stats.json").read_text())
        if float(stats["audio_seconds"]) > 0 and float(stats["wall_seconds"]) > 0:
            info["encoder_rtfx"] = float(stats["audio_seconds"]) / float(stats["wall_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return info


def decode_info(cfg: Any, model: Any, *, cuts: Optional[str | Path] = None, train_step: Optional[int] = None) -> dict:
    """What stage 5 adds to ``timing.json`` for an :class:`~elfs2t.experiment.ExperimentConfig` model:
    model kind, decoding settings, parameters, training step, and the stage-2 encoder of ``cuts``."""
    from elfs2t.experiment import model_kind

    info: dict[str, Any] = {"model": cfg.model, "params": count_params(model), "train_step": train_step}
    audio = getattr(cfg.decode, "audio", "real")
    if audio != "real":  # an audio-reliance diagnostic decode (zeroed / noise / swapped features)
        info["audio"] = audio
    info.update(model_kind(cfg).decode_record(cfg))  # the reader and the decoding settings
    if cuts is not None:
        info["cuts"] = str(cuts)
        info.update(stage2_encoder(cuts))
    return info


# ---------------------------------------------------------------------------------------------
# Training time from train.log
# ---------------------------------------------------------------------------------------------
def _segment_seconds(points: list[tuple[float, int]], start_step: Optional[int]) -> float:
    """Seconds of one training invocation from its (time, step) log points, extrapolated back to
    ``start_step`` at the rate between the first and last point."""
    if len(points) < 2:
        return 0.0
    (t0, s0), (t1, s1) = points[0], points[-1]
    span = t1 - t0
    if start_step is not None and s1 > s0 and s0 > start_step:
        span += (s0 - start_step) * span / (s1 - s0)
    return max(span, 0.0)


def train_minutes(exp_dir: str | Path) -> Optional[float]:
    """Wall minutes of the training invocations logged in ``exp_dir/train.log`` (None: no log).

    The trainer logs a line every ``log_every`` steps and ``training stopped by ... at step N`` at the
    end of each invocation, with timestamps. Per invocation, the time from its first to its last line
    counts (validation included), extrapolated back to the step it resumed from at the invocation's
    own rate (the steps before its first line). An invocation that died without its stop line ends
    at its last line; the next one starts where its step count goes backwards.
    """
    path = Path(exp_dir) / "train.log"
    if not path.is_file():
        return None
    total, points = 0.0, []
    start_step: Optional[int] = 0
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            m = _LOG_LINE.match(line)
            if not m:
                continue
            t = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            stopped = m.group(4) is not None
            step = int(m.group(4) if stopped else m.group(3))
            if points and step < points[-1][1]:  # a crashed invocation, then a resumed one
                total += _segment_seconds(points, start_step)
                points, start_step = [], None
            points.append((t, step))
            if stopped:
                total += _segment_seconds(points, start_step)
                points, start_step = [], step
    total += _segment_seconds(points, start_step)
    return total / 60.0


def _backbone_dir(recipe_dir: Path, config: dict) -> Optional[Path]:
    """The pre-training exp dir a stage-4 experiment starts from (its kind's ``backbone_key``: ``init.denoiser``,
    ``ar.lm``); a config of no known model is read as the default model's."""
    from elfs2t.experiment import MODELS, ExperimentConfig

    model = config.get("model")
    if model is not None and not isinstance(model, str):
        return None  # no stage-4 experiment: a text ELF's config (pretrain_text), whose ``model`` holds its settings
    kind = MODELS.get(model, MODELS[ExperimentConfig.model])
    section, key = kind.backbone_key.split(".")
    source = (config.get(section) or {}).get(key)
    if not source:
        return None
    path = Path(source) if Path(source).is_absolute() else recipe_dir / source
    for candidate in (path, path.parent):
        if (candidate / "train.log").is_file():
            return candidate
    return None


# ---------------------------------------------------------------------------------------------
# Collecting
# ---------------------------------------------------------------------------------------------
def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        log.warning("%s: unreadable (%s); its columns are left empty", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        log.warning("%s: unreadable (%s); its columns are left empty", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def _num(value: Any) -> Optional[str]:
    """A setting as shown in the table: ``4``, ``1.5`` (None stays None)."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _settings(timing: dict, decode_cfg: dict, inference: str, kind: RowKind) -> dict[str, Optional[str]]:
    """steps / guidance / beam_size of one decode; a model kind keeps only its own settings (a stage-5
    ``decode_config.yaml`` holds the sampler defaults for the AR model too, and a beam size for ELF-S2T)."""
    section = decode_cfg.get(decode_cfg.get("strategy") or "") or {}
    section = section if isinstance(section, dict) else {}
    from_cfg = {"steps": section.get("steps"), "guidance": section.get("guidance"),
                "beam_size": decode_cfg.get("beam_size")}
    out = {}
    for key, pattern in _TAG_PARTS.items():
        m = pattern.search(inference)
        out[key] = next((_num(v) for v in (timing.get(key), from_cfg[key], m.group(1) if m else None)
                         if v is not None), None) if key in kind.settings else None
    return out


def collect_results(recipe_dir: str | Path, include_diagnostics: bool = False) -> list[ResultRow]:
    """Every ``exp/*/decode_*/*/result.txt`` of a recipe, in table order (set, model kind, settings).

    Audio-reliance diagnostic decodes (``timing.json`` ``audio`` other than ``real``: zeroed, noise or
    swapped features) are not system results and are left out unless ``include_diagnostics``.
    """
    recipe_dir = Path(recipe_dir)
    kinds = row_kinds()
    rows = []
    exp_cache: dict[str, tuple[dict, Optional[float], Optional[float]]] = {}
    for result in sorted(recipe_dir.glob("exp/*/decode_*/*/result.txt")):
        set_dir = result.parent
        exp_dir = set_dir.parent.parent
        inference = set_dir.parent.name[len("decode_"):]
        metrics, counts = parse_result_file(result)
        timing = _read_json(set_dir / "timing.json")
        if timing.get("audio", "real") != "real" and not include_diagnostics:
            continue
        if exp_dir.name not in exp_cache:
            config = _read_yaml(exp_dir / "config.yaml")
            backbone = _backbone_dir(recipe_dir, config)
            exp_cache[exp_dir.name] = (config, train_minutes(exp_dir), train_minutes(backbone) if backbone else None)
        config, train_min, pretrain_min = exp_cache[exp_dir.name]
        model = timing.get("model") or config.get("model") or ("whisper" if exp_dir.name.startswith("whisper") else None)
        kind = kinds.get(model or "", _UNKNOWN)
        rtfx = rtfx_e2e = None
        try:
            audio, dec = float(timing["audio_seconds"]), float(timing["decode_seconds"])
            rtfx = audio / dec if dec > 0 else None
        except (KeyError, TypeError, ValueError):
            if timing:
                log.warning("%s: no audio_seconds / decode_seconds; RTFx left empty", set_dir / "timing.json")
        if rtfx and timing.get("encoder_rtfx"):
            rtfx_e2e = 1.0 / (1.0 / rtfx + 1.0 / float(timing["encoder_rtfx"]))
        rows.append(ResultRow(
            exp=exp_dir.name, inference=inference, set_name=set_dir.name, metrics=metrics,
            num_utts=counts.get("num_utts"), missing=counts.get("missing_hyps"), model=model,
            reader=timing.get("reader") or kind.reader,
            **_settings(timing, _read_yaml(set_dir / "decode_config.yaml"), inference, kind),
            rtfx=rtfx, rtfx_e2e=rtfx_e2e, params=timing.get("params"), encoder=timing.get("encoder"),
            train_minutes=None if kind.zero_shot else train_min,
            pretrain_minutes=None if kind.zero_shot else pretrain_min,
        ))
    order = list(kinds)
    return sorted(rows, key=lambda r: row_order(r, order))


def row_order(r: ResultRow, kinds: list[str]) -> tuple:
    kind = kinds.index(r.model) if r.model in kinds else len(kinds)

    def num(v: Optional[str]) -> float:
        try:
            return float(v) if v is not None else -1.0
        except ValueError:
            return -1.0

    return r.set_name, kind, r.exp, num(r.steps), num(r.guidance), num(r.beam_size), r.inference


# ---------------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------------
def _fmt(value: Optional[float], digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def format_results_table(rows: list[ResultRow]) -> str:
    """Markdown: one section (``### <set>``) and table per set; empty cells where a value is unknown."""
    kinds = row_kinds()
    out = []
    for set_name in dict.fromkeys(r.set_name for r in rows):
        part = [r for r in rows if r.set_name == set_name]
        metrics = [m for m in METRICS if any(m in r.metrics for r in part)]
        header = ["model", "exp", "decoding", "tokens from", "steps", "g", "beam",
                  *[f"{m} (%)" if m in ("WER", "CER") else m for m in metrics],
                  "RTFx", "RTFx e2e", "params (M)", "encoder", "train (min)", "pre-train (min)", "utts"]
        lines = [f"### {set_name}", "", "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        for r in part:
            utts = "" if r.num_utts is None else str(r.num_utts)
            if r.missing:
                utts += f" ({r.missing} missing)"
            kind = kinds.get(r.model or "", _UNKNOWN)
            train = "zero-shot" if kind.zero_shot else _fmt(r.train_minutes, 1)
            cells = [kind.title or r.model or "", r.exp, r.inference, r.reader or "", r.steps or "",
                     r.guidance or "", r.beam_size or "", *[_fmt(r.metrics.get(m), 2) for m in metrics],
                     _fmt(r.rtfx, 1), _fmt(r.rtfx_e2e, 1), _fmt(None if r.params is None else r.params / 1e6, 2),
                     r.encoder or "", train, _fmt(r.pretrain_minutes, 1), utts]
            lines.append("| " + " | ".join(cells) + " |")
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


HEADER = """\
WER/CER in % after the scoring normaliser; BLEU/chrF by sacrebleu (cased, and lower-cased `_lc`).
RTFx = audio seconds / seconds to generate the text from encoder states (cached features for ELF-S2T
and AR; Whisper's decoder only). RTFx e2e adds the Whisper encoder: Whisper zero-shot encodes 30-s
padded inputs itself; ELF-S2T / AR use the stage-2 encoding throughput of the set (trimmed inputs).
params: what turns encoder states into text (projector + denoiser / LM; Whisper's decoder), the
frozen encoder named beside it. train: stage-4 wall time from train.log; pre-train: its stage-3 backbone.
"""


def write_results_table(recipe_dir: str | Path, out_file: Optional[str | Path] = None) -> Path:
    """Write the results table of ``recipe_dir`` to ``out_file`` (default ``<recipe_dir>/RESULTS.md``)."""
    recipe_dir = Path(recipe_dir)
    out_file = Path(out_file) if out_file is not None else recipe_dir / "RESULTS.md"
    rows = collect_results(recipe_dir)
    if not rows:
        log.warning("%s: no exp/*/decode_*/*/result.txt found", recipe_dir)
    text = f"# Results: {recipe_dir.resolve().name}\n\n{HEADER}\n" + format_results_table(rows)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(f".{out_file.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out_file)
    return out_file
