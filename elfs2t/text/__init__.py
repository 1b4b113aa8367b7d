"""Text: tokenizer + frozen text encoder latents, and text normalisation for scoring."""
