"""The recipe commands, generated from `selftaught.presets.RECIPES`: `selftaught <recipe>` (and its
alias `selftaught world pretrain`), and `selftaught list`.

    selftaught <recipe> [--preset P | --config F] [key=value ...] [--print-config | --describe]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from selftaught.commands.common import MODEL_HELP
from selftaught.presets import RECIPES, Recipe


def add_parsers(sub: Any) -> None:
    """`list`, one command per recipe, and `world pretrain`."""
    sub.add_parser("list", help="list recipes and presets").set_defaults(func=cmd_list)
    for recipe in RECIPES.values():
        add_recipe_parser(sub, recipe.name, recipe)
    world = sub.add_parser("world", help="tiny-world commands").add_subparsers(
        metavar="COMMAND", required=True
    )
    add_recipe_parser(world, "pretrain", RECIPES["world-pretrain"])


def add_recipe_parser(sub: Any, command: str, recipe: Recipe) -> None:
    """`command` runs `recipe` on a preset (or a YAML config) plus overrides."""
    p = sub.add_parser(command, help=recipe.summary, description=recipe.summary)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.lr=3e-4")
    p.add_argument(
        "--preset",
        default=None,
        help=f"preset name: {', '.join(recipe.presets)} (default: {recipe.presets[0]})",
    )
    p.add_argument("--config", help="a YAML config (e.g. a run's config.yaml) instead of a preset")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.add_argument("--describe", action="store_true", help="list every config key with its doc and exit")
    p.set_defaults(func=cmd_recipe, recipe=recipe.name)


def recipe_config(recipe: str, preset: str, config_path: str | None, overrides: list[str]) -> Any:
    """The config a recipe run uses: the preset (or the YAML file) plus the overrides."""
    from selftaught.config import apply_overrides, load_yaml, read_config_text

    entry = RECIPES[recipe]
    if config_path and preset:
        raise ValueError(
            f"give --config or --preset, not both (got --config {config_path} --preset {preset})"
        )
    cfg: Any
    if config_path:
        if not read_config_text(config_path).strip():
            raise ValueError(f"--config {config_path} is empty; pass a config written by --print-config")
        cfg = load_yaml(entry.config_class, config_path)
    else:
        cfg = entry.preset(preset or entry.presets[0])
    return apply_overrides(cfg, overrides)


def cmd_recipe(args: argparse.Namespace) -> int:
    """Print the config (`--print-config`), its keys (`--describe`), or run the recipe and print
    what it returns as JSON."""
    from selftaught.config import describe, dump_yaml

    cfg = recipe_config(args.recipe, args.preset, args.config, args.overrides)
    if args.print_config:
        print(dump_yaml(cfg), end="")
        return 0
    if args.describe:
        for key, value, doc in describe(cfg):
            print(f"{key} = {value!r}" + (f"\n    {doc}" if doc else ""))
        return 0
    from selftaught.train.loop import check_out_dir  # torch: only when the recipe runs

    check_out_dir(cfg.out_dir)  # before any model load
    result = RECIPES[args.recipe].run(cfg)
    if result is not None:
        print(json.dumps(result, indent=2, default=str))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """Recipes with their presets (and reproduction arms), the other commands, the model aliases;
    reads only the recipe table, so it imports no recipe (and no torch)."""
    print("recipes (selftaught <recipe> --preset P key=value ...):")
    for recipe in RECIPES.values():
        print(f"  {recipe.name:22s} {recipe.summary}")
        print(f"  {'':22s} presets: {', '.join(recipe.presets)}")
        if recipe.arms:
            print(f"  {'':22s} repro arms: {', '.join(recipe.arms)}")
    print("\ncommands: list, generate, eval, eval-judge, serve, report, repro, demo, world pretrain")
    print(f"models (--model, model=): {MODEL_HELP}")
    return 0
