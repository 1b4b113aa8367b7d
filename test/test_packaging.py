"""setup.py: the core's install_requires name every third-party package the core imports, benchmark-only packages
stay behind the ``bench`` extra, and the console entry points exist."""
import ast
import importlib.metadata
import re
import sys
from pathlib import Path

from conftest import ROOT

BENCH_ONLY = {"faster_whisper", "ctranslate2"}


def _setup_kwargs() -> dict:
    """install_requires, extras_require and entry_points of setup.py, read without running it."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    values = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup":
            for kw in node.keywords:
                try:
                    values[kw.arg] = ast.literal_eval(kw.value)
                except ValueError:
                    pass
    return values


def _name(requirement: str) -> str:
    return re.split(r"[<>=!\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def test_install_requires_cover_the_core_imports():
    kwargs = _setup_kwargs()
    required = {_name(r) for r in kwargs["install_requires"]}
    dists = importlib.metadata.packages_distributions()
    missing = {}
    for path in sorted((ROOT / "elfs2t").rglob("*.py")):
        bench = "bench" in path.relative_to(ROOT).parts
        for module in _imports(path):
            if module in sys.stdlib_module_names or module == "elfs2t":
                continue
            if module in BENCH_ONLY:
                assert bench, f"{path.relative_to(ROOT)} imports the benchmark-only {module}"
                continue
            names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
            if not names & required:
                missing.setdefault(module, []).append(str(path.relative_to(ROOT)))
    assert not missing, f"imported by the core but not in install_requires: {missing}"
    assert {_name(r) for r in kwargs["extras_require"]["bench"]} == {"ctranslate2", "faster-whisper"}


def test_console_entry_points_exist():
    for spec in _setup_kwargs()["entry_points"]["console_scripts"]:
        module, func = spec.split("=")[1].strip().split(":")
        assert callable(getattr(__import__(module, fromlist=[func]), func)), spec
