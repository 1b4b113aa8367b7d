"""Benchmarks: decoding, training and feature caching, printed side by side (see docs/benchmarks.md).

    python -m elfs2t.bin.benchmark decode   [--cuts CUTS] [--elf-exp EXP ...] [--ar-exp EXP] [--ar-beams 1 4] \\
        [--encoder DIR|random:large-v3] [--whisper DIR] [--faster-whisper auto|DIR] [--steps 4 8 16 32 64] \\
        [--strategies flow refine draft readout rescore] [--t-start 0.8] [--guidance 2] [--read-levels 1 0.3] \\
        [--draft-beams 0 4] [--draft-lm 0.5 2] [--repeats 3]
    python -m elfs2t.bin.benchmark train    [--cuts CUTS] [--models elf_s2t ar] [--processes 1 2]
    python -m elfs2t.bin.benchmark features [--cuts CUTS] [--encoders DIR ...]
    python -m elfs2t.bin.benchmark scale    [--num-cuts 281241] [--feat-dim 1280] [--num-workers 2]

Without ``--cuts`` every benchmark runs on synthetic utterances (random frames, noise audio): speed only,
no accuracy. With stage-2 cuts (``dump/<encoder_tag>/<set>/cuts.jsonl.gz``, which keep their recordings)
the same utterances feed every system, and trained experiments are scored (WER or BLEU). Without trained
experiments, random-weight models of ``--size`` are built (ELF-S2T with ``prefix_attention`` full and
self, and the AR baseline). The header prints the machine's load average: the numbers are only as quiet
as the machine. ``--out-dir`` writes ``<benchmark>.md`` / ``.json`` (and ``speed_accuracy.png`` for decode).
With scores, ``decode`` also prints the matched-accuracy table (each ELF-S2T setting against the fastest AR setting
at least as accurate, and the speed ratio) and the speed/accuracy frontier (elfs2t.bench.matched).

GPU: ``--device cuda --dtype bf16 --size elf-b --encoder random:large-v3`` (ELF-B-sized models,
a whisper-large-v3-sized random encoder); MFU uses the bf16 peak of known GPUs or ``--peak-tflops``.

``scale`` simulates the data side of a LibriSpeech-960-h training process (a synthetic manifest of 281,241 cuts
with cached features, written to a temporary folder and deleted after): memory and time of the manifest, the
sampler, the data loader and the latent cache, checked against a stated budget (elfs2t.bench.scale).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

from elfs2t.bin._cli import entry_point

log = logging.getLogger("elfs2t.benchmark")


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data (the same utterances and batches for every system)")
    g.add_argument("--cuts", default=None, help="stage-2 cuts manifest (features + recordings); default: synthetic")
    g.add_argument("--target", default="transcript", help="transcript or translation:<tgt> (references)")
    g.add_argument("--max-utts", type=int, default=64, help="first N cuts of --cuts (0: all; train cycles over them)")
    g.add_argument("--num-synthetic", type=int, default=32, help="synthetic utterances when no --cuts")
    g.add_argument("--min-duration", type=float, default=2.0, help="synthetic: shortest utterance (s)")
    g.add_argument("--max-duration", type=float, default=4.0, help="synthetic: longest utterance (s)")
    g.add_argument("--feat-dim", type=int, default=384, help="synthetic: encoder frame width (tiny 384, large-v3 1280)")
    g.add_argument("--batch-size", type=int, default=16, help="utterances per batch (per process for train)")
    g = p.add_argument_group("machine")
    g.add_argument("--device", default="cpu", help="cpu or cuda")
    g.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"], help="compute dtype")
    g.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    g.add_argument("--peak-tflops", type=float, default=0.0, help="peak TFLOP/s for MFU (0: known GPUs in bf16)")
    g.add_argument("--out-dir", type=Path, default=None, help="write <benchmark>.md/.json (and the plot) here")
    g.add_argument("--seed", type=int, default=0, help="seed of synthetic data and sampling")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m elfs2t.bin.benchmark", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="bench", required=True)
    d = sub.add_parser("decode", help="decoding speed/accuracy of every system")
    _common(d)
    d.add_argument("--steps", type=int, nargs="+", default=[4, 8, 16, 32, 64],
                   help="flow steps of the flow and refine strategies")
    d.add_argument("--strategies", nargs="+", default=["flow"],
                   choices=["flow", "refine", "draft", "readout", "rescore"],
                   help="ELF-S2T decoding strategies (decode.strategy): flow (from noise) and refine (the CTC draft "
                        "refined from --t-start) at every --steps, draft (the CTC readout), readout (the text slots on "
                        "noise) and rescore (the draft rescored by both readouts) once")
    d.add_argument("--t-start", type=float, default=0.8, help="time at which the refine strategy's draft enters the path")
    d.add_argument("--guidance", type=float, default=2.0, help="CFG scale of the guided rows (g = 1 always runs)")
    d.add_argument("--read-levels", type=float, nargs="+", default=[],
                   help="signal levels at which the flow strategy reads its final latents (decode.flow.read_level), "
                        "one row each (default: the experiment's own setting)")
    d.add_argument("--draft-beams", type=int, nargs="+", default=[],
                   help="widths of the draft strategy's CTC prefix beam search (decode.draft.beam; 0: greedy), one "
                        "row each (default: the experiment's own setting)")
    d.add_argument("--draft-lm", type=float, nargs=2, default=[], metavar=("WEIGHT", "BONUS"),
                   help="each --draft-beams width >= 1 also fused with the experiment's n-gram (ngram.json: "
                        "decode.draft.lm_weight / lm_bonus), one more row each")
    d.add_argument("--method", default="ode", choices=["ode", "sde"], help="ELF-S2T sampler")
    d.add_argument("--elf-exp", dest="elf_exps", action="append", default=[], help="trained ELF-S2T exp dir (repeatable)")
    d.add_argument("--ar-exp", default=None, help="trained AR exp dir")
    d.add_argument("--ar-beams", type=int, nargs="+", default=[1, 4],
                   help="AR beam sizes, one AR system each (1: greedy; N: beam search as stage 5's decode.beam_size=N)")
    d.add_argument("--no-ar", action="store_true", help="leave the AR baseline out")
    d.add_argument("--size", default="mini", help="random model size: tiny, mini, elf-b")
    d.add_argument("--kinds", nargs="+", default=["full", "self"], help="random ELF-S2T prefix_attention kinds")
    d.add_argument("--text-len", type=int, default=24, help="L of random ELF-S2T models")
    d.add_argument("--ar-tokens", type=int, default=0, help="AR generation limit (0: 2 x longest reference + 1, or L)")
    d.add_argument("--encoder", default=None, help="Whisper encoder for the e2e columns (dir, hub id, random:<size>)")
    d.add_argument("--whisper", default=None, help="Whisper model for zero-shot decoding (transformers)")
    d.add_argument("--faster-whisper", default=None, help="CTranslate2 Whisper dir, or auto (offline tiny.en)")
    d.add_argument("--whisper-task", default="transcribe", help="transcribe or translate")
    d.add_argument("--latency-utts", type=int, default=4, help="utterances decoded one by one for latency")
    d.add_argument("--repeats", type=int, default=1,
                   help="timed passes per system; utt/s and latency from the fastest (noisy short runs: 3)")
    d.add_argument("--metric", default="wer", choices=["wer", "bleu"], help="accuracy metric")
    d.add_argument("--baseline", default="ar", help="family (elf, ar, whisper, faster-whisper) or name for ratios")
    d.add_argument("--compile", action="store_true", help="also run every ELF-S2T setting with torch.compile")
    t = sub.add_parser("train", help="training throughput, data waiting, 1 -> N processes")
    _common(t)
    t.add_argument("--models", nargs="+", default=["elf_s2t", "ar"], help="elf_s2t and/or ar")
    t.add_argument("--size", default="mini", help="model size: tiny, mini, elf-b")
    t.add_argument("--steps", type=int, default=8, help="timed steps")
    t.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    t.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="process counts")
    t.add_argument("--num-workers", type=int, default=0, help="DataLoader workers per process (with --cuts)")
    t.add_argument("--no-latent-cache", action="store_true", help="skip the ELF-S2T run with cached text latents")
    t.add_argument("--text-len", type=int, default=24, help="L of ELF-S2T")
    f = sub.add_parser("features", help="Whisper feature caching, pad30 vs trim")
    _common(f)
    f.add_argument("--encoders", nargs="+", default=None, help="Whisper dirs / hub ids / random:<size> (default: offline bundles)")
    s = sub.add_parser("scale", help="memory and start-up of the data side at LibriSpeech-960-h size",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    from elfs2t.bench.scale import ScaleBenchConfig

    d = ScaleBenchConfig()
    for name in ("num_cuts", "feat_dim", "distinct_feats", "max_duration", "num_buckets", "text_len", "latent_dim",
                 "sampler_batches", "batches", "num_workers", "cache_mb", "cache_fill", "budget_gb", "start_budget_s", "seed"):
        s.add_argument("--" + name.replace("_", "-"), type=type(getattr(d, name)), default=getattr(d, name),
                       help=_field_doc(ScaleBenchConfig, name))
    s.add_argument("--tokenizer", default=None, help=_field_doc(ScaleBenchConfig, "tokenizer"))
    s.add_argument("--work-dir", type=Path, default=None, help=_field_doc(ScaleBenchConfig, "work_dir"))
    s.add_argument("--keep", action="store_true", help=_field_doc(ScaleBenchConfig, "keep"))
    s.add_argument("--out-dir", type=Path, default=None, help="write scale.md/.json here")
    return p


def _field_doc(cls, name: str) -> str:
    """The docstring under a dataclass field (the help text of its option)."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == name and \
                isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            return " ".join(str(nxt.value.value).split())
    return name


def _utterances(args, need_feats: bool, need_audio: bool):
    from elfs2t.bench.common import load_utterances, synthetic_utterances

    if args.cuts:
        return load_utterances(args.cuts, max_utts=args.max_utts, target=args.target, feats=need_feats, audio=need_audio)
    return synthetic_utterances(args.num_synthetic, feat_dim=args.feat_dim, min_duration=args.min_duration,
                                max_duration=args.max_duration, audio=need_audio, seed=args.seed)


def run(args) -> dict:
    """Run the chosen benchmark; returns its result dict (``rows``, ``table``, ``header``)."""
    from elfs2t.bench.common import env_header

    if args.bench == "scale":
        from elfs2t.bench.scale import ScaleBenchConfig, run_scale_bench

        fields = {k: v for k, v in vars(args).items() if k in ScaleBenchConfig.__dataclass_fields__}
        result = run_scale_bench(ScaleBenchConfig(**fields))
        result["header"] = env_header("cpu", "fp32") + result["header_extra"]
        return result
    if args.threads:
        torch.set_num_threads(args.threads)
    first = f"first {args.max_utts or 'all'} cuts" + (", the training loader cycling over them" if args.bench == "train" else "")
    source = f"data: {args.cuts} ({first})" if args.cuts else \
        f"data: {args.num_synthetic} synthetic utterances of {args.min_duration}-{args.max_duration} s (speed only)"
    if args.bench == "decode":
        from elfs2t.bench.decode import DecodeBenchConfig, run_decode_bench

        cfg = DecodeBenchConfig(
            steps=args.steps, strategies=args.strategies, t_start=args.t_start, guidance=args.guidance,
            read_levels=args.read_levels, draft_beams=args.draft_beams, draft_lm=args.draft_lm, method=args.method,
            elf_exps=args.elf_exps, ar_exp=args.ar_exp, ar_beams=args.ar_beams,
            no_ar=args.no_ar, size=args.size, kinds=args.kinds, text_len=args.text_len, ar_tokens=args.ar_tokens,
            encoder=args.encoder, whisper=args.whisper, faster_whisper=args.faster_whisper,
            whisper_task=args.whisper_task, batch_size=args.batch_size, latency_utts=args.latency_utts, repeats=args.repeats,
            metric=args.metric, baseline=args.baseline, device=args.device, dtype=args.dtype, compile=args.compile,
            peak_tflops=args.peak_tflops, seed=args.seed)
        need_audio = bool(args.encoder or args.whisper or args.faster_whisper)
        utts = _utterances(args, need_feats=True, need_audio=need_audio)
        result = run_decode_bench(cfg, utts)
        extra = f"{result['num_utts']} utterances, {result['audio_seconds']:.0f} s of audio, batch {args.batch_size}; " \
                f"ratios against: {result['baseline']}"
    elif args.bench == "train":
        from elfs2t.bench.train import TrainBenchConfig, run_train_bench

        cfg = TrainBenchConfig(models=args.models, size=args.size, latent_cache=not args.no_latent_cache,
                               batch_size=args.batch_size, steps=args.steps, warmup=args.warmup,
                               processes=args.processes, threads=max(1, args.threads or torch.get_num_threads()),
                               num_workers=args.num_workers, text_len=args.text_len, device=args.device,
                               dtype="bf16" if args.dtype == "bf16" else "fp32", peak_tflops=args.peak_tflops,
                               max_cuts=args.max_utts, seed=args.seed)
        if args.cuts:
            result = run_train_bench(cfg, cuts=args.cuts)
        else:
            result = run_train_bench(cfg, utts=_utterances(args, need_feats=True, need_audio=False), feat_dim=args.feat_dim)
        extra = f"batch {args.batch_size} per process, {args.steps} timed steps after {args.warmup}, " \
                f"{cfg.threads} thread(s) per process"
    else:
        from elfs2t.bench.features import FeatureBenchConfig, run_features_bench

        cfg = FeatureBenchConfig(batch_size=args.batch_size, device=args.device, dtype=args.dtype,
                                 peak_tflops=args.peak_tflops, **({"encoders": args.encoders} if args.encoders else {}))
        result = run_features_bench(cfg, _utterances(args, need_feats=False, need_audio=True))
        extra = f"{result['audio_seconds']:.0f} s of audio, batch {args.batch_size}"
    result["header"] = env_header(args.device, args.dtype) + [source, extra]
    return result


def _accuracy_sections(result: dict) -> list[str]:
    """The matched-accuracy table and the frontier of a decode result (nothing without scores)."""
    out = []
    if result["matched_table"]:
        better = "higher" if result["higher_better"] else "lower"
        out += [f"## speed at matched accuracy (batch {result['batch_size']}; {result['score_name']}, {better} is better)",
                "", "Each ELF-S2T setting against the fastest AR setting at least as accurate; where none is, against "
                "the most accurate AR setting (the ELF-S2T setting is then more accurate than every AR setting). "
                "x utt/s = ELF-S2T utt/s / AR utt/s.", "", result["matched_table"], ""]
    if result["frontier"]:
        out += ["speed/accuracy frontier (slowest first): " + "; ".join(result["frontier"]), ""]
    return out


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    import transformers

    transformers.logging.set_verbosity_error()
    result = run(args)
    lines = [f"# benchmark {args.bench}", ""] + [f"    {h}" for h in result["header"]] + ["", result["table"], ""]
    if args.bench == "decode":
        lines += _accuracy_sections(result)
    text = "\n".join(lines)
    print(text)
    if args.out_dir:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        (args.out_dir / f"{args.bench}.md").write_text(text)
        saved = {"header": result["header"], "rows": result["rows"]}
        if args.bench == "decode":
            saved.update(score_name=result["score_name"], higher_better=result["higher_better"],
                         matched=result["matched"], frontier=result["frontier"])
        (args.out_dir / f"{args.bench}.json").write_text(json.dumps(saved, indent=1, default=str))
        if args.bench == "decode":
            from elfs2t.bench.plot import plot_decode

            png = plot_decode(result["rows"], args.out_dir / "speed_accuracy.png", result["score_name"],
                              title=result["header"][-1], higher_better=result["higher_better"])
            print(f"plot: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
