"""ELF-S2T: the speech-to-text model on the ELF denoiser (model, config, projector, feature masks, the auxiliary CTC
on the audio slots, its alignment, the rescoring) and its decoding strategies (:mod:`.decoding`)."""
