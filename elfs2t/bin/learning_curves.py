"""Learning curves of trained experiments side by side: a validation metric against wall time and steps.

    python -m elfs2t.bin.learning_curves --run elf=exp/asr_elf --run ar=exp/asr_ar \\
        --metric examples_wer --out-dir exp/curves

Reads each ``<exp>/train.log`` (elfs2t.analysis.curves), writes ``curves.md`` (a table of every
validation: run, step, training minutes, metric in %) and ``curves.png`` (metric against minutes and
against steps), and prints the table. ``examples_wer`` is the WER of the decoded validation examples
(``--num-valid-examples`` of bin/train); ``valid_loss`` works as well (``--scale 1``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from elfs2t.analysis.curves import curves_table, read_curve
from elfs2t.bin._cli import entry_point, named_path


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m elfs2t.bin.learning_curves", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", dest="runs", action="append", required=True, type=named_path("EXP_DIR"),
                   metavar="NAME=EXP_DIR",
                   help="a trained experiment and its label (repeatable)")
    p.add_argument("--metric", default="examples_wer", help="validation key to plot (default: examples_wer)")
    p.add_argument("--scale", type=float, default=100.0, help="multiply the metric by this (default 100: %%)")
    p.add_argument("--out-dir", type=Path, default=None, help="write curves.md and curves.png here")
    return p


def plot(curves: dict, metric: str, scale: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, points in curves.items():
        pts = [p for p in points if metric in p.metrics]
        y = [p.metrics[metric] * scale for p in pts]
        axes[0].plot([p.minutes for p in pts], y, marker="o", label=name)
        axes[1].plot([p.step for p in pts], y, marker="o", label=name)
    for ax, xlabel in zip(axes, ("training minutes", "optimiser steps")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(metric if scale == 1 else f"{metric} x {scale:g}")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    curves = {}
    for name, exp in args.runs:
        try:
            curves[name] = read_curve(exp / "train.log")
        except (FileNotFoundError, ValueError) as exc:
            raise SystemExit(str(exc)) from exc
    table = curves_table(curves, args.metric, args.scale)
    print(table, end="")
    if args.out_dir:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        (args.out_dir / "curves.md").write_text(table)
        plot(curves, args.metric, args.scale, args.out_dir / "curves.png")
        print(f"wrote {args.out_dir}/curves.md and curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
