"""elfs2t: continuous-target diffusion speech-to-text."""

__version__ = "0.1.0"
