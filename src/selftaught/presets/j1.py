"""j1 presets: GRPO of an LLM judge on judgments with verifiable verdicts (papers_B §2.9), on the
tiny world and on Gemma 3 270M.

`selftaught j1` is the online-rl loop (`selftaught.recipes.online_rl`) with its `judge` section set:
the rollouts are judge prompts built from pairs with known winners (`selftaught.judges.rl`: both
orders side by side, stable sibling ids), scored by `judge.rewards` through the loop's group scorer,
and validation measures the judge in both orders (`selftaught.train.judge_eval`). These presets only
choose the seed judge, the pairs, the template and the settings.
"""

from __future__ import annotations

from dataclasses import replace

from selftaught.configs.judge import JudgeOrders, JudgeRLConfig
from selftaught.configs.recipes import OnlineRLConfig
from selftaught.configs.train import (
    EvalConfig,
    GeneratorConfig,
    LoraConfig,
    Objective,
    OptimConfig,
    ParallelConfig,
    Precision,
    RolloutConfig,
    TaskConfig,
)
from selftaught.presets.dpo import GSM8K_DIR

JUDGE_TASK = TaskConfig(name="judge", reward="judge_verdict")
"""One task: every prompt is a judge prompt; `judge_verdict` is logged per sample, `judge.rewards`
(the group scorer) gives the trained reward."""


def tiny() -> OnlineRLConfig:
    """GRPO (s = 1, no KL) of the tiny-world seed judge (`tiny-world-judge`: the arithmetic student
    SFT-ed on a position-biased teacher's judgments) on world judge pairs, both orders in every step:
    4 pairs x 2 orders x 8 samples at T = 1, lr 1e-4, 300 steps (TINYWORLD_JUDGES_LPO §1.1's setup);
    greedy both-order metrics on 200 valid pairs every 50 steps. Arms: `judge.orders=single`,
    `judge.rewards={verdict: 0, consistency: 1}` (repro j1)."""
    return OnlineRLConfig(
        out_dir="runs/j1-tiny",
        model="tiny-world-judge",
        loss=Objective.GRPO,
        sync_every=1,
        kl_coef=0.0,
        num_steps=300,
        tasks=[JUDGE_TASK],
        rollouts=RolloutConfig(num_prompts=8, samples_per_prompt=8, max_new_tokens=48),
        optim=OptimConfig(lr=1e-4, eps=1e-8, schedule="constant"),
        eval=EvalConfig(every=50, batch_size=400),
        judge=JudgeRLConfig(pairs="world:train", orders=JudgeOrders.BOTH),
        checkpoint_every=50,
        log_every=10,
    )


def tiny_lists() -> OnlineRLConfig:
    """The same GRPO on the list world (`world.list_tasks`): the list-task seed judge
    (`tiny-world-list-judge`, element-wise check traces `<output> A 1=1+ 2=3- no B 1=1+ 2=2+ yes [[B]]`,
    up to ~90 tokens) on modified-instruction pairs,
    both orders every step; validation on near-miss valid pairs."""
    return replace(
        tiny(),
        out_dir="runs/j1-tiny-lists",
        model="tiny-world-list-judge",
        rollouts=RolloutConfig(num_prompts=8, samples_per_prompt=8, max_new_tokens=112),
        judge=JudgeRLConfig(
            pairs="world-lists:train", eval_pairs="world-lists:valid", eval_max_new_tokens=112
        ),
    )


def tiny_smoke() -> OnlineRLConfig:
    """Four GRPO steps of the tiny-world student as a judge, 2 pairs x 2 orders x 4 samples, both-order
    consistency reward: checks the pipeline, not the effect."""
    return replace(
        tiny(),
        out_dir="runs/j1-smoke",
        model="tiny-world",
        num_steps=4,
        rollouts=RolloutConfig(num_prompts=4, samples_per_prompt=4, max_new_tokens=40),
        judge=JudgeRLConfig(
            pairs="world:train",
            num_pairs=64,
            rewards={"verdict": 1.0, "consistency": 0.5},
            eval_num_pairs=8,
            eval_max_new_tokens=40,
        ),
        eval=EvalConfig(every=2, batch_size=64),
        checkpoint_every=2,
        log_every=1,
    )


def gemma3_270m() -> OnlineRLConfig:
    """A few LoRA GRPO steps of Gemma 3 270M base as a few-shot judge of world pairs in words
    (`world-pairwise-fewshot@1`, raw text, one verdict token after `Correct:`), both orders, verdict
    reward; greedy both-order metrics on 8 valid pairs before and after (the base model on 20 pairs:
    40 of 40 verdicts readable, all `[[A]]`; 40 judgments took 3.5 minutes on 2 busy CPU cores).
    Checks the real-model path on a CPU (scale `rollouts.*`, `num_steps` and `judge.eval_num_pairs` up on a GPU; a chat judge
    such as Llama-3.1-8B-Instruct: `model=<dir> judge.template=j1-pairwise-verdict@1
    judge.prompt_style=chat rollouts.max_new_tokens=1024 generator.kind=vllm lora.r=0`)."""
    return OnlineRLConfig(
        out_dir="runs/j1-gemma3-270m",
        model="gemma-3-270m",
        loss=Objective.GRPO,
        sync_every=1,
        kl_coef=0.0,
        num_steps=2,
        tasks=[JUDGE_TASK],
        rollouts=RolloutConfig(
            num_prompts=4, samples_per_prompt=4, max_new_tokens=6, stop=["\n"], generation_batch_size=16
        ),
        micro_batch_tokens=2048,
        lora=LoraConfig(r=8, alpha=16),
        optim=OptimConfig(lr=1e-4, eps=1e-8, schedule="constant"),
        eval=EvalConfig(every=0, batch_size=16),
        judge=JudgeRLConfig(
            pairs="world:train",
            num_pairs=256,
            template="world-pairwise-fewshot@1",
            prompt_style="text",
            eval_num_pairs=8,
            eval_max_new_tokens=6,
            eval_stop=["\n"],
        ),
        checkpoint_every=0,
        log_every=1,
    )


def llama3_8b_vllm() -> OnlineRLConfig:
    """J1's recipe at 8B scale (papers_B §2.5: Llama-3.1-8B-Instruct, GRPO, both orders, verdict
    reward; the paper trains on 22K synthetic pairs): Llama-3.1-8B-Instruct (a hub id, downloaded
    only because this preset names it) as a thinking judge (`j1-pairwise-verdict@1`, chat, up to
    1024 tokens of thinking) of GSM8K answer-mismatch pairs, both orders in every step, 16 pairs x
    2 orders x 8 samples sampled by an in-process vLLM whose weights are reloaded each step, full
    fine-tuning in bf16 (vLLM needs `lora.r=0`), lr 1e-6, KL 0.001; greedy both-order metrics on
    200 GSM8K test pairs every 50 steps. The training state of 8B does not fit one GPU: run it
    with `torchrun --nproc_per_node 8 -m selftaught j1 --preset llama3-8b-vllm` (FSDP2 shards
    it). Checked for config validity only (tests/recipes/test_j1.py); not run here (no GPU)."""
    return OnlineRLConfig(
        out_dir="runs/j1-llama3-8b",
        model="meta-llama/Llama-3.1-8B-Instruct",
        loss=Objective.GRPO,
        sync_every=1,
        kl_coef=0.001,
        num_steps=500,
        tasks=[JUDGE_TASK],
        rollouts=RolloutConfig(num_prompts=32, samples_per_prompt=8, max_new_tokens=1024),
        generator=GeneratorConfig(kind="vllm"),
        parallel=ParallelConfig(strategy="fsdp2"),
        precision=Precision.BF16,
        optim=OptimConfig(lr=1e-6, schedule="constant"),
        eval=EvalConfig(every=50, batch_size=64),
        judge=JudgeRLConfig(
            pairs=str(GSM8K_DIR / "train.jsonl"),
            num_pairs=8192,
            template="j1-pairwise-verdict@1",
            prompt_style="chat",
            eval_pairs=str(GSM8K_DIR / "test.jsonl"),
            eval_num_pairs=200,
            eval_max_new_tokens=1024,
        ),
        checkpoint_every=50,
        log_every=1,
    )
