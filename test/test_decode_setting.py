"""The decoding setting recorded in an experiment folder (elfs2t.inference.setting): round trip, and the refusal of
overrides that the config would drop (removed options) or that are not decoding ones."""
import pytest

from conftest import ROOT
from elfs2t.config import ConfigError
from elfs2t.config import apply_overrides
from elfs2t.inference.setting import (SETTING_FILE, check_overrides, decode_conf_overrides, read_setting,
                                     record_setting)


def test_record_and_read_round_trip(tmp_path):
    assert read_setting(tmp_path) == ([], None)  # no record: the config's own decode section
    record_setting(tmp_path, ["decode.strategy=rescore", "decode.rescore.draws=2"], "rescore_k0.95_l0.05-0.2_d2")
    assert read_setting(tmp_path) == (["decode.strategy=rescore", "decode.rescore.draws=2"],
                                      "rescore_k0.95_l0.05-0.2_d2")


def test_a_setting_of_removed_options_is_refused_not_dropped(tmp_path):
    # a folder recorded before decode.strategy: its sampler overrides would be dropped and the model would decode
    # with the config's strategy instead
    (tmp_path / SETTING_FILE).write_text("overrides: [decode.sampler.init=ctc, decode.sampler.steps=0]\ntag: ode0\n")
    with pytest.raises(ConfigError) as err:
        read_setting(tmp_path)
    assert str(err.value) == (f"decode.sampler.init=ctc ({tmp_path / SETTING_FILE}: recorded decoding override): "
                              "decode.sampler is a removed option (replaced by decode.strategy and its sections "
                              "(decode.flow, decode.refine, decode.rescore))")
    with pytest.raises(ConfigError, match=r"^decode.sampler.steps=8 \(decoding override\): decode.sampler is a "):
        check_overrides(["decode.strategy=flow", "decode.sampler.steps=8"])
    with pytest.raises(ConfigError, match=r"^only decode.\* keys can be overridden at decoding time, got "
                                          r"\['elf.stack=2'\]$"):
        check_overrides(["elf.stack=2"])
    assert check_overrides(["decode.flow.steps=8"]) == ["decode.flow.steps=8"]


def test_every_decoding_config_a_recipe_ships_is_accepted():
    """Each egs/*/conf/decode/*.yaml passes the same check as a user's (keys, types, strategy names) and names at
    least one setting: a typo in a shipped config fails here, not in stage 5 after a training run."""
    confs = sorted((ROOT / "egs").glob("*/conf/decode/*.yaml"))
    assert len(confs) >= 10, confs
    for conf in confs:
        assert decode_conf_overrides([conf]), conf


def test_a_decoding_config_file_is_its_decode_overrides(tmp_path):
    """conf/decode/<name>.yaml (a decode: section) -> the decode.* overrides it stands for, in the file's order;
    the overrides give back the file's values (strings, numbers, lists); another section or an unknown key is an
    error naming the file and the key."""
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("decode:\n  strategy: flow\n  flow: {steps: 4, guidance: 1.5}\n  max_duration: 1.0e-3\n"
                 "  valid_strategies: [readout, draft]\n")
    b.write_text("decode: {strategy: rescore}\n")
    got = decode_conf_overrides([a, b])
    assert got == ["decode.strategy=flow", "decode.flow.steps=4", "decode.flow.guidance=1.5",
                   "decode.max_duration=0.001", 'decode.valid_strategies=["readout", "draft"]', "decode.strategy=rescore"]
    assert apply_overrides({}, got[:-1])["decode"] == {"strategy": "flow", "flow": {"steps": 4, "guidance": 1.5},
                                                      "max_duration": 0.001, "valid_strategies": ["readout", "draft"]}
    (tmp_path / "empty.yaml").write_text("decode: {}\n")
    assert decode_conf_overrides([tmp_path / "empty.yaml"]) == []  # the model's own decode section
    for text, message in [
        ("decode: {flow: {stpes: 4}}\n", "unknown config key(s) ['decode.flow.stpes']"),
        ("decode: {}\nelf: {stack: 2}\n", "unknown config key(s) ['elf']; a decoding config holds a 'decode' section"),
        ("decode: {strategy: mask}\n", "decode.strategy='mask': must be one of"),
        ("decode: {flow: {steps: many}}\n", "decode.flow.steps='many': expected an integer"),
        ("decode: {sampler: {steps: 2}}\n", "decode.sampler is a removed option"),
    ]:
        a.write_text(text)
        with pytest.raises(ConfigError) as err:
            decode_conf_overrides([a])
        assert str(err.value).startswith(f"{a}: ") and message in str(err.value), text
