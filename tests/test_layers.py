"""Layers only point down: every import inside core (lazy ones in functions included) goes to the
importer's own stage or one below it (core/layers.py), and core never imports the app."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from core.layers import LAYERS, rank, stage_of

CORE = Path(__file__).resolve().parents[1] / "core"


def core_modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(CORE.rglob("*.py")):
        parts = path.relative_to(CORE).with_suffix("").parts
        found.append((".".join(parts), path))
    return found


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path``, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "core":  # from core import rulebook as rb
                found += [(node.lineno, f"core.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def upward_imports() -> list[str]:
    wrong = []
    for name, path in core_modules():
        mine = stage_of(name)
        for line, module in imports_of(path):
            if module.split(".")[0] in ("explorer", "streamlit"):
                wrong.append(f"core/{path.relative_to(CORE)}:{line} imports {module} (core never imports the app)")
            elif module.startswith("core.") and module != "core.__version__":
                theirs = stage_of(module)
                if rank(theirs) > rank(mine):
                    wrong.append(f"core/{path.relative_to(CORE)}:{line} ({mine}) imports {module} ({theirs})")
    return wrong


def test_every_core_module_has_a_stage():
    for name, _ in core_modules():
        assert stage_of(name) in LAYERS


def test_imports_only_point_down():
    assert upward_imports() == []


def test_the_check_fails_on_an_upward_import(tmp_path, monkeypatch):
    """The check can fail: a data-stage module that imports the trainer is reported."""
    fake = tmp_path / "core"
    (fake / "training").mkdir(parents=True)
    (fake / "dataset.py").write_text("def f():\n    from core.training.run import train\n")
    (fake / "training" / "run.py").write_text("from core.dataset import f\n")
    monkeypatch.setattr(sys.modules[__name__], "CORE", fake)
    assert upward_imports() == ["core/dataset.py:2 (data) imports core.training.run (training)"]


def test_an_unknown_module_names_the_fix():
    with pytest.raises(KeyError, match="add it to one"):
        stage_of("core.nowhere")
