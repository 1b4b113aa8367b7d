"""elfs2t: continuous-target diffusion speech-to-text.

Use a trained model on your own audio::

    import elfs2t
    model = elfs2t.load("exp/asr_elf")        # an experiment folder, or one written by python -m elfs2t.bin.export
    print(model.transcribe("a.wav").text)

(:mod:`elfs2t.inference.model`; importing ``elfs2t`` itself stays light: ``load`` imports the rest when called.)
"""

__version__ = "0.1.0"
__all__ = ["load"]


def load(path, **kwargs):
    """A trained model ready for audio: see :func:`elfs2t.inference.model.load`."""
    from elfs2t.inference.model import load as _load

    return _load(path, **kwargs)
