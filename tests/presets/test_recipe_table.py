"""The recipe table: every preset of every recipe builds its recipe's config and survives the YAML
round trip of `--print-config`; the table names every preset function; repro arms are valid
overrides; and `selftaught list` reads the table without importing torch."""

import inspect
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest

from selftaught.cli import main
from selftaught.config import apply_overrides, load_yaml
from selftaught.data.gsm8k import STOP
from selftaught.presets import RECIPES, get_preset

PRESETS = [(recipe.name, preset) for recipe in RECIPES.values() for preset in recipe.presets]


@pytest.mark.parametrize(("recipe", "preset"), PRESETS, ids=[f"{r}:{p}" for r, p in PRESETS])
def test_every_preset_builds_its_config_and_round_trips_through_print_config(
    recipe, preset, tmp_path, capsys
):
    entry = RECIPES[recipe]
    cfg = entry.preset(preset)
    assert type(cfg) is entry.config_class
    assert main([recipe, "--preset", preset, "--print-config"]) == 0
    path = tmp_path / "config.yaml"
    path.write_text(capsys.readouterr().out)
    assert load_yaml(entry.config_class, path) == cfg


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_the_table_lists_every_preset_function_of_the_recipe(recipe):
    entry = RECIPES[recipe]
    module = import_module(entry.presets_module)
    functions = {
        name.replace("_", "-")
        for name, value in vars(module).items()
        if inspect.isfunction(value) and value.__module__ == module.__name__ and not name.startswith("_")
    }
    assert functions == set(entry.presets)
    assert entry.presets[0] == "tiny"  # the command line's default


def test_unknown_names_are_errors_that_list_the_valid_ones():
    with pytest.raises(
        ValueError, match="recipe 'sft' has no preset 'big'; presets: tiny, tiny-smoke, gemma3-270m"
    ):
        get_preset("sft", "big")
    with pytest.raises(ValueError, match="unknown recipe 'ppo'; recipes: world-pretrain, sft"):
        get_preset("ppo", "tiny")


@pytest.mark.parametrize(("recipe", "arm"), [(r.name, arm) for r in RECIPES.values() for arm in r.arms])
def test_repro_arms_are_valid_overrides_of_the_tiny_preset(recipe, arm):
    base = RECIPES[recipe].preset("tiny")
    cfg = apply_overrides(base, list(RECIPES[recipe].arms[arm]))
    already = {
        ("online-rl", "semi-online-dpo-s10"),
        ("divpo", "divpo-frequency"),
        ("j1", "both-orders"),
        ("cocomix", "cocomix"),
    }
    assert cfg != base or (recipe, arm) in already


def test_gemma_grpo_preset_samples_few_shot_gsm8k_and_checks_the_answer():
    cfg = get_preset("online-rl", "gemma3-270m-grpo")
    assert cfg.loss == "grpo" and cfg.model == "gemma-3-270m" and cfg.sync_every == 1
    assert cfg.rollouts.prompts.endswith("gsm8k/train.jsonl") and cfg.rollouts.stop == STOP
    assert [t.reward for t in cfg.tasks] == ["math_answer"] and cfg.lora.r == 8


def test_list_imports_no_torch():
    code = (
        "import sys\n"
        "from selftaught.cli import main\n"
        "assert main(['list']) == 0\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "online-rl" in done.stdout and "gemma3-270m-grpo" in done.stdout


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_every_file_and_module_describe_cites_exists_in_the_repo(recipe, capsys):
    """`--describe` of every preset: each document it names (`*.md`, `*.py`) is a file of this
    repository, and each `selftaught.<module>` it names is a module of the package."""
    import re

    for preset in RECIPES[recipe].presets:
        assert main([recipe, "--preset", preset, "--describe"]) == 0
        text = capsys.readouterr().out
        for path in set(re.findall(r"[\w./-]+\.(?:md|py)\b", text)):
            assert (REPO / path).is_file(), f"{recipe} --preset {preset} --describe cites {path}"
        for dotted in set(re.findall(r"\bselftaught(?:\.\w+)+", text)):
            parts = dotted.split(".")
            modules = [REPO / "src" / Path(*parts[:n]) for n in range(len(parts), 1, -1)]
            assert any(m.with_suffix(".py").is_file() or (m / "__init__.py").is_file() for m in modules), (
                f"{recipe} --preset {preset} --describe cites {dotted}"
            )
