"""The recipe table (layer L7): every recipe the command line runs, its presets and its reproductions.

One `Recipe` per CLI name says where the recipe lives (`module`, `config_name`), which presets it
has, and the arms of its reproduction as override lists. Nothing here imports a recipe or a presets
module until it is needed, so `selftaught list` stays fast and never imports torch. The presets
modules and the config classes (`selftaught.configs`) import no torch either, so `--help`,
`--print-config` and `--describe` stay fast too; only `Recipe.run` imports the recipe module.

A preset is a function of the recipe's presets module, `selftaught.presets.<module>`, named after the
preset with `-` as `_` (`tiny-smoke` -> `tiny_smoke()`): `tiny*` presets run on the embedded tiny
world on a laptop CPU; `gemma3-270m*` presets use the real Gemma 3 270M model from PyPI.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Recipe:
    """One recipe of the command line: `selftaught <name> --preset P key=value ...`."""

    name: str
    """The CLI name (`online-rl`)."""
    summary: str
    """One line for `selftaught list` and `--help`."""
    module: str
    """Import path of the recipe module (`selftaught.recipes.online_rl`), which defines `run(cfg)`."""
    config_name: str
    """Name of the recipe's config class in `selftaught.configs.recipes` (`OnlineRLConfig`), which
    imports no torch (the recipe module re-exports it)."""
    presets: tuple[str, ...]
    """Preset names; the first is the default of the command line."""
    arms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Reproduction arms: arm name -> the `key=value` overrides that set it apart from the shared base."""
    presets_name: str | None = None
    """The presets module's name when it is not the recipe module's (a recipe that is another's
    loop with its own presets: `divpo` runs `online_rl` with `presets/divpo.py`)."""

    @property
    def presets_module(self) -> str:
        """`selftaught.presets.<presets_name, else the recipe module's own name>`: the preset functions."""
        return f"{__name__}.{self.presets_name or self.module.rpartition('.')[2]}"

    @property
    def config_class(self) -> type:
        """The config dataclass (imports `selftaught.configs.recipes`, not the recipe module)."""
        return getattr(importlib.import_module("selftaught.configs.recipes"), self.config_name)

    def preset(self, name: str) -> Any:
        """A fresh config of preset `name`; a ValueError lists the valid names."""
        if name not in self.presets:
            raise ValueError(
                f"recipe {self.name!r} has no preset {name!r}; presets: {', '.join(self.presets)}"
            )
        return getattr(importlib.import_module(self.presets_module), name.replace("-", "_"))()

    def run(self, cfg: Any) -> Any:
        """Run the recipe on `cfg` (imports the recipe module); what its `run` returns."""
        return importlib.import_module(self.module).run(cfg)


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in [
        Recipe(
            name="world-pretrain",
            summary="train the tiny-world base student from scratch (buggy teacher, accuracy-based stop)",
            module="selftaught.recipes.world_pretrain",
            config_name="WorldPretrainConfig",
            presets=(
                "tiny",
                "tiny-smoke",
                "tiny-persona",
                "tiny-keywords",
                "tiny-lpo",
                "tiny-lpo-cstory",
                "tiny-facts",
                "tiny-system2",
            ),
        ),
        Recipe(
            name="sft",
            summary="supervised fine-tuning on conversations (loss on assistant tokens), LoRA optional",
            module="selftaught.recipes.sft",
            config_name="SFTConfig",
            presets=("tiny", "tiny-smoke", "gemma3-270m", "tiny-judge"),
        ),
        Recipe(
            name="dpo",
            summary="offline DPO (+ NLL) on pairs sampled from the policy or a TRL preference file",
            module="selftaught.recipes.dpo",
            config_name="DPOConfig",
            presets=("tiny", "tiny-smoke", "gemma3-270m"),
        ),
        Recipe(
            name="reward-model",
            summary="Bradley-Terry reward model on preference pairs (tiny-world or prompt/chosen/rejected); "
            "held-out pairwise accuracy",
            module="selftaught.recipes.reward_model",
            config_name="RewardModelConfig",
            presets=("tiny", "tiny-smoke"),
        ),
        Recipe(
            name="online-rl",
            summary="offline / semi-online / online DPO or GRPO with one generator sync interval s "
            "(verifiable + reward-model rewards)",
            module="selftaught.recipes.online_rl",
            config_name="OnlineRLConfig",
            presets=(
                "tiny",
                "tiny-online-dpo",
                "tiny-offline-dpo",
                "tiny-grpo",
                "tiny-mixed",
                "tiny-smoke",
                "gemma3-270m-grpo",
            ),
            arms={  # papers_B §1.12: same seed model, steps, batch and lr; only s and the loss differ
                "offline-dpo": ("sync_every=0",),
                "semi-online-dpo-s10": ("sync_every=10",),
                "semi-online-dpo-s100": ("sync_every=100",),
                "online-dpo": ("sync_every=1", "ref_sync_every=1"),
                "online-dpo-frozen-ref": ("sync_every=1", "ref_sync_every=0"),
                "grpo": ("loss=grpo", "sync_every=1"),
            },
        ),
        Recipe(
            name="divpo",
            summary="diversity-aware preference optimisation: online DPO on the most diverse good vs the "
            "least diverse bad sample (persona and graded keywords tasks)",
            module="selftaught.recipes.online_rl",
            config_name="OnlineRLConfig",
            presets_name="divpo",
            presets=("tiny", "tiny-smoke", "tiny-keywords", "gemma3-270m"),
            arms={  # papers_B §3.7: the same seed, steps, batch and lr; only the pair rule differs
                "dpo": ("tasks[0].pair_rule=correct_vs_incorrect",),
                "divpo-frequency": ("tasks[0].divpo.criterion=frequency",),
                "divpo-probability": ("tasks[0].divpo.criterion=probability",),
            },
        ),
        Recipe(
            name="j1",
            summary="GRPO of an LLM judge on verifiable verdicts: judge prompts from pairs with known "
            "winners in both orders, consistency and pointwise rewards, both-order judge metrics",
            module="selftaught.recipes.online_rl",
            config_name="OnlineRLConfig",
            presets_name="j1",
            presets=("tiny", "tiny-smoke", "tiny-lists", "gemma3-270m", "llama3-8b-vllm"),
            arms={  # papers_B §2.9: the same seed judge, steps, prompts per step and lr
                "single-order": ("judge.orders=single",),
                "both-orders": ("judge.orders=both",),
                "both-orders-consistency": ("judge.rewards={verdict: 0.0, consistency: 1.0}",),
                "both-orders-thinking": ("judge.rewards={verdict: 1.0, thinking: 0.5}",),
            },
        ),
        Recipe(
            name="self-taught-evaluator",
            summary="a judge that improves on its own judgments: sample judgments of synthetic pairs, keep "
            "the correct ones (A/B balanced), SFT the seed judge on them, iterate",
            module="selftaught.flows.self_taught_evaluator",
            config_name="SelfTaughtEvaluatorConfig",
            presets=("tiny", "tiny-smoke", "tiny-lists", "gemma3-270m", "llama3-8b-vllm"),
        ),
        Recipe(
            name="natural-reasoning",
            summary="documents -> annotated, backtranslated reasoning questions with reference answers -> "
            "dedup, decontamination -> teacher responses -> distillation SFT and self-training (RFT / DPO)",
            module="selftaught.flows.natural_reasoning",
            config_name="NaturalReasoningConfig",
            presets=("tiny", "tiny-smoke", "tiny-self-train", "gemma3-270m", "llama3-8b-vllm"),
        ),
        Recipe(
            name="adaptive-decoding",
            summary="a temperature head over a frozen model (sequence or token level) trained with latent "
            "preference optimization (LPO)",
            module="selftaught.recipes.adaptive_decoding",
            config_name="AdaptiveDecodingConfig",
            presets=("tiny", "tiny-token", "tiny-cstory", "gemma3-270m", "tiny-smoke"),
        ),
        Recipe(
            name="cocomix",
            summary="pretraining with continuous concepts: predict a teacher's SAE concepts (attribution "
            "labels) and interleave a compressed concept vector; NTP / KD / pause / add baselines",
            module="selftaught.recipes.cocomix",
            config_name="CocomixConfig",
            presets=("tiny", "tiny-smoke", "gemma3-270m"),
            arms={  # papers_B §5.10: the same corpus, steps, batch and lr; only the student differs
                "ntp": ("mixer=none", "concept_weight=0", "match_active_params=true"),
                "cocomix": (),
                "add": ("mixer=add",),
                "pause": ("mixer=pause", "concept_weight=0"),
                "kd": ("mixer=none", "concept_weight=0", "kd_weight=0.1", "match_active_params=true"),
                "activation-labels": ("labels=activation",),
            },
        ),
        Recipe(
            name="natural-thoughts",
            summary="distil a teacher's reasoning traces: annotate (domain, strategies, verbosity, steps, "
            "weak-model agreement), select at a budget, S1/S2/mixed targets, three inference modes",
            module="selftaught.flows.natural_thoughts",
            config_name="NaturalThoughtsConfig",
            presets=("tiny", "tiny-smoke", "gemma3-270m", "r1-distill-qwen-7b"),
        ),
        Recipe(
            name="rag-self-demos",
            summary="RAG post-training on the model's own best answers (candidates with / without "
            "passages / refusing, a gold-aware tournament, SFT and DPO) against RA-IT",
            module="selftaught.flows.rag_self_demos",
            config_name="RagSelfDemosConfig",
            presets=("tiny", "tiny-smoke", "gemma3-270m", "llama3-8b-instruct"),
        ),
        Recipe(
            name="system2-distill",
            summary="distil a System 2 method (CoT, RaR, S2A, BSM) into System 1: sample it, keep "
            "self-consistent answers (majority / USC / swap), SFT the input -> final answer",
            module="selftaught.flows.system2_distill",
            config_name="System2DistillConfig",
            presets=("tiny", "tiny-smoke", "gemma3-270m", "qwen7b-vllm"),
        ),
    ]
}
"""Every recipe by CLI name."""


def get_recipe(name: str) -> Recipe:
    """The recipe called `name`; a ValueError lists the valid names."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; recipes: {', '.join(RECIPES)}")
    return RECIPES[name]


def get_preset(recipe: str, name: str) -> Any:
    """The config of preset `name` of `recipe`; a ValueError lists the valid names."""
    return get_recipe(recipe).preset(name)
