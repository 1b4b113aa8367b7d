"""ELF-S2T: the speech-to-text model built on the ELF denoiser, and its decoding strategies (:mod:`.decoding`)."""
