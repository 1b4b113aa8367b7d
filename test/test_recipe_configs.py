"""Every recipe trains ELF-S2T and its AR peer on the same budget: the same training and validation data, the same
batching (seconds of audio per batch, buckets) and the same number of steps -- what "at equal training steps" in
the results tables means. A peer config that drifts (a larger batch: more audio per step) makes every comparison
of the two silently unequal."""
import pytest

from elfs2t.config import load_yaml
from conftest import ROOT

PEERS = [
    ("mini_synth", "train_asr.yaml", "train_asr_ar.yaml"),
    ("mini_synth", "train_st.yaml", "train_st_ar.yaml"),
    ("mini_synth", "train_joint.yaml", "train_joint_ar.yaml"),
    ("librispeech", "train.yaml", "train_ar.yaml"),
    ("covost2", "train.yaml", "train_ar.yaml"),
    ("TEMPLATE", "train.yaml", "train_ar.yaml"),
]
BUDGET = [("data", "train"), ("data", "valid"), ("data", "max_duration"), ("data", "num_buckets"), ("train", "max_steps")]


def budget(path):
    cfg = load_yaml(path)
    return {f"{group}.{key}": cfg.get(group, {}).get(key) for group, key in BUDGET}


@pytest.mark.parametrize("recipe, elf, ar", PEERS, ids=[f"{r}:{e}" for r, e, _ in PEERS])
def test_elf_s2t_and_its_ar_peer_train_on_the_same_budget(recipe, elf, ar):
    conf = ROOT / "egs" / recipe / "conf"
    elf_budget, ar_budget = budget(conf / elf), budget(conf / ar)
    assert elf_budget["data.train"] and elf_budget["train.max_steps"], (recipe, elf)
    differ = {k: (elf_budget[k], ar_budget[k]) for k in elf_budget if elf_budget[k] != ar_budget[k]}
    assert not differ, f"{recipe}: {elf} and {ar} differ in {differ}"


def test_every_ar_config_has_its_peer_listed():
    listed = {(r, a) for r, _, a in PEERS}
    found = {(p.parent.parent.name, p.name) for p in (ROOT / "egs").glob("*/conf/train*_ar.yaml")}
    assert found <= listed, found - listed
