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
from pathlib import Path

from lhotse import CutSet

from elfs2t.config import ConfigError, apply_overrides, dump_config, structure, unstructure
from elfs2t.data.dataset import check_target, target_text
from elfs2t.flow.sampler import SamplerConfig
from elfs2t.models.elf_text import load_text_elf
from elfs2t.results import count_params
from elfs2t.textfile import read_text, write_text

log = logging.getLogger("elfs2t.translate_text")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m elfs2t.bin.translate_text", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mt-exp", type=Path, required=True, help="the conditional text ELF's experiment folder")
    p.add_argument("--source", type=Path, required=True,
                   help="what to translate: a Kaldi text file (<utt-id> <text>, e.g. an ASR decode's text) or a "
                        "cuts manifest (*.jsonl.gz, with --source-target)")
    p.add_argument("--source-target", default="transcript", help="for a cuts manifest: which text to translate")
    p.add_argument("--ref", type=Path, required=True, help="cuts manifest holding the reference translations")
    p.add_argument("--ref-target", default="translation:en", help="the reference text of --ref (translation:<tgt>)")
    p.add_argument("--out-dir", type=Path, required=True, help="decode folder to write")
    p.add_argument("--batch-size", type=int, default=64, help="sources per generation batch")
    p.add_argument("overrides", nargs="*", metavar="sampler.key=value", help="sampler overrides, e.g. sampler.steps=8")
    return p


def _read_sources(path: Path, target: str) -> tuple[dict[str, str], dict]:
    """``{id: text}`` to translate and what the ASR that wrote them recorded (its ``timing.json``, if any)."""
    if not path.is_file():
        raise FileNotFoundError(f"--source {path}: no such file")
    if path.name.endswith(".jsonl.gz"):
        check_target(target, key="--source-target")
        return {c.id: target_text(c, target) for c in CutSet.from_file(path)}, {}
    timing = path.parent / "timing.json"
    return read_text(path), json.loads(timing.read_text()) if timing.is_file() else {}


def translate(args: argparse.Namespace) -> dict:
    bad = [o for o in args.overrides if not o.startswith("sampler.")]
    if bad:
        raise ConfigError(f"only sampler.* keys can be overridden, got {bad}")
    model, cfg, state = load_text_elf(args.mt_exp)
    if not cfg.model.conditional:
        raise ConfigError(f"{args.mt_exp}: model.conditional=false, a text model without a source cannot translate")
    data = apply_overrides({"sampler": unstructure(cfg.sampler)}, args.overrides)
    sampler = structure(SamplerConfig, data["sampler"], prefix="sampler")
    sources, asr = _read_sources(args.source, args.source_target)
    check_target(args.ref_target, key="--ref-target")
    if not args.ref.is_file():
        raise FileNotFoundError(f"--ref {args.ref}: no such file")
    refs = {c.id: target_text(c, args.ref_target) for c in CutSet.from_file(args.ref)}
    missing = sorted(set(sources) - set(refs))
    if missing:
        raise ValueError(f"{len(missing)} source ids have no reference in {args.ref}, e.g. {missing[:3]}")
    ids = sorted(sources)
    start = time.perf_counter()
    hyps = model.generate([sources[i] for i in ids], sampler, batch_size=args.batch_size)
    mt_seconds = time.perf_counter() - start
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_text(args.out_dir / "text", dict(zip(ids, hyps)))
    write_text(args.out_dir / "ref", {i: refs[i] for i in ids})
    dump_config(sampler, args.out_dir / "decode_config.yaml")
    timing = {"model": "cascade" if asr else "mt", "num_utts": len(ids), "mt_exp": str(args.mt_exp),
              "mt_train_step": state.get("step"), "mt_seconds": mt_seconds, "source": str(args.source),
              "steps": sampler.steps, "guidance": sampler.guidance, "method": sampler.method,
              "params": count_params(model.denoiser) + int(asr.get("params") or 0), "decode_seconds": mt_seconds,
              "reader": f"{asr.get('reader') or 'ASR'}, then the text ELF's flow" if asr else
              "the text ELF's flow from the reference transcript"}
    if asr.get("audio_seconds") and asr.get("decode_seconds") is not None:
        timing.update(audio_seconds=asr["audio_seconds"], asr_seconds=asr["decode_seconds"],
                      decode_seconds=asr["decode_seconds"] + mt_seconds,
                      rtfx=asr["audio_seconds"] / max(asr["decode_seconds"] + mt_seconds, 1e-9))
        timing.update({k: asr[k] for k in ("encoder", "encoder_rtfx") if k in asr})
    tmp = args.out_dir / "timing.json.tmp"
    tmp.write_text(json.dumps(timing, indent=1))
    tmp.replace(args.out_dir / "timing.json")
    return timing


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    try:
        timing = translate(args)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"translated {timing['num_utts']} texts in {timing['mt_seconds']:.1f} s -> {args.out_dir}/text")
    return 0


if __name__ == "__main__":
    sys.exit(main())
