"""Fingerprints of frozen pre-trained weights (the Whisper encoder, the text encoder).

A trained model records which frozen encoders it was trained with; a different model of the same width loads
without complaint and gives silently wrong results, so the record holds a fingerprint of the weights, and loading
compares it. :func:`weights_fingerprint` hashes, for every tensor of a module's ``state_dict`` in name order, its
name, shape and up to 4096 evenly spaced values (as float32, taken before any cast to the run's dtype): cheap for
a 1.5 B-parameter encoder (well under a second) and different for any other checkpoint.
"""
from __future__ import annotations

import hashlib

import torch
from torch import nn

__all__ = ["weights_fingerprint"]

SAMPLES_PER_TENSOR = 4096


@torch.no_grad()
def weights_fingerprint(module: nn.Module, length: int = 16) -> str:
    """Hex digest (``length`` characters) of ``module``'s weights, independent of its device and dtype."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        flat = tensor.detach().reshape(-1)
        stride = max(1, flat.numel() // SAMPLES_PER_TENSOR)
        sample = flat[::stride][:SAMPLES_PER_TENSOR].to("cpu", torch.float32).contiguous()
        h.update(f"{name}:{tuple(tensor.shape)}\n".encode())
        h.update(sample.numpy().tobytes())
    return h.hexdigest()[:length]
