"""Initialise the ELF-S2T denoiser from a pre-trained ELF (docs/design.md §2.5, §4.3).

``source`` is either
* one of our experiment folders (stage 3, ``exp/elf_<tag>/``) or one of its checkpoint files: the
  ``denoiser.*`` weights of the text ELF are copied, EMA weights when the checkpoint has them; or
* a released ELF checkpoint (a ``checkpoint_<step>`` file, a folder holding them, or a hub id such as
  ``embedded-language-flows/ELF-B-owt-torch``), read by :mod:`elfs2t.models.elf_checkpoint`.
Strict loading refuses missing, unexpected or mis-shaped tensors with a message listing them.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from elfs2t.models.denoiser import ElfDenoiser
from elfs2t.models.elf_checkpoint import ElfCheckpointError, load_elf_checkpoint
from elfs2t.train.checkpoint import FORMAT, load_checkpoint, load_latest

log = logging.getLogger(__name__)

PREFIX = "denoiser."


def _our_checkpoint(source: Path):
    if source.is_dir() and ((source / "last.pt").is_file() or any(source.glob("checkpoint-*.pt"))):
        return load_latest(source)
    if source.is_file():
        try:
            head = torch.load(source, map_location="cpu", weights_only=False)
        except Exception:  # not ours (or unreadable): let the released-format reader report it
            return None
        if isinstance(head, dict) and head.get("format") == FORMAT:
            return load_checkpoint(source)
    return None


def init_denoiser(denoiser: ElfDenoiser, source: str | Path, strict: bool = True, use_ema: bool = True) -> dict:
    """Copy pre-trained weights into ``denoiser``; returns a small report (file, tensors loaded)."""
    state = _our_checkpoint(Path(source))
    if state is None:
        report = load_elf_checkpoint(denoiser, source, strict=strict)
        log.info("denoiser initialised from released ELF checkpoint %s", report["file"])
        return report
    weights = dict(state["model"])
    if use_ema and state.get("ema"):
        weights.update(state["ema"]["shadow"])
    sub = {k[len(PREFIX):]: v for k, v in weights.items() if k.startswith(PREFIX)}
    if not sub:
        raise ElfCheckpointError(f"{state.get('path', source)}: no '{PREFIX}*' weights (not a text-ELF checkpoint)")
    result = denoiser.load_state_dict(sub, strict=False)
    mismatch = [f"missing: {result.missing_keys}"] * bool(result.missing_keys)
    mismatch += [f"unexpected: {result.unexpected_keys}"] * bool(result.unexpected_keys)
    if mismatch and strict:
        raise ElfCheckpointError(f"{state.get('path', source)} does not fit the denoiser: " + "; ".join(mismatch))
    log.info("denoiser initialised from %s (step %s, %s weights)", state.get("path", source), state.get("step"),
             "EMA" if use_ema and state.get("ema") else "raw")
    return {"file": state.get("path", str(source)), "loaded": len(sub), "step": state.get("step")}
