"""Stage 7: latent-space error analysis and audio-reliance diagnostics (docs/design.md §2.6).

* :mod:`~elfs2t.analysis.align`: word-level Levenshtein alignment (backtrace kept) after the scoring normaliser;
* :mod:`~elfs2t.analysis.spaces`: word vectors in the text-encoder latent space (in and out of context) and in
  the model's token embedding;
* :mod:`~elfs2t.analysis.distance`: cosine / L2 distances, nearest vocabulary words, random pairs;
* :mod:`~elfs2t.analysis.substitutions`: the per-set analysis (:func:`analyze_set`);
* :mod:`~elfs2t.analysis.report` and :mod:`~elfs2t.analysis.plots`: ``report.md``, ``summary.json``, PNGs;
* :mod:`~elfs2t.analysis.sources`: the spaces of a trained experiment (ELF-S2T, AR baseline, or none);
* :mod:`~elfs2t.analysis.audio`: audio transforms for decoding (``decode.audio``: zero, noise, swap);
* :mod:`~elfs2t.analysis.reliance`: audio-reliance decodes and the CFG-scale sweep.

Entry points: ``python -m elfs2t.bin.analyze`` and ``python -m elfs2t.bin.audio_reliance``. Importing this
package imports nothing heavy (the audio transforms are used on the decoding path).
"""
