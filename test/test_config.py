"""Config machinery: structuring, type checks, overrides, validation messages, dumps."""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest

from elfs2t.config import ConfigError, config_check, config_hash, dump_config, load_config, structure


@dataclass(kw_only=True)
class Inner:
    depth: int = 2
    """Number of layers."""
    lr: float = 1e-3
    kind: Literal["ode", "sde"] = "ode"

    def validate(self) -> None:
        config_check(self.depth > 0, "depth", self.depth, "must be positive")


@dataclass(kw_only=True)
class Outer:
    name: str = "x"
    path: Optional[Path] = None
    steps: list[int] = field(default_factory=lambda: [1, 2])
    inner: Inner = field(default_factory=Inner)


def test_defaults_and_nested(tmp_path):
    cfg = structure(Outer, {"inner": {"depth": 4}, "path": "a/b"})
    assert cfg.inner.depth == 4 and cfg.inner.lr == 1e-3 and cfg.path == Path("a/b")


def test_int_accepted_for_float_and_scientific_strings():
    assert structure(Inner, {"lr": 1}).lr == 1.0
    assert structure(Inner, {"lr": "2e-3"}).lr == pytest.approx(2e-3)


def test_unknown_key_names_path():
    with pytest.raises(ConfigError, match=r"inner\.dpeth"):
        structure(Outer, {"inner": {"dpeth": 3}})


def test_bad_type_and_literal_name_key_and_value():
    with pytest.raises(ConfigError, match=r"inner\.depth='three'"):
        structure(Outer, {"inner": {"depth": "three"}})
    with pytest.raises(ConfigError, match=r"inner\.kind='euler'.*one of"):
        structure(Outer, {"inner": {"kind": "euler"}})
    with pytest.raises(ConfigError, match=r"steps\[1\]"):
        structure(Outer, {"steps": [1, "x"]})


def test_validate_prefixes_key_path():
    with pytest.raises(ConfigError, match=r"inner\.depth=0: must be positive"):
        structure(Outer, {"inner": {"depth": 0}})


def test_yaml_overrides_and_dump_roundtrip(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("name: base\ninner:\n  depth: 3\n")
    cfg = load_config(Outer, conf, overrides=["inner.lr=0.5", "steps=[4, 8]", "--inner.kind=sde"])
    assert (cfg.name, cfg.inner.depth, cfg.inner.lr, cfg.steps, cfg.inner.kind) == ("base", 3, 0.5, [4, 8], "sde")
    out = dump_config(cfg, tmp_path / "exp" / "config.yaml")
    again = load_config(Outer, out)
    assert again == cfg and config_hash(again) == config_hash(cfg)
    assert config_hash(load_config(Outer, out, ["inner.depth=5"])) != config_hash(cfg)


def test_errors_name_the_file(tmp_path):
    conf = tmp_path / "bad.yaml"
    conf.write_text("inner:\n  depth: -1\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(Outer, conf)
    (tmp_path / "syntax.yaml").write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="syntax.yaml.*invalid YAML"):
        load_config(Outer, tmp_path / "syntax.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(Outer, tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="key.path=value"):
        load_config(Outer, None, ["novalue"])
