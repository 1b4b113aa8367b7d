"""Audio-reliance diagnostics: decode a set with the audio replaced and sweep the CFG scale (docs/design.md §2.6).

For every audio condition (``decode.audio``: real, zero, noise, swap; :mod:`elfs2t.analysis.audio`) and every
CFG scale ``g`` (ELF-S2T only; the AR baseline has no CFG and is decoded once per condition), the set is
decoded with the loaded model and scored with :mod:`elfs2t.score` (WER, or BLEU and chrF) against its
references. If the model reads the audio, the score collapses without it; if the text prior alone carries
the output, zero / noise / swapped audio score close to the real one. Layout of ``out_dir``::

    decode_<inference_tag>/<set>/      text, ref, timing.json, decode_config.yaml, result.txt (stage 5/6 files)
    <set>/reliance.md                  the table: audio, g, score, change against real audio at the same g
    <set>/reliance.json                the same rows
    <set>/cfg_sweep.png                score against g, one line per audio condition

A decode whose ``decode_config.yaml`` matches the requested settings is reused (``force`` redoes it).
"""
from __future__ import annotations

import copy
import json
import logging
import math
from pathlib import Path
from typing import Optional

from lhotse import CutSet
from torch import nn

from elfs2t.analysis.audio import AUDIO_MODES
from elfs2t.config import dump_config, load_yaml, unstructure
from elfs2t.decode import decode_cuts
from elfs2t.experiment import ExperimentConfig, decode_tag, hypothesis_fn, model_kind
from elfs2t.score import ScoreConfig, score_files

__all__ = ["run_reliance", "format_table"]

log = logging.getLogger(__name__)

PRIMARY = {"wer": "WER", "bleu": "BLEU"}


def _decoded(dec_dir: Path, decode_cfg) -> bool:
    cfg_file = dec_dir / "decode_config.yaml"
    if not ((dec_dir / "text").is_file() and (dec_dir / "timing.json").is_file() and cfg_file.is_file()):
        return False
    return load_yaml(cfg_file) == unstructure(decode_cfg)


def _guided(cfg: ExperimentConfig):
    """The settings section of the experiment's decoding that holds a CFG scale (ELF-S2T's ``flow`` and ``refine``),
    else None (the AR baseline; ELF-S2T's draft, readout and rescoring): the kind's ``guidance_section``."""
    return model_kind(cfg).guidance_section(cfg)


def guidance_scales(cfg: ExperimentConfig, guidances: Optional[list[float]] = None) -> list[Optional[float]]:
    """The CFG scales to sweep: ``[None]`` (no sweep) for a decode that takes no guidance (:func:`_guided`), else
    ``guidances`` (default: the config's)."""
    section = _guided(cfg)
    if section is None:
        return [None]
    return list(guidances or [section.guidance])


def run_reliance(
    model: nn.Module,
    cfg: ExperimentConfig,
    cuts: CutSet,
    set_name: str,
    out_dir: Path,
    *,
    modes: list[str] = AUDIO_MODES,
    guidances: Optional[list[float]] = None,
    metric: str = "wer",
    seed: int = 0,
    force: bool = False,
    title: str = "",
) -> list[dict]:
    """Decode and score ``cuts`` under every (audio mode, CFG scale); writes the table and plot, returns the rows."""
    from elfs2t.analysis.plots import plot_sweep

    bad = [m for m in modes if m not in AUDIO_MODES]
    if bad:
        raise ValueError(f"unknown audio modes {bad}; choose from {AUDIO_MODES}")
    if metric not in PRIMARY:
        raise ValueError(f"metric {metric!r}: must be one of {sorted(PRIMARY)}")
    out_dir = Path(out_dir)
    scales = guidance_scales(cfg, guidances)
    lower = model_kind(cfg).lowercase(cfg)
    score_cfg = ScoreConfig(metric=metric)
    rows = []
    for mode in modes:
        for g in scales:
            run_cfg = copy.deepcopy(cfg)
            run_cfg.decode.audio = mode
            if g is not None:
                _guided(run_cfg).guidance = float(g)
            dec_dir = out_dir / f"decode_{decode_tag(run_cfg)}" / set_name
            if force or not _decoded(dec_dir, run_cfg.decode):
                log.info("decoding %s with audio=%s%s -> %s", set_name, mode, "" if g is None else f", g={g:g}", dec_dir)
                # seed: the same sampling noise for every condition, so only the audio differs
                decode_cuts(hypothesis_fn(model, run_cfg, seed), cuts, dec_dir, max_duration=cfg.decode.max_duration,
                            text_transform=str.lower if lower else None)
                dump_config(run_cfg.decode, dec_dir / "decode_config.yaml")
            report = score_files(dec_dir / "text", dec_dir / "ref", dec_dir, score_cfg, set_name=set_name)
            timing = json.loads((dec_dir / "timing.json").read_text())
            row = {"audio": mode, "guidance": g, "score": report.scores[PRIMARY[metric]], "num_utts": report.num_utts,
                   "rtfx": timing.get("rtfx"), "decode_dir": str(dec_dir)}
            if metric == "bleu":
                row["chrF"] = report.scores["chrF"]
            rows.append(row)
    real = {r["guidance"]: r["score"] for r in rows if r["audio"] == "real"}
    for r in rows:
        r["delta_vs_real"] = r["score"] - real[r["guidance"]] if r["guidance"] in real else None
    set_dir = out_dir / set_name
    set_dir.mkdir(parents=True, exist_ok=True)
    name = PRIMARY[metric]
    (set_dir / "reliance.json").write_text(json.dumps({"set": set_name, "metric": name, "model": cfg.model,
                                                        "rows": rows}, indent=1) + "\n")
    (set_dir / "reliance.md").write_text(format_table(rows, name, title or set_name))
    plot_sweep(rows, f"{name} ({'%' if metric == 'wer' else 'points'})", set_dir / "cfg_sweep.png",
               title=title or set_name)
    return rows


def _num(x: Optional[float], fmt: str = ".2f") -> str:
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def format_table(rows: list[dict], metric: str, title: str) -> str:
    """Markdown table of the rows of :func:`run_reliance`."""
    extra = "chrF" in rows[0] if rows else False
    lines = [f"# Audio reliance: {title}", "",
             f"{metric} with the audio features replaced (zero: all zeros; noise: Gaussian with the utterance's "
             "mean/std; swap: another utterance's features) and the CFG scale g; change against the real audio at "
             "the same g.", "",
             f"| audio | g | {metric} | change vs real |" + (" chrF |" if extra else "") + " utts | RTFx |",
             "|---|---|---|---|" + ("---|" if extra else "") + "---|---|"]
    for r in rows:
        g = "—" if r["guidance"] is None else f"{r['guidance']:g}"
        delta = "—" if r["delta_vs_real"] is None else f"{r['delta_vs_real']:+.2f}"
        chrf = f" {_num(r.get('chrF'))} |" if extra else ""
        lines.append(f"| {r['audio']} | {g} | {_num(r['score'])} | {delta} |{chrf} {r['num_utts']} | "
                     f"{_num(r['rtfx'], '.1f')} |")
    lines += ["", "![CFG sweep](cfg_sweep.png)", ""]
    return "\n".join(lines)
