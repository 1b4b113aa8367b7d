"""Flow matching for ELF: time distributions, the training objective, samplers and guidance."""
