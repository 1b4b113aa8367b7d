"""elfs2t: continuous-target diffusion speech-to-text recipes (ELF-S2T) with an AR speech-LLM baseline."""
from setuptools import find_packages, setup

install_requires = [
    "torch==2.9.1",
    "torchaudio==2.9.1",
    "lhotse>=1.33",
    "urllib3",
    "kaldiio",
    "sentencepiece",
    "transformers>=4.45",
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
    description=__doc__,
    packages=find_packages(include=["elfs2t", "elfs2t.*"]),
    python_requires=">=3.10",
    install_requires=install_requires,
    extras_require={
        "test": ["pytest", "pytest-timeout"],
        "bench": ["ctranslate2", "faster-whisper"],
    },
)
