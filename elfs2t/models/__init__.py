"""Models: ELF denoiser, audio projector, ELF-S2T wrapper, AR speech-LLM baseline."""
