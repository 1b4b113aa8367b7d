"""Benchmarks of decoding, training and feature caching (``python -m elfs2t.bin.benchmark``).

| module | measures |
|---|---|
| :mod:`elfs2t.bench.decode` | ELF-S2T (steps x guidance, prefix cache) vs AR (greedy, beam) vs Whisper vs faster-whisper |
| :mod:`elfs2t.bench.matched` | speed at matched accuracy (ELF-S2T against the AR), the speed/accuracy frontier |
| :mod:`elfs2t.bench.train` | training samples/s, tokens/s, data waiting, 1 -> 2 processes |
| :mod:`elfs2t.bench.features` | Whisper feature caching, ``pad30`` vs ``trim`` |
| :mod:`elfs2t.bench.flops` | analytical FLOPs (MFU) |
| :mod:`elfs2t.bench.common`, :mod:`elfs2t.bench.models`, :mod:`elfs2t.bench.ar_systems`, :mod:`elfs2t.bench.whisper_systems`, :mod:`elfs2t.bench.plot` | shared pieces |
"""
