"""Data flows one way: a module imports only from its own layer or below (DESIGN.md, Layers)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "selftaught"

LAYERS = {
    "types": 0,
    "config": 0,
    "dist": 0,
    "runlog": 0,
    "data": 1,
    "models": 1,
    "world": 1,
    "engines": 2,
    "rewards": 3,
    "judges": 3,
    "evals": 3,
    "selection": 4,
    "losses": 5,
    "train": 5,
    "recipes": 6,
    "cli": 7,
    "presets": 7,
    "report": 7,
    "repro": 7,
    "demo": 7,
}


def _layer_of(parts: list[str]) -> int:
    name = parts[0].removesuffix(".py")
    if name not in LAYERS:
        raise AssertionError(f"selftaught.{name} is not assigned a layer in tests/test_layers.py")
    return LAYERS[name]


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return [n for n in names if n.startswith("selftaught.")]


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE or p.name != "__init__.py")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_from_its_layer_or_below(path):
    own = _layer_of(list(path.relative_to(PACKAGE).parts))
    for name in _imports(path):
        target = _layer_of(name.split(".")[1:])
        assert target <= own, f"{path.relative_to(PACKAGE)} (L{own}) imports {name} (L{target})"
