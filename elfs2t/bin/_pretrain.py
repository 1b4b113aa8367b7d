"""The command line of the stage-3 text pre-training entry point (:mod:`.pretrain_text`).

It takes ``--conf``, ``--exp-dir``, ``--text``, ``--resume/--no-resume``, ``--overwrite`` and
``key.path=value`` overrides, load the config, call ``pretrain(cfg, exp_dir, text, resume=, overwrite=)``
and print one summary line; config errors exit with 2, other errors with 1 (one message each).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Optional

from elfs2t.config import ConfigError, load_config


def get_parser(stage: str, doc: str, config_cls: type, exp_example: str,
               override_example: str) -> argparse.ArgumentParser:
    """The parser of ``python -m elfs2t.bin.<stage>`` (``doc``: its description)."""
    p = argparse.ArgumentParser(prog=f"python -m elfs2t.bin.{stage}", description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conf", type=Path, default=None,
                   help=f"YAML with {config_cls.__name__} fields (default: all defaults)")
    p.add_argument("--exp-dir", type=Path, required=True, help=f"output folder, e.g. {exp_example}")
    p.add_argument("--text", type=Path, required=True, help="training text, one sentence per line (UTF-8)")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue from the newest checkpoint of exp-dir (default); --no-resume refuses existing ones")
    p.add_argument("--overwrite", action="store_true", help="reuse exp-dir even if its stored config differs")
    p.add_argument("overrides", nargs="*", metavar="key.path=value",
                   help=f"config overrides, e.g. {override_example}")
    return p


def run(parser: argparse.ArgumentParser, argv: Optional[list[str]], config_cls: type,
        pretrain: Callable[..., dict[str, Any]], output: Optional[str] = None) -> int:
    """Parse ``argv``, pre-train, print the summary (``-> exp-dir/<output>`` when given); the exit code."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    try:
        cfg = load_config(config_cls, args.conf, args.overrides)
        summary = pretrain(cfg, args.exp_dir, args.text, resume=args.resume, overwrite=args.overwrite)
    except ConfigError:
        raise  # the entry point prints it alone and exits 2
    except (FileExistsError, ValueError) as exc:  # (a changed config, a missing text: InputError, exit 1)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    where = f" -> {args.exp_dir / output}" if output else ""
    print(f"pre-trained {args.exp_dir}: step {summary['step']}, stopped by {summary['stopped_by']}, "
          f"train loss {summary['train_loss']:.4f}, samples in corpus "
          f"{summary['valid'].get('sample_in_corpus', float('nan')):.2f}{where}")
    return 0
