"""Data flows one way: a module imports only from its own layer or below (DESIGN.md, Layers).

The checker reads every module's source (nothing is imported) and collects each `selftaught` module it
names: `import selftaught.x`, `from selftaught.x import y`, `from selftaught import x`, relative imports
(`from . import x`, `from ..train import y`, resolved against the module's own package), and
`importlib.import_module("selftaught.x")` / `import_module(...)` / `__import__(...)` calls whose module
is a string constant.

Recipes are independent of each other: a module under `recipes/` may not import another recipe's
modules. A recipe is one top-level entry of `recipes/`: a module `recipes/<name>.py`, or a package
`recipes/<name>/` (whose modules may import each other). The package's own `recipes/__init__.py` is
the registry, not a recipe: it may import or name every recipe, and any module may import it.
"""

from __future__ import annotations

import ast
from collections.abc import Collection
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "selftaught"

LAYERS = {
    "__init__": 0,  # the package root `selftaught` (its version), importable from any layer
    "types": 0,
    "config": 0,
    "dist": 0,
    "runlog": 0,
    "trackers": 0,
    "data": 1,
    "models": 1,
    "world": 1,
    "retrieval": 1,
    "engines": 2,
    "rewards": 3,
    "judges": 3,
    "evals": 3,
    "selection": 4,
    "configs": 4,
    "losses": 5,
    "train": 5,
    "pipelines": 5,
    "recipes": 6,
    "cli": 7,
    "commands": 7,
    "presets": 7,
    "report": 7,
    "repro": 7,
    "flows": 7,
    "demo": 7,
}

IMPORT_FUNCTIONS = {"import_module", "__import__"}
"""Calls that import the module named by their first argument (`importlib.import_module`, `__import__`)."""


# --- the checker ---------------------------------------------------------------------------------


def module_name(path: Path) -> str:
    """`.../src/selftaught/train/step.py` -> `selftaught.train.step`; a package's `__init__.py` -> the package."""
    parts = ["selftaught", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """The `selftaught` names that `source`, the code of module `module`, imports (modules, or names
    inside them: see the docstring of this file); `is_package`: `source` is the package's `__init__.py` (relative imports resolve
    against `module` itself rather than its parent)."""
    package = module if is_package else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.extend(_from_import_targets(node, package))
        elif isinstance(node, ast.Call) and _called_name(node.func) in IMPORT_FUNCTIONS:
            names.extend(_import_call_target(node, package))
    return [n for n in names if n == "selftaught" or n.startswith("selftaught.")]


def _from_import_targets(node: ast.ImportFrom, package: str) -> list[str]:
    """`from P import a, b` -> `[P.a, P.b]` (submodules of P or names defined in P: `layer_of` and
    `recipe_of` tell them apart)."""
    base = _resolve(node.module or "", node.level, package)
    return [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"] or [base]


def _import_call_target(node: ast.Call, package: str) -> list[str]:
    """The module of `import_module("x")` / `__import__("x")` when it is a string constant."""
    arg = node.args[0] if node.args else None
    if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
        return []  # computed at run time: not checkable here
    name = arg.value
    level = len(name) - len(name.lstrip("."))
    return [_resolve(name[level:], level, package)]


def _resolve(name: str, level: int, package: str) -> str:
    """The absolute module of a (possibly relative, `level` leading dots) import inside `package`."""
    if level == 0:
        return name
    parts = package.split(".")
    if level - 1 >= len(parts):
        raise AssertionError(f"relative import {'.' * level}{name} goes above the top package {package}")
    base = ".".join(parts[: len(parts) - (level - 1)])
    return f"{base}.{name}" if name else base


def _called_name(func: ast.expr) -> str | None:
    """`f` of `f(...)` or `mod.f(...)`."""
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


def layer_of(name: str, known: Collection[str]) -> int:
    """The layer of `selftaught` module `name`: that of its top-level module or package. A name that
    is neither a `LAYERS` entry nor a `known` module is an attribute of the root package
    (`from selftaught import __version__`)."""
    parts = name.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if top not in LAYERS and f"selftaught.{top}" not in known:
        top = "__init__"
    if top not in LAYERS:
        raise AssertionError(f"selftaught.{top} is not assigned a layer in tests/test_layers.py")
    return LAYERS[top]


def recipe_of(name: str, known: Collection[str]) -> str | None:
    """The recipe that module `name` (or an attribute of it) belongs to: `selftaught.recipes.dpo.run`
    -> `dpo`; None outside `recipes/`, for the registry `selftaught.recipes`, and for names it defines
    (`selftaught.recipes.RECIPES`)."""
    parts = name.split(".")
    if parts[:2] != ["selftaught", "recipes"] or len(parts) < 3:
        return None
    return parts[2] if ".".join(parts[:3]) in known else None


def violations(module: str, imports: list[str], known: Collection[str]) -> list[str]:
    """What is wrong with `module` importing `imports` (`known`: the package's modules): an import from a
    higher layer, or from another recipe; empty when nothing is."""
    own, own_recipe = layer_of(module, known), recipe_of(module, known)
    problems = []
    for name in imports:
        target, recipe = layer_of(name, known), recipe_of(name, known)
        if target > own:
            problems.append(f"{module} (L{own}) imports {name} (L{target})")
        if own_recipe is not None and recipe is not None and recipe != own_recipe:
            problems.append(f"{module} imports {name}: recipes do not import each other")
    return problems


# --- the tree ------------------------------------------------------------------------------------

MODULES = sorted(PACKAGE.rglob("*.py"))
MODULE_NAMES = {module_name(path) for path in MODULES}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_from_its_layer_or_below(path):
    module = module_name(path)
    imports = imported_modules(path.read_text(), module, is_package=path.name == "__init__.py")
    problems = violations(module, imports, MODULE_NAMES)
    assert not problems, "\n".join(problems)


# --- the checker itself, on synthetic sources ----------------------------------------------------


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("selftaught.train.step", "import selftaught.recipes.sft", ["selftaught.recipes.sft"]),
        ("selftaught.train.step", "from selftaught.cli import main", ["selftaught.cli.main"]),
        (
            "selftaught.train.step",
            "from selftaught import cli, types",
            ["selftaught.cli", "selftaught.types"],
        ),
        ("selftaught.train.step", "from . import optim", ["selftaught.train.optim"]),
        (
            "selftaught.train.step",
            "from .optim import build_optimizer",
            ["selftaught.train.optim.build_optimizer"],
        ),
        ("selftaught.train.step", "from .. import recipes", ["selftaught.recipes"]),
        ("selftaught.recipes.dpo", "from ..train import step", ["selftaught.train.step"]),
        ("selftaught.train", "from .step import train_step", ["selftaught.train.step.train_step"]),
        (
            "selftaught.types",
            "import importlib\nimportlib.import_module('selftaught.cli')",
            ["selftaught.cli"],
        ),
        (
            "selftaught.train.step",
            "from importlib import import_module\nimport_module('..cli')",
            ["selftaught.cli"],
        ),
        ("selftaught.types", "__import__('selftaught.report')", ["selftaught.report"]),
        ("selftaught.types", "import_module(name)\nimport torch\nfrom typing import Any", []),
        ("selftaught.cli", "from selftaught import __version__", ["selftaught.__version__"]),
    ],
)
def test_checker_finds_every_kind_of_import(module, source, expected):
    assert imported_modules(source, module, is_package=module == "selftaught.train") == expected


SYNTHETIC_MODULES = {
    "selftaught",
    "selftaught.types",
    "selftaught.data",
    "selftaught.data.chat",
    "selftaught.train",
    "selftaught.train.step",
    "selftaught.recipes",
    "selftaught.recipes.common",
    "selftaught.recipes.dpo",
    "selftaught.recipes.sft",
    "selftaught.recipes.online_rl",
    "selftaught.recipes.online_rl.grpo",
    "selftaught.recipes.online_rl.dpo",
}
"""The package the checker's own tests pretend to check (a recipe package `online_rl/` included)."""


@pytest.mark.parametrize(
    ("module", "source", "problem"),
    [
        (
            "selftaught.train.step",
            "import selftaught.recipes.sft",
            "(L5) imports selftaught.recipes.sft (L6)",
        ),
        ("selftaught.train.step", "from selftaught import cli", "imports selftaught.cli (L7)"),
        ("selftaught.losses.dpo", "from ..train import step", None),
        ("selftaught.data.chat", "from ..train import step", "imports selftaught.train.step (L5)"),
        ("selftaught.data.chat", "from .. import pipelines", "imports selftaught.pipelines (L5)"),
        ("selftaught.types", "importlib.import_module('selftaught.engines.hf')", "(L2)"),
        (
            "selftaught.recipes.dpo",
            "from selftaught.recipes.common import x",
            "recipes do not import each other",
        ),
        ("selftaught.recipes.dpo", "from selftaught.recipes import sft", "recipes do not import each other"),
        ("selftaught.recipes.dpo", "from . import sft", "recipes do not import each other"),
        ("selftaught.recipes.dpo", "import_module('.sft', __package__)", "recipes do not import each other"),
        ("selftaught.recipes.dpo", "from selftaught.recipes import RECIPES", None),
        ("selftaught.recipes.dpo", "from selftaught.recipes.dpo import run", None),
        ("selftaught.recipes", "from selftaught.recipes import dpo, sft", None),
        ("selftaught.recipes.online_rl.grpo", "from .dpo import pair_loss", None),
        ("selftaught.recipes.online_rl.grpo", "from ..dpo import run", "recipes do not import each other"),
        ("selftaught.commands", "import selftaught.recipes.dpo", None),
        ("selftaught.cli", "from selftaught import __version__", None),
    ],
)
def test_checker_reports_upward_and_cross_recipe_imports(module, source, problem):
    imports = imported_modules(source, module, is_package=module == "selftaught.recipes")
    found = violations(module, imports, SYNTHETIC_MODULES)
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1 and problem in found[0], found


def test_every_top_level_module_has_a_layer():
    tops = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in MODULES}
    assert tops <= set(LAYERS), f"give these a layer in LAYERS: {sorted(tops - set(LAYERS))}"
