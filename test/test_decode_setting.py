"""The decoding setting recorded in an experiment folder (elfs2t.inference.setting): round trip, and the refusal of
overrides that the config would drop (removed options) or that are not decoding ones."""
import pytest

from elfs2t.config import ConfigError
from elfs2t.inference.setting import SETTING_FILE, check_overrides, read_setting, record_setting


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
