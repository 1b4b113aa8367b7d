"""Stage 4: train a speech-to-text model (ELF-S2T or the AR baseline) on cached Whisper features.

    python -m elfs2t.bin.train --conf conf/train_asr.yaml --exp-dir exp/asr_elf [key.path=value ...]

Runs the same code on one CPU process and under torchrun (``utils/launch.sh``) on N GPUs or CPU
processes. ``exp-dir`` records the resolved config, the command and the logs, the encoder of the training features
(``encoder.json``: every training and validation set must come from the same encoder, mode and dtype), the code,
packages and hardware of each run (``run_info.json``) and the training data (``train_data.json``); it is never
reused with a different config once it holds a checkpoint (``--overwrite`` to force). Nothing is written there
before the data is read and the model built, so a failed start (a mistyped ``data.train`` path) does not block the
corrected run. A re-run resumes from the last checkpoint (mid-epoch, same sampler position) unless ``--no-resume``,
which deletes the folder's checkpoints and starts over, and refuses training features of another encoder. Cuts
dropped by the data filter (audio longer than ``data.max_utt_duration``, a text longer than the model's text slots)
are counted in ``train.log`` and listed with their reasons in ``exp-dir/dropped_cuts.tsv``.
"""
from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

import torch

from elfs2t.bin._cli import entry_point
from elfs2t.config import load_config, unstructure
from elfs2t.data.dataset import S2TDataset, filter_cuts, load_sets, target_text
from elfs2t.errors import InputError
from elfs2t.experiment import ExperimentConfig, build_model, check_for_ddp, hypothesis_fn, model_kind
from elfs2t.features.record import FeatureMismatchError, record_training, sets_record
from elfs2t.inference.references import FROZEN_FILE, make_ref, record_frozen
from elfs2t.train.checkpoint import list_checkpoints
from elfs2t.train.data import build_dataloader
from elfs2t.train.distributed import cleanup, init_distributed
from elfs2t.train.exp_dir import check_exp_dir, record_exp_dir, setup_file_logging, write_dropped_cuts
from elfs2t.train.run_info import append_run_info, write_train_data
from elfs2t.train.trainer import Trainer

log = logging.getLogger("elfs2t.train")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m elfs2t.bin.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conf", type=Path, required=True, help="experiment YAML (elfs2t.experiment.ExperimentConfig)")
    p.add_argument("--exp-dir", type=Path, required=True, help="output folder exp/<tag>")
    p.add_argument("--overwrite", action="store_true", help="reuse exp-dir even if its stored config differs")
    p.add_argument("--no-resume", action="store_true",
                   help="start from scratch: the checkpoints already in exp-dir are deleted when training starts")
    p.add_argument("--num-valid-examples", type=int, default=50,
                   help="dev utterances decoded at each validation, their WER logged (examples_wer, and wer_<strategy> "
                        "for decode.valid_strategies) and the first 4 printed (0: none)")
    p.add_argument("overrides", nargs="*", metavar="key.path=value", help="config overrides, e.g. optim.lr=2e-3")
    return p


def valid_examples_hook(cfg: ExperimentConfig, cuts, n: int):
    """``on_validate``: decode ``n`` dev utterances, log hypothesis / reference pairs and their WER
    (``examples_wer``), and the WER of each of the model kind's ``valid_decodings`` (``wer_<name>``; ELF-S2T: every
    strategy in ``decode.valid_strategies``), so that the learning curves show each reader side by side."""
    if n <= 0 or cuts is None:
        return None
    import jiwer
    from lhotse import CutSet

    sample = CutSet.from_cuts(list(cuts.subset(first=n)))
    dataset = S2TDataset(text_transform=str.lower if model_kind(cfg).lowercase(cfg) else None)
    extra = model_kind(cfg).valid_decodings(cfg)  # name -> config, e.g. ELF-S2T's decode.valid_strategies

    def wer(refs: list[str], hyps: list[str]) -> float:
        return jiwer.wer([r or "<empty>" for r in refs], [h or "<empty>" for h in hyps])

    def hook(model, step):
        batch = dataset[sample]
        was_training = model.training
        model.eval()
        hyps = hypothesis_fn(model, cfg)(batch)
        out = {"examples_wer": wer(batch["text"], hyps)}
        for name, other in extra.items():
            out[f"wer_{name}"] = wer(batch["text"], hypothesis_fn(model, other)(batch))
        model.train(was_training)
        for cid, hyp, ref in list(zip(batch["cut_ids"], hyps, batch["text"]))[:4]:
            log.info("step %d %s\n  REF: %s\n  HYP: %s", step, cid, ref, hyp)
        return out

    return hook


def _counts(counts: dict) -> str:
    """``kept 18, dropped 2 (too_long_audio 1, too_long_text 1)`` from :func:`filter_cuts`' counts."""
    reasons = {k: v for k, v in counts.items() if k != "kept" and v}
    detail = f" ({', '.join(f'{k} {v}' for k, v in reasons.items())})" if reasons else ""
    return f"kept {counts['kept']}, dropped {sum(reasons.values())}{detail}"


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    # Filtered manifests are held in memory on purpose (they are small next to the features).
    warnings.filterwarnings("ignore", message="You are using DynamicBucketingSampler with an eagerly read CutSet")
    cfg = load_config(ExperimentConfig, args.conf, args.overrides)
    info = init_distributed()
    check_for_ddp(cfg, info.world_size)
    resuming = not args.no_resume and bool(list_checkpoints(args.exp_dir))
    try:  # one encoder for all sets; a resumed model only on features of the encoder it was trained on
        features = sets_record([s.cuts for s in cfg.data.train + cfg.data.valid])
        record_training(args.exp_dir, features, resuming=resuming, write=False)
    except FeatureMismatchError as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        return 2
    torch.manual_seed(cfg.train.seed)  # the initial weights: the same on every process and every run
    model = build_model(cfg)  # (completes cfg: the text space's width and vocabulary)
    if info.is_main:  # refuse a folder of another config now; write to it only once the run can start
        check_exp_dir(args.exp_dir, cfg, overwrite=args.overwrite)

    data = cfg.data
    dropped: dict[str, list] = {"train": [], "valid": []}
    train_cuts, counts = filter_cuts(load_sets(data.train), data.max_utt_duration,
                                     model.max_text_tokens, model.count_tokens, dropped=dropped["train"])
    if counts["kept"] == 0:
        raise InputError(f"data.train: no training cut left after filtering ({_counts(counts)}; limits: "
                         f"data.max_utt_duration={data.max_utt_duration:g} s, {model.max_text_tokens} text tokens)")
    model_kind(cfg).prepare(model, cfg, [target_text(c) for c in train_cuts])  # e.g. ELF-S2T's token shortlist
    train_dl = build_dataloader(train_cuts, S2TDataset(), max_duration=data.max_duration,
                                num_buckets=max(2, data.num_buckets), shuffle=data.shuffle, seed=cfg.train.seed,
                                rank=info.rank, world_size=info.world_size,
                                num_workers=cfg.train.num_workers, pin_memory=cfg.train.pin_memory)
    valid_cuts = valid_dl = None
    valid_counts = None
    if data.valid:
        valid_cuts, valid_counts = filter_cuts(load_sets(data.valid), data.max_utt_duration, model.max_text_tokens,
                                               model.count_tokens, dropped=dropped["valid"])
        valid_dl = build_dataloader(valid_cuts, S2TDataset(), max_duration=data.max_duration, shuffle=False,
                                    num_buckets=max(2, data.num_buckets),
                                    rank=info.rank, world_size=info.world_size, drop_last=False)
    if info.is_main:  # the run can start: record it (config, encoder, run, frozen models, data) and what was dropped
        record_exp_dir(args.exp_dir, cfg)
        setup_file_logging(args.exp_dir)
        if not resuming:  # a fresh model: an older run's records go
            (args.exp_dir / FROZEN_FILE).unlink(missing_ok=True)
        record_training(args.exp_dir, features, resuming=resuming)
        append_run_info(args.exp_dir, info.world_size)
        kind = model_kind(cfg)  # the frozen models it loads by name, with their weights' fingerprints
        prints = kind.frozen_fingerprints(model, cfg)
        record_frozen(args.exp_dir, {k: make_ref(v, prints.get(k), [Path.cwd()])
                                     for k, v in kind.frozen_models(cfg).items() if v})
        write_train_data(args.exp_dir, train_cuts)
        listed = write_dropped_cuts(args.exp_dir, dropped)
        for name, n in (("training", counts), ("validation", valid_counts)):
            if n is not None:
                log.info("%s cuts: %s (the dropped ones, with their reasons: %s)", name, _counts(n), listed)
    mean_dur = sum(c.duration for c in train_cuts) / counts["kept"]
    batch_size = max(1, round(data.max_duration / mean_dur)) * info.world_size * cfg.train.grad_accum
    trainer = Trainer(model, cfg.optim, cfg.train, args.exp_dir, train_dl, valid_dl,
                      on_validate=valid_examples_hook(cfg, valid_cuts, args.num_valid_examples),
                      batch_size=batch_size, config=unstructure(cfg))
    summary = trainer.fit(resume=not args.no_resume)
    if info.is_main:
        print(f"trained {args.exp_dir}: step {summary['step']}, stopped by {summary['stopped_by']}, "
              f"train loss {summary['train_loss']:.4f}, valid {summary['valid']}")
    cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
