"""The S2T dataset: batch dict contract, targets, filtering."""
import pytest
import torch

from elfs2t.config import ConfigError, structure
from elfs2t.data.dataset import S2TDataset, SetSpec, filter_cuts, load_sets, target_text, task_of
from feature_fixtures import make_feature_cuts


def test_batch_contract(tmp_path):
    cuts = make_feature_cuts(tmp_path, ["a b", "a b c d", "x"], dim=6)
    batch = S2TDataset()[cuts]
    b = len(batch["cut_ids"])
    assert b == 3 and batch["feats"].shape == (3, 40, 6) and batch["feats"].dtype == torch.float32
    # sorted longest first; lengths and zero padding are consistent with the stored arrays
    assert batch["feat_lens"].tolist() == [40, 20, 10]
    assert batch["text"] == ["a b c d", "a b", "x"] and batch["task"] == ["asr"] * 3
    for i, cid in enumerate(batch["cut_ids"]):
        arr = torch.from_numpy(cuts[cid].load_features()).float()
        n = batch["feat_lens"][i]
        assert torch.equal(batch["feats"][i, :n], arr) and batch["feats"][i, n:].abs().sum() == 0
    assert batch["duration"].tolist() == pytest.approx([0.8, 0.4, 0.2])


def test_translation_targets_and_lowercase(tmp_path):
    make_feature_cuts(tmp_path, ["Ein Hund", "Die Katze"], translations=["A dog", "The cat"])
    cuts = load_sets([SetSpec(cuts=tmp_path / "cuts.jsonl.gz", target="translation:en")])
    batch = S2TDataset(text_transform=str.lower)[cuts.to_eager()]
    assert sorted(batch["text"]) == ["a dog", "the cat"] and batch["task"] == ["st:en", "st:en"]
    cut = next(iter(cuts))
    assert target_text(cut, "transcript") in {"Ein Hund", "Die Katze"}
    with pytest.raises(KeyError, match="no translation into 'fr'"):
        target_text(cut, "translation:fr")


def test_target_validation_and_missing_manifest(tmp_path):
    assert task_of("translation:de") == "st:de" and task_of("transcript") == "asr"
    with pytest.raises(ConfigError, match="target='translate'"):
        structure(SetSpec, {"cuts": "x", "target": "translate"})
    with pytest.raises(FileNotFoundError, match="did stage 2 run"):
        load_sets([SetSpec(cuts=tmp_path / "nope.jsonl.gz")])


def test_filter_counts_each_reason(tmp_path):
    cuts = make_feature_cuts(tmp_path, ["one two three four five six", "short", " ", "a b c d e f g h i j k l"])
    kept, counts = filter_cuts(cuts, max_duration=2.0, max_tokens=5, count_tokens=lambda t: len(t.split()))
    assert [c.supervisions[0].text for c in kept] == ["short"]
    assert counts == {"kept": 1, "too_long_audio": 1, "too_long_text": 1, "empty_text": 1}


def test_cut_without_features_is_a_clear_error(tmp_path):
    cuts = make_feature_cuts(tmp_path, ["a b"])
    cut = next(iter(cuts))
    cut.features = None
    from lhotse import CutSet

    with pytest.raises(ValueError, match="no cached features: run stage 2"):
        S2TDataset()[CutSet.from_cuts([cut])]


def test_export_text(tmp_path):
    from elfs2t.bin.export_text import export_text

    make_feature_cuts(tmp_path / "a", ["Ein Hund", "Die Katze", "Ein Hund"], translations=["A dog", "The cat", "A dog"])
    out = tmp_path / "lm" / "text.txt"
    n = export_text([(tmp_path / "a" / "cuts.jsonl.gz", "translation:en")], out, lowercase=True, unique=True)
    assert n == 2 and out.read_text().splitlines() == ["a dog", "the cat"]
    with pytest.raises(ConfigError):
        export_text([(tmp_path / "a" / "cuts.jsonl.gz", "translate")], out)


def test_one_manifest_with_two_targets_and_their_tasks(tmp_path):
    """A joint ASR + S2TT training set: the same cuts twice, each copy with its target and task token."""
    from elfs2t.train.data import build_sampler

    make_feature_cuts(tmp_path, ["Ein Hund", "Die Katze"], translations=["A dog", "The cat"])
    specs = [SetSpec(cuts=tmp_path / "cuts.jsonl.gz", target="transcript", task="asr:de"),
             SetSpec(cuts=tmp_path / "cuts.jsonl.gz", target="translation:en")]
    assert [s.task_name for s in specs] == ["asr:de", "st:en"]
    kept, counts = filter_cuts(load_sets(specs), max_duration=30.0)
    assert counts["kept"] == 4 and len(kept) == 4
    batch = S2TDataset()[kept]
    assert sorted(zip(batch["task"], batch["text"])) == [("asr:de", "Die Katze"), ("asr:de", "Ein Hund"),
                                                         ("st:en", "A dog"), ("st:en", "The cat")]
    sampler = build_sampler(kept, max_cuts=3, num_buckets=2, shuffle=True, seed=1)
    drawn = [(c.id, c.custom["elfs2t_task"]) for b in sampler for c in b]
    assert sorted(drawn) == sorted((c.id, c.custom["elfs2t_task"]) for c in kept)  # every copy once an epoch


def test_experiment_tasks_must_match_the_model(tmp_path):
    from elfs2t.experiment import ExperimentConfig

    two = [{"cuts": "x", "target": "transcript"}, {"cuts": "x", "target": "translation:en"}]
    cfg = structure(ExperimentConfig, {"elf": {"tasks": ["asr", "st:en"]}, "data": {"train": two}})
    assert [s.task_name for s in cfg.data.train] == ["asr", "st:en"]
    with pytest.raises(ConfigError, match=r"elf.tasks=\[\]: data.train mixes the tasks \['asr', 'st:en'\]"):
        structure(ExperimentConfig, {"data": {"train": two}})
    with pytest.raises(ConfigError, match=r"data.valid\[0\].task='st:de': is not one of the model's tasks "
                                          r"\['asr', 'st:en'\] \(ar.tasks\)"):
        structure(ExperimentConfig, {"model": "ar", "ar": {"tasks": ["asr", "st:en"]},
                                     "data": {"train": two, "valid": [{"cuts": "x", "target": "translation:de"}]}})
    with pytest.raises(ConfigError, match="task='': must not be empty"):
        structure(SetSpec, {"cuts": "x", "task": ""})
