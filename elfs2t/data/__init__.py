"""Corpus preparation, the training dataset and samplers (Lhotse based)."""
