"""Stage 3 (real recipes): fetch a released ELF checkpoint and check that it fits the experiment's denoiser.

    python -m elfs2t.bin.fetch_elf --conf conf/train.yaml [key.path=value ...]   # source = init.denoiser
    python -m elfs2t.bin.fetch_elf --source embedded-language-flows/ELF-B-owt-torch

The source is a ``checkpoint_<step>`` file, a folder holding them (the highest step is taken) or a hub id
(``owner/name``), fetched into the Hugging Face cache with ``snapshot_download``, so that stage 4 later
finds it there, also with ``HF_HUB_OFFLINE=1`` on nodes without internet. With ``--conf``, the stage-4
model is built from the config and the checkpoint is loaded into its denoiser exactly as stage 4 will
(strict: every tensor name and shape must match). Offline with a hub id that is not cached, it fails with
a message saying how to proceed. Prints the checkpoint file; ``--report`` also writes a JSON record.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from elfs2t.bin._cli import entry_point
from elfs2t.config import ConfigError, load_config
from elfs2t.models.elf_checkpoint import find_checkpoint_file

log = logging.getLogger("elfs2t.fetch_elf")

OFFLINE_HINT = (
    "fetch it on a machine with internet access (e.g. run this stage there; the file lands in the Hugging Face "
    "cache, HF_HOME), or download the checkpoint_<step> file yourself and point init.denoiser at that file or "
    "folder (run.sh --elf-init PATH)"
)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m elfs2t.bin.fetch_elf", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conf", type=Path, default=None,
                   help="stage-4 experiment YAML: the source is its init.denoiser, and the checkpoint is test-loaded "
                        "into the model it describes")
    p.add_argument("--source", default=None,
                   help="checkpoint file, folder or hub id (default: init.denoiser of --conf)")
    p.add_argument("--report", type=Path, default=None, help="write a JSON record (source, file, tensors loaded)")
    p.add_argument("overrides", nargs="*", metavar="key.path=value", help="overrides of --conf, as in stage 4")
    return p


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def fetch_elf(source: str | None, conf: Path | None, overrides: list[str]) -> dict:
    """Resolve the checkpoint file of ``source`` (or ``init.denoiser`` of ``conf``); test-load it when a conf is
    given. Returns ``{"source", "file", "size_mb", "loaded"?}``; raises FileNotFoundError / ElfCheckpointError."""
    cfg = None
    if conf is not None:
        from elfs2t.experiment import ExperimentConfig, model_kind
        from elfs2t.kinds.elf_s2t import ElfS2TKind

        cfg = load_config(ExperimentConfig, conf, overrides)
        if source is None:
            source = cfg.init.denoiser
            if not source:
                raise ConfigError(f"{conf}: init.denoiser is not set: nothing to fetch")
            if not isinstance(model_kind(cfg), ElfS2TKind):  # only ELF-S2T starts from an ELF denoiser
                raise ConfigError(f"{conf}: model={cfg.model!r} has no ELF denoiser to initialise")
    elif overrides:
        raise ConfigError(f"overrides {overrides} need --conf")
    if source is None:
        raise ConfigError("give --source or --conf")
    try:
        file = find_checkpoint_file(source)
    except FileNotFoundError as exc:
        if "hub id" in str(exc) and "failed" in str(exc):
            state = "offline (HF_HUB_OFFLINE is set)" if _offline() else "the hub could not be reached"
            raise FileNotFoundError(f"cannot fetch ELF checkpoint {source!r}: {state}; {OFFLINE_HINT}. Cause: {exc}") from exc
        raise
    report = {"source": str(source), "file": str(file), "size_mb": round(file.stat().st_size / 2**20, 1)}
    if cfg is not None:
        from elfs2t.experiment import build_model
        from elfs2t.models.init import init_denoiser

        cfg.init.denoiser = None  # build without init, then load exactly as stage 4 does
        model = build_model(cfg)
        loaded = init_denoiser(model.denoiser, file, strict=cfg.init.strict)
        report["loaded"] = loaded.get("loaded")
        d = cfg.elf.denoiser
        report["denoiser"] = {"hidden": d.hidden, "depth": d.depth, "heads": d.heads, "latent_dim": d.latent_dim,
                              "vocab_size": d.vocab_size}
    return report


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    report = fetch_elf(args.source, args.conf, args.overrides)  # errors: one line (ConfigError: exit 2, else 1)
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.report.with_name(args.report.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n")
        tmp.replace(args.report)
    fits = f"; fits {args.conf} ({report['loaded']} tensors loaded)" if "loaded" in report else ""
    print(f"ELF checkpoint {report['source']}: {report['file']} ({report['size_mb']} MB){fits}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
