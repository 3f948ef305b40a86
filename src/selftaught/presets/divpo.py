"""divpo presets: online DPO with DivPO's pair rule on the tiny world's persona task (papers_B §3.7),
on its graded keywords task (`tiny-keywords`: the rho of the quality pools matters there), and on
Gemma 3 270M with a JSON persona prompt.

`selftaught divpo` is the online-rl loop (`selftaught.recipes.online_rl`) with `pair_rule=divpo`:
these presets only choose the seed model, the task and the pair rule's settings.
"""

from __future__ import annotations

from selftaught.configs.recipes import OnlineRLConfig
from selftaught.configs.train import EvalConfig, LoraConfig, OptimConfig, RolloutConfig, TaskConfig
from selftaught.selection.diversity import Criterion, DivPOConfig, Units
from selftaught.world.keywords import TASK as KEYWORDS
from selftaught.world.persona import JSON_TASK

PERSONA = "persona"


def _persona_task(criterion: Criterion = Criterion.FREQUENCY, rho: float = 0.3) -> TaskConfig:
    """The persona task scored by validity (all valid personas tie), pairs by DivPO."""
    return TaskConfig(
        name=PERSONA,
        reward="persona_valid",
        pair_rule="divpo",
        divpo=DivPOConfig(criterion=criterion, rho=rho),
    )


def tiny() -> OnlineRLConfig:
    """Online DivPO (s = 1, reference frozen at the seed) of the persona seed model: 32 prompts x 16
    samples at T = 1, beta 0.1, lr 1e-4 (papers_B §3.7); validity and unique ratios of 1000 samples
    at T = 1 every 50 steps."""
    return OnlineRLConfig(
        out_dir="runs/divpo-tiny",
        model="tiny-world-persona",
        sync_every=1,
        ref_sync_every=0,
        num_steps=100,
        beta=0.1,
        tasks=[_persona_task()],
        rollouts=RolloutConfig(
            prompts="world:persona-prompts", num_prompts=32, samples_per_prompt=16, max_new_tokens=24
        ),
        optim=OptimConfig(lr=1e-4, eps=1e-8, schedule="constant"),
        eval=EvalConfig(data="world:persona", per_level=1000, temperature=1.0, every=50, seed=0),
    )


def tiny_keywords() -> OnlineRLConfig:
    """Online DivPO of the keywords seed model (`tiny-world-keywords`) on the graded keywords task:
    quality = mean word score in {0, 0.1, ..., 1} with many top outputs, pools by range with rho 0.3,
    diversity by model probability (the paper's keyword-story setting); the `tiny` preset's online
    settings (32 prompts x 16 samples, 100 steps, beta 0.1, lr 1e-4); validity, quality and word
    diversity of 1000 samples at T = 1 every 50 steps. Sweep `tasks[0].divpo.rho` for the frontier;
    `tasks[0].pair_rule=best_vs_worst` is online DPO."""
    task = TaskConfig(
        name=KEYWORDS,
        reward="keywords_quality",
        pair_rule="divpo",
        divpo=DivPOConfig(criterion=Criterion.PROBABILITY, rho=0.3),
    )
    return OnlineRLConfig(
        out_dir="runs/divpo-tiny-keywords",
        model="tiny-world-keywords",
        sync_every=1,
        ref_sync_every=0,
        num_steps=100,
        beta=0.1,
        tasks=[task],
        rollouts=RolloutConfig(
            prompts="world:keywords-prompts", num_prompts=32, samples_per_prompt=16, max_new_tokens=40
        ),
        optim=OptimConfig(lr=1e-4, eps=1e-8, schedule="constant"),
        eval=EvalConfig(data="world:keywords", per_level=1000, temperature=1.0, every=50, seed=0),
    )


def tiny_smoke() -> OnlineRLConfig:
    """Four DivPO steps on 4 prompts x 4 samples: checks the pipeline, not the effect."""
    return OnlineRLConfig(
        out_dir="runs/divpo-smoke",
        model="tiny-world-persona",
        sync_every=1,
        ref_sync_every=0,
        num_steps=4,
        tasks=[_persona_task()],
        rollouts=RolloutConfig(
            prompts="world:persona-prompts", num_prompts=4, samples_per_prompt=4, max_new_tokens=24
        ),
        optim=OptimConfig(lr=1e-4, schedule="constant"),
        eval=EvalConfig(data="world:persona", per_level=64, temperature=1.0, every=2, seed=0),
        checkpoint_every=2,
    )


def gemma3_270m() -> OnlineRLConfig:
    """A few online DivPO steps of Gemma 3 270M base (LoRA) on the persona task's JSON form: a raw-text
    prompt continued with one line of JSON, rewarded by validity (`persona_json_valid`), pairs by the
    rarity of the sample's JSON values in its pool; validity and diversity of 32 samples before and
    after. Checks the real-model path on a CPU (scale `rollouts.*` and `num_steps` up on a GPU)."""
    task = TaskConfig(
        name=JSON_TASK,
        reward="persona_json_valid",
        pair_rule="divpo",
        divpo=DivPOConfig(criterion=Criterion.FREQUENCY, units=Units.JSON_VALUES, rho=0.3),
    )
    return OnlineRLConfig(
        out_dir="runs/divpo-gemma3-270m",
        model="gemma-3-270m",
        sync_every=1,
        ref_sync_every=0,
        num_steps=3,
        beta=0.1,
        tasks=[task],
        rollouts=RolloutConfig(
            prompts="world:persona-json-prompts",
            num_prompts=2,
            samples_per_prompt=8,
            max_new_tokens=40,
            stop=["\n"],
            generation_batch_size=16,
        ),
        micro_batch_tokens=1024,
        lora=LoraConfig(r=8, alpha=16),
        optim=OptimConfig(lr=1e-4, eps=1e-8, schedule="constant"),
        eval=EvalConfig(data="world:persona-json", per_level=32, temperature=1.0, batch_size=32, seed=0),
        checkpoint_every=0,
        log_every=1,
    )
