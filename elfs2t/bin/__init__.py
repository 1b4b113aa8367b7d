"""Entry points, one per stage: ``python -m elfs2t.bin.<stage> --help``."""
