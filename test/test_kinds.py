"""The model registry dispatches: no code outside ``elfs2t/kinds`` compares a model's type with a type name, and the
kinds answer what the stages used to branch on."""
import ast

import pytest

from elfs2t.config import structure
from elfs2t.experiment import MODELS, ExperimentConfig, check_for_ddp, model_kind
from elfs2t.results import OTHER_ROWS, SETTINGS, row_kinds

from conftest import ROOT

TYPE_NAMES = set(MODELS) | set(OTHER_ROWS)
"""The model types of the registry and the other systems of the results table (Whisper zero-shot, ...)."""


def _names(node: ast.AST) -> set[str]:
    """The type names a comparison operand spells: a string constant, or one inside a tuple / list / set."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value} & TYPE_NAMES
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return set().union(*(_names(e) for e in node.elts)) if node.elts else set()
    return set()


def _mentions_model(node: ast.AST) -> bool:
    """``cfg.model``, ``model``, ``config.get("model")``, ``r.model`` and the like."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and sub.attr == "model" or isinstance(sub, ast.Name) and sub.id == "model":
            return True
        if isinstance(sub, ast.Constant) and sub.value == "model":
            return True
    return False


def type_comparisons(source: str) -> list[tuple[int, str]]:
    """``(line, source)`` of every comparison of a model's type with a type name in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        if any(_names(a) for a in operands) and any(_mentions_model(a) for a in operands if not _names(a)):
            found.append((node.lineno, ast.get_source_segment(source, node)))
    return found


def test_the_check_finds_type_comparisons():
    src = ('if cfg.model == "ar":\n    pass\nx = model != "elf_s2t"\ny = config.get("model") == "ar"\n'
           'z = model in ("ar", "whisper")\nw = "elf_s2t" == r.model\nok = name == "ar" or cfg.model == other\n')
    assert [line for line, _ in type_comparisons(src)] == [1, 3, 4, 5, 6]


def test_no_model_type_branches_outside_the_registry():
    found = []
    for path in sorted((ROOT / "elfs2t").rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[:2] == ("elfs2t", "kinds"):
            continue
        found += [f"{rel}:{line}: {text}" for line, text in type_comparisons(path.read_text())]
    assert not found, "model-type branches outside elfs2t/kinds (ask the kind instead):\n" + "\n".join(found)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_kind_names_its_table_row_and_backbone(name):
    kind = MODELS[name]
    assert kind.name == name and kind.title and kind.display_name
    assert set(kind.table_settings) <= set(SETTINGS) and kind.table_settings
    section, key = kind.backbone_key.split(".")  # a real key of the experiment config
    assert hasattr(getattr(ExperimentConfig(model=name), section), key)
    assert list(row_kinds())[:len(MODELS)] == list(MODELS)  # the registry's models first in the table


def test_only_elf_s2t_has_a_ctc_warmup_and_extra_validation_decodings():
    settings = {"elf": {"ctc_weight": 1.0, "ctc_warmup": 0.25, "denoiser": {"prefix_attention": "self"}},
                "decode": {"strategy": "flow", "valid_strategies": ["flow", "readout", "draft"]}}
    ar = structure(ExperimentConfig, {"model": "ar", **settings})
    elf = structure(ExperimentConfig, settings)
    check_for_ddp(ar, 2)  # the AR baseline ignores the elf section: no warm-up, no flag needed
    assert model_kind(elf).has_ctc_warmup(elf) and not model_kind(ar).has_ctc_warmup(ar)
    assert model_kind(ar).valid_decodings(ar) == {}
    extra = model_kind(elf).valid_decodings(elf)
    assert list(extra) == ["readout", "draft"]  # the configured strategy is decoded anyway
    assert [c.decode.strategy for c in extra.values()] == ["readout", "draft"] and elf.decode.strategy == "flow"


def test_decode_records_name_the_reader_and_the_settings():
    ar = structure(ExperimentConfig, {"model": "ar", "decode": {"beam_size": 4}})
    assert model_kind(ar).decode_record(ar) == {"beam_size": 4, "reader": "autoregressive decoder (beam 4)"}
    elf = structure(ExperimentConfig, {"decode": {"strategy": "flow", "flow": {"steps": 8, "guidance": 2.0}}})
    record = model_kind(elf).decode_record(elf)
    assert (record["strategy"], record["steps"], record["guidance"]) == ("flow", 8, 2.0) and "beam_size" not in record
