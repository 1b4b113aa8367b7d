"""Write a noisy copy of a test set: white noise at a signal-to-noise ratio, audio files plus a cuts manifest.

    python -m elfs2t.bin.add_noise --cuts data/manifests/cuts_asr_test.jsonl.gz --snr 10 \\
        --audio-dir corpus/noisy/asr_test_snr10 --out data/manifests/cuts_asr_test_snr10.jsonl.gz [--seed 0]

Every cut keeps its id, duration and supervisions (a decode of the copy pairs with the clean set's, utterance by
utterance); its audio becomes ``<audio-dir>/<id>.flac``: the cut's samples, mixed down to mono, plus white
Gaussian noise ``--snr`` dB under the utterance's mean power (seeded by ``--seed`` and the cut id). Stage 2 then
caches the copy like any other set. Cuts that cannot be copied (silent or unreadable audio) are left out, counted
and listed in ``<out>.skipped.tsv``. Meant for test sets: a noisy training set is a different recipe.
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

from lhotse import CutSet
from tqdm import tqdm

from elfs2t.atomic import atomic_path, write_text
from elfs2t.bin._cli import entry_point
from elfs2t.data.noise import NoisyCopy, noisy_copies
from elfs2t.errors import ConfigError, InputError

log = logging.getLogger("elfs2t.add_noise")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m elfs2t.bin.add_noise", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cuts", type=Path, required=True, help="input cuts manifest (jsonl.gz)")
    p.add_argument("--out", type=Path, required=True, help="output cuts manifest of the noisy copy")
    p.add_argument("--snr", type=float, required=True, help="signal-to-noise ratio in dB (e.g. 10, 0, -5)")
    p.add_argument("--audio-dir", type=Path, required=True, help="folder for the noisy audio files (<id>.flac)")
    p.add_argument("--seed", type=int, default=0, help="noise seed, combined with each cut id (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def write_noisy(cuts_path: Path, out: Path, snr_db: float, audio_dir: Path, *, seed: int = 0,
                show_progress: bool = True) -> NoisyCopy:
    """Write the noisy copy of ``cuts_path`` (audio under ``audio_dir``, manifest ``out``, atomically); returns
    what was written and skipped."""
    if not math.isfinite(snr_db):
        raise ConfigError(f"--snr must be a finite number of dB, got {snr_db}")
    if not cuts_path.is_file():
        raise FileNotFoundError(f"cuts manifest not found: {cuts_path}")
    if cuts_path.resolve() == out.resolve():
        raise ConfigError(f"--out must differ from --cuts ({cuts_path}): the clean set would be lost")
    cuts = CutSet.from_file(cuts_path)
    stats = NoisyCopy()
    with tqdm(desc=f"noise {out.name}", unit="utt", disable=not show_progress) as bar, \
            atomic_path(out) as tmp, CutSet.open_writer(tmp) as writer:
        for cut in noisy_copies(cuts, snr_db, audio_dir, seed=seed, stats=stats, progress=bar.update):
            writer.write(cut)
    skipped_tsv = out.with_name(out.name + ".skipped.tsv")
    if stats.skipped:
        write_text(skipped_tsv, "".join(f"{i}\t{why}\n" for i, why in stats.skipped))
        log.warning("%d of %d cuts left out (listed in %s), e.g. %s: %s", len(stats.skipped),
                    len(stats.skipped) + stats.written, skipped_tsv, *stats.skipped[0])
    else:
        skipped_tsv.unlink(missing_ok=True)
    if stats.written == 0:
        out.unlink(missing_ok=True)
        raise InputError(f"{cuts_path}: no cut could be made noisy ({len(stats.skipped)} left out, see {skipped_tsv})")
    log.info("wrote %d noisy cuts at %g dB SNR to %s (audio in %s)", stats.written, snr_db, out, audio_dir)
    return stats


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    write_noisy(args.cuts, args.out, args.snr, args.audio_dir, seed=args.seed, show_progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
