"""The model types of the registry (:data:`elfs2t.experiment.MODELS`): one :class:`~elfs2t.kinds.base.ModelKind`
per type, so the stages and ``elfs2t.load`` never branch on a model's type."""
