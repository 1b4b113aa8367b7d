"""Stage-3 pre-training drivers (they use the trainer; the models they train live in :mod:`elfs2t.models`)."""
