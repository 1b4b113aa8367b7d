"""The cascade baseline's translation step: text -> text with a conditional text ELF (``pretrain_text`` with
``model.conditional=true``, trained on the training set's transcript / translation pairs), written as a decode
folder that stages 6 scores and the results table reads like any other.

    # an ASR model's hypotheses (a stage-5 decode folder's text): the cascade
    python -m elfs2t.bin.translate_text --mt-exp exp/mt_elf --source exp/joint_elf/decode_X/asr_de_test/text \\
        --ref data/manifests/cuts_st_test.jsonl.gz --ref-target translation:en \\
        --out-dir exp/cascade_elf/decode_X_mt_ode16_g1/st_test [sampler.steps=16 sampler.guidance=1]
    # the reference transcripts of a cuts manifest: the text MT model alone (the cascade's upper bound)
    python -m elfs2t.bin.translate_text --mt-exp exp/mt_elf --source data/manifests/cuts_st_test.jsonl.gz \\
        --source-target transcript --ref data/manifests/cuts_st_test.jsonl.gz --ref-target translation:en \\
        --out-dir exp/mt_elf/decode_ode16_g1/st_test
    # several at once, with one model load: --source, --ref and --out-dir repeated, taken in order
    python -m elfs2t.bin.translate_text --mt-exp exp/mt_elf --source A/text --ref REF_A --out-dir OUT_A \\
        --source B/text --ref REF_B --out-dir OUT_B

Output in ``out-dir``: ``text`` (translations), ``ref`` (the reference translation of every source id),
``decode_config.yaml`` (the sampler) and ``timing.json``: model ``cascade`` (``mt`` from reference transcripts),
``reader`` (the results table's "tokens from": the ASR's reader, then the text ELF's flow), the MT sampler's steps
and guidance, and -- for hypotheses of a decode folder -- the ASR's audio seconds,
decoding seconds, parameters and encoder added to the translation's, so that RTFx is the whole cascade's (from
encoder states). Sampler defaults: the MT experiment's ``sampler`` section; ``sampler.*`` overrides it.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lhotse import CutSet

from elfs2t import atomic
from elfs2t.bin._cli import entry_point
from elfs2t.config import ConfigError, apply_overrides, dump_config, structure, unstructure
from elfs2t.data.dataset import check_target, target_text
from elfs2t.errors import InputError
from elfs2t.flow.sampler import SamplerConfig
from elfs2t.pretrain.text import load_text_elf
from elfs2t.results import count_params
from elfs2t.textfile import read_text, write_text

log = logging.getLogger("elfs2t.translate_text")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m elfs2t.bin.translate_text", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mt-exp", type=Path, required=True, help="the conditional text ELF's experiment folder")
    p.add_argument("--source", type=Path, action="append", required=True,
                   help="what to translate: a Kaldi text file (<utt-id> <text>, e.g. an ASR decode's text) or a "
                        "cuts manifest (*.jsonl.gz, with --source-target); repeatable, with one --ref and "
                        "--out-dir each")
    p.add_argument("--source-target", default="transcript", help="for a cuts manifest: which text to translate")
    p.add_argument("--ref", type=Path, action="append", required=True,
                   help="cuts manifest holding the reference translations (one per --source)")
    p.add_argument("--ref-target", default="translation:en", help="the reference text of --ref (translation:<tgt>)")
    p.add_argument("--out-dir", type=Path, action="append", required=True, help="decode folder to write (one per --source)")
    p.add_argument("--batch-size", type=int, default=64, help="sources per generation batch")
    p.add_argument("overrides", nargs="*", metavar="sampler.key=value", help="sampler overrides, e.g. sampler.steps=8")
    return p


@dataclass
class _Job:
    """One translation: its sources ``{id: text}``, what the ASR that wrote them recorded, references, output."""

    source: Path
    sources: dict[str, str]
    asr: dict
    refs: dict[str, str]
    out_dir: Path


def _read_sources(path: Path, target: str) -> tuple[dict[str, str], dict]:
    """``{id: text}`` to translate and what the ASR that wrote them recorded (its ``timing.json``, if any)."""
    if not path.is_file():
        raise FileNotFoundError(f"--source {path}: no such file")
    if path.name.endswith(".jsonl.gz"):
        check_target(target, key="--source-target")
        return {c.id: target_text(c, target) for c in CutSet.from_file(path)}, {}
    timing = path.parent / "timing.json"
    return read_text(path), json.loads(timing.read_text()) if timing.is_file() else {}


def _read_job(source: Path, ref: Path, out_dir: Path, args: argparse.Namespace) -> _Job:
    sources, asr = _read_sources(source, args.source_target)
    if not ref.is_file():
        raise FileNotFoundError(f"--ref {ref}: no such file")
    refs = {c.id: target_text(c, args.ref_target) for c in CutSet.from_file(ref)}
    missing = sorted(set(sources) - set(refs))
    if missing:
        raise InputError(f"{len(missing)} source ids of {source} have no reference in {ref}, e.g. {missing[:3]}")
    return _Job(source=source, sources=sources, asr=asr, refs=refs, out_dir=out_dir)


def _write(job: _Job, ids: list[str], hyps: list[str], mt_seconds: float, sampler: SamplerConfig, extra: dict) -> dict:
    """The decode folder of one job; returns its timing.json."""
    asr = job.asr
    job.out_dir.mkdir(parents=True, exist_ok=True)
    write_text(job.out_dir / "text", dict(zip(ids, hyps)))
    write_text(job.out_dir / "ref", {i: job.refs[i] for i in ids})
    dump_config(sampler, job.out_dir / "decode_config.yaml")
    timing = {"model": "cascade" if asr else "mt", "num_utts": len(ids), **extra, "mt_seconds": mt_seconds,
              "source": str(job.source), "steps": sampler.steps, "guidance": sampler.guidance,
              "method": sampler.method, "params": extra["params"] + int(asr.get("params") or 0),
              "decode_seconds": mt_seconds,
              "reader": f"{asr.get('reader') or 'ASR'}, then the text ELF's flow" if asr else
              "the text ELF's flow from the reference transcript"}
    if asr.get("audio_seconds") and asr.get("decode_seconds") is not None:
        timing.update(audio_seconds=asr["audio_seconds"], asr_seconds=asr["decode_seconds"],
                      decode_seconds=asr["decode_seconds"] + mt_seconds,
                      rtfx=asr["audio_seconds"] / max(asr["decode_seconds"] + mt_seconds, 1e-9))
        timing.update({k: asr[k] for k in ("encoder", "encoder_rtfx") if k in asr})
    atomic.write_text(job.out_dir / "timing.json", json.dumps(timing, indent=1))
    return timing


def translate(args: argparse.Namespace) -> list[dict]:
    """Translate every --source into its --out-dir; all inputs are checked before the model loads."""
    bad = [o for o in args.overrides if not o.startswith("sampler.")]
    if bad:
        raise ConfigError(f"only sampler.* keys can be overridden, got {bad}")
    if not len(args.source) == len(args.ref) == len(args.out_dir):
        raise ConfigError(f"--source, --ref and --out-dir come in triples: got {len(args.source)} / "
                         f"{len(args.ref)} / {len(args.out_dir)}")
    check_target(args.ref_target, key="--ref-target")
    jobs = [_read_job(src, ref, out, args) for src, ref, out in zip(args.source, args.ref, args.out_dir)]
    model, cfg, state = load_text_elf(args.mt_exp)
    if not cfg.model.conditional:
        raise ConfigError(f"{args.mt_exp}: model.conditional=false, a text model without a source cannot translate")
    data = apply_overrides({"sampler": unstructure(cfg.sampler)}, args.overrides)
    sampler = structure(SamplerConfig, data["sampler"], prefix="sampler")
    extra = {"mt_exp": str(args.mt_exp), "mt_train_step": state.get("step"), "params": count_params(model.denoiser)}
    timings = []
    for job in jobs:
        ids = sorted(job.sources)
        start = time.perf_counter()
        hyps = model.generate([job.sources[i] for i in ids], sampler, batch_size=args.batch_size)
        timings.append(_write(job, ids, hyps, time.perf_counter() - start, sampler, extra))
        print(f"translated {len(ids)} texts in {timings[-1]['mt_seconds']:.1f} s -> {job.out_dir}/text")
    return timings


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    translate(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
