"""Shared pytest set-up: deterministic, small-thread, offline runs."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_and_threads():
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def rand_whisper(tmp_path_factory):
    """A random 1-layer Whisper (d_model 16, 80 mel bins) saved as a local directory ``whisper-rand``: a real
    encoder for feature-caching tests, tiny enough for seconds."""
    import torch
    from transformers import WhisperConfig, WhisperModel

    cfg = WhisperConfig(vocab_size=64, num_mel_bins=80, d_model=16, encoder_layers=1, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                        pad_token_id=0, bos_token_id=1, eos_token_id=1, decoder_start_token_id=2)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = WhisperModel(cfg)
    out = tmp_path_factory.mktemp("m") / "whisper-rand"
    model.save_pretrained(out)
    return out
