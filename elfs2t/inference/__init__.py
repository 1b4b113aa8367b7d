"""Using a trained model on new audio: ``elfs2t.load`` (:mod:`elfs2t.inference.model`), the decoding setting an
experiment records (:mod:`~elfs2t.inference.setting`), loading experiment folders (:mod:`~elfs2t.inference.trained`)
and portable exported folders (:mod:`~elfs2t.inference.export`), audio inputs and segmentation
(:mod:`~elfs2t.inference.audio`), in-process features (:mod:`~elfs2t.inference.features`) and output formats
(:mod:`~elfs2t.inference.output`)."""
