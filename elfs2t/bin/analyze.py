"""Stage 7: latent-space error analysis of decoded sets (are errors close-distance confusions?).

    python -m elfs2t.bin.analyze --decode-dir exp/asr_elf/decode_ode4_g1_w1/asr_test \\
        --vocab-text data/lm/train_text.txt
    python -m elfs2t.bin.analyze --decode-dir exp/asr_elf/decode_ode4_g1_w1/asr_test \\
        --decode-dir exp/st_elf/decode_ode4_g1_w1/st_test --out-dir exp/analysis/asr_vs_st_elf
    python -m elfs2t.bin.analyze --decode-dir exp/asr_ar/decode_beam1/asr_test \\
        --text-space ../../tools/models/all-MiniLM-L6-v2 k=[1,5,20]

Each decode dir is a stage-5 output folder with ``text`` (hypotheses) and ``ref`` (references). Its experiment
(``--exp-dir``, default: the folder two levels up when it holds a ``config.yaml``) gives the word spaces:
ELF-S2T its text latent space and token head, the AR baseline its LM input embedding plus the latent space
of ``--text-space``; without a trained model only ``--text-space`` is used. Several decode dirs (e.g. ASR and
S2TT) go into one report, with a comparison section. Output (``--out-dir``, default ``<exp>/analysis/`` of
the first decode dir): ``report.md``, ``summary.json``, PNG histograms and per-substitution TSVs (see
elfs2t.analysis.report). Trailing ``key=value`` arguments override elfs2t.analysis.substitutions.AnalysisConfig.
"""
from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path
from typing import Optional

from elfs2t.analysis.align import read_decode_dir
from elfs2t.analysis.report import write_report
from elfs2t.analysis.sources import load_spaces
from elfs2t.analysis.substitutions import AnalysisConfig, analyze_set
from elfs2t.bin._cli import entry_point
from elfs2t.config import ConfigError, dump_config, load_config

log = logging.getLogger("elfs2t.analyze")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m elfs2t.bin.analyze", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--decode-dir", dest="decode_dirs", type=Path, action="append", required=True,
                   help="stage-5 decode folder with 'text' and 'ref' (repeatable: one report section each)")
    p.add_argument("--exp-dir", type=Path, default=None,
                   help="experiment of every decode dir (default: each decode dir's grandparent, if it has config.yaml)")
    p.add_argument("--label", dest="labels", action="append", default=None,
                   help="name of each decode dir in the report (repeatable, in order; default "
                        "<exp>/<inference tag>/<set>)")
    p.add_argument("--text-space", default=None,
                   help="text encoder (dir or hub id) for the latent spaces of models without one: required for "
                        "the AR baseline and for decode dirs without a trained model (ELF-S2T uses its own)")
    p.add_argument("--max-len", type=int, default=32, help="L of the --text-space latents (default 32)")
    p.add_argument("--vocab-text", type=Path, action="append", default=[],
                   help="extra vocabulary text, one sentence per line (e.g. the training text; repeatable)")
    p.add_argument("--conf", type=Path, default=None, help="YAML with AnalysisConfig fields")
    p.add_argument("--out-dir", type=Path, default=None,
                   help="output folder (default <exp>/analysis of the first decode dir)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="AnalysisConfig overrides, e.g. k=[1,5,10]")
    return p


def _exp_of(decode_dir: Path, given: Optional[Path]) -> Optional[Path]:
    if given is not None:
        return given
    exp = decode_dir.resolve().parent.parent
    return exp if (exp / "config.yaml").is_file() else None


def _default_label(decode_dir: Path) -> str:
    """``<exp>/<inference tag>/<set>`` from ``exp/<exp>/decode_<inference tag>/<set>``."""
    d = decode_dir.resolve()
    return f"{d.parent.parent.name}/{d.parent.name.removeprefix('decode_')}/{d.name}"


def _read_vocab(paths: list[Path]) -> list[str]:
    lines: list[str] = []
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"--vocab-text {path}: no such file")
        lines += [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return lines


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    try:
        cfg = load_config(AnalysisConfig, args.conf, args.overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.labels is not None and len(args.labels) != len(args.decode_dirs):
        get_parser().error(f"{len(args.labels)} --label for {len(args.decode_dirs)} --decode-dir")
    labels = args.labels or [_default_label(d) for d in args.decode_dirs]
    if len(set(labels)) != len(labels):
        get_parser().error(f"set labels must be unique, got {labels} (give --label per --decode-dir)")
    try:
        vocab = _read_vocab(args.vocab_text)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    exps = [_exp_of(d, args.exp_dir) for d in args.decode_dirs]
    out_dir = args.out_dir
    if out_dir is None:
        if exps[0] is None:
            get_parser().error("--out-dir is required when the first decode dir has no experiment folder")
        out_dir = exps[0] / "analysis"
    spaces_cache: dict[Optional[Path], object] = {}
    analyses = []
    for i, (decode_dir, exp) in enumerate(zip(args.decode_dirs, exps)):
        try:
            alignments, missing = read_decode_dir(decode_dir, cfg.normalizer)
            if exp not in spaces_cache:
                spaces_cache[exp] = load_spaces(exp, args.text_space, max_len=args.max_len)
        except (OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        spaces = spaces_cache[exp]
        analysis = analyze_set(alignments, spaces, cfg, label=labels[i], vocab_text=vocab, progress=not args.no_progress)
        analysis.info.update({"decode_dir": str(decode_dir), "exp_dir": str(exp) if exp else "",
                              "model": spaces.model_type, "missing_hyps": missing})
        analyses.append(analysis)
    given = argv if argv is not None else sys.argv[1:]
    command = "python -m elfs2t.bin.analyze " + " ".join(shlex.quote(a) for a in given)
    report = write_report(analyses, out_dir, cfg, command=command)
    dump_config(cfg, out_dir / "analysis_config.yaml")
    for a in analyses:
        s = a.summary()["distances"]
        shares = ", ".join(f"{sp} {s[sp]['cosine']['knn_share'][str(max(a.k))]:.1f}%" for sp in s)
        print(f"{a.label}: WER {a.wer:.2f}%, {a.counts['S']} substitutions; among the {max(a.k)} nearest words "
              f"(cosine): {shares}")
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
