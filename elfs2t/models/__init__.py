"""The ELF core: the denoiser and its layers, sequence layout, token head and shortlist, released-checkpoint loading
and initialisation, and the text-only ELF. ELF-S2T lives in :mod:`elfs2t.s2t`, the baselines in :mod:`elfs2t.baselines`."""
