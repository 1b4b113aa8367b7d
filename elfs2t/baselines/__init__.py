"""The baselines ELF-S2T is compared with: the AR speech-LLM on the same features (:mod:`.ar`) and Whisper zero-shot
(:mod:`.whisper_zero_shot`)."""
