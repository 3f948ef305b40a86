"""One config per recipe (`selftaught.presets.RECIPES` names them); each recipe module re-exports its own."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from selftaught.config import check, check_levels, check_limit
from selftaught.configs.adaptive import AdaptiveDecodingConfig as AdaptiveDecodingConfig
from selftaught.configs.cocomix import CocomixConfig as CocomixConfig
from selftaught.configs.judge import JudgeRLConfig
from selftaught.configs.judge import SelfTaughtEvaluatorConfig as SelfTaughtEvaluatorConfig
from selftaught.configs.losses import AdvantageType, DPOLossType, LossNormalization, NLLNormalization
from selftaught.configs.natural_thoughts import NaturalThoughtsConfig as NaturalThoughtsConfig
from selftaught.configs.system2 import System2DistillConfig as System2DistillConfig
from selftaught.configs.train import (
    EvalConfig,
    GeneratorConfig,
    LoraConfig,
    Objective,
    OptimConfig,
    RolloutConfig,
    RunConfig,
    TaskConfig,
    check_interval,
    check_task_prompts,
)
from selftaught.data import gsm8k
from selftaught.types import StrEnum
from selftaught.world.arith import check_strategy_weights


class PretrainTask(StrEnum):
    ARITH = "arith"
    """Arithmetic with a buggy teacher; stop on greedy valid accuracy (the `tiny-world` student)."""
    PERSONA = "persona"
    """DivPO's persona world (`world.persona`); a fixed number of steps (`tiny-world-persona`)."""
    KEYWORDS = "keywords"
    """DivPO's graded keywords task (`world.keywords`); a fixed number of steps (`tiny-world-keywords`)."""
    LPO = "lpo"
    """Adaptive decoding's base: MATH (clean CoT) + STORY (`world.stories`); fixed steps (`tiny-world-lpo`)."""
    FACTS = "facts"
    """The RAG world's base: closed-book, passage and refuse-rule QA on a knowledge base (`world.facts`;
    `tiny-world-facts`); fixed steps."""
    LPO_CSTORY = "lpo-cstory"
    """The token-level base: MATH + STORY + CSTORY, a third each; fixed steps (`tiny-world-lpo-cstory`)."""
    SYSTEM2 = "system2"
    """System 2 distillation's base: every question as `<s1>` (direct) and `<s2>` (scratchpad), for the
    letters, swaps and judge tasks (`world.system2`; `bug` is the scratchpad's slip rate per step);
    fixed steps (`tiny-world-system2`)."""


@dataclass
class WorldPretrainConfig(RunConfig):
    out_dir: str = "runs/world-pretrain"
    """Run directory; the trained model goes to `<out_dir>/model`."""
    model: str = "xs"
    """Tiny Llama shape built from scratch: xs (144k params), s (1M), m (3.3M), l (8M)."""
    num_steps: int = 6000
    """Hard cap on optimizer steps."""
    log_every: int = 50
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(every=250, per_level=100, batch_size=512))
    """Greedy valid accuracy for the stop rule (`eval.every`); the final test uses `test_per_level`."""
    checkpoint_every: int = 0
    task: PretrainTask = PretrainTask.ARITH
    """What the student learns: `arith` (the fields from `levels` to `stop_accuracy` apply), `persona`,
    `keywords`, `lpo` or `lpo-cstory` (`num_examples`, `batch_size`, `optim*`, `persona_samples` / `keywords_samples`
    / `test_per_level` apply; no stop rule)."""
    vocab_size: int = 320
    """BPE vocabulary size of the world tokenizer."""
    levels: list[int] = field(default_factory=lambda: [1, 2, 3])
    """Difficulty levels (number of steps) in the training mix and the evaluation."""
    bug: float = 0.6
    """Probability that the teacher forgets a units carry (0 = a clean teacher)."""
    strategy_weights: dict[str, float] = field(default_factory=lambda: {"chain": 1.0})
    """Mix of solution strategies in the SFT data."""
    num_examples: int = 50_000
    """Size of the training pool (sampled once, then shuffled every epoch)."""
    batch_size: int = 64
    optim_steps: int = 3000
    """Length of the warmup + cosine schedule; after it the lr stays at its floor."""
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            lr=3e-3,
            betas=(0.9, 0.98),
            schedule="cosine",
            warmup_steps=50,
            min_lr_ratio=0.1,
            max_grad_norm=1.0,
        )
    )
    test_per_level: int = 200
    """Final test: problems per level (`task=lpo`: MATH and as many STORY prompts of the fixed-temperature
    sweep, 2 samples each)."""
    stop_accuracy: float = 0.6
    """Stop once greedy valid accuracy (mean over levels) reaches this."""
    persona_samples: int = 1000
    """task=persona: samples of the instruction (T=1) in the final summary; validation draws 256."""
    keywords_samples: int = 1000
    """task=keywords: samples (T=1, the topics in turn) in the final summary; validation draws 256."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.batch_size >= 1, "batch_size", ">= 1", self.batch_size)
        check(
            self.num_examples >= self.batch_size,
            "num_examples",
            f">= batch_size ({self.batch_size})",
            self.num_examples,
        )
        check(self.optim_steps >= 1, "optim_steps", ">= 1", self.optim_steps)
        check(self.persona_samples >= 1, "persona_samples", ">= 1", self.persona_samples)
        check(self.keywords_samples >= 1, "keywords_samples", ">= 1", self.keywords_samples)
        check_levels(self.levels, "levels")
        check(0 <= self.bug <= 1, "bug", "a probability in [0, 1]", self.bug)
        check_strategy_weights(self.strategy_weights)


@dataclass
class SFTDataConfig:
    SHOWN_WHEN_SET = ("emphasis",)
    """Added after runs were cached: in config.yaml only when set."""

    source: str = "world:sft"
    """`world:sft` (generated tiny-world solutions), or a JSONL/Parquet/dataset path or `hf:` name."""
    max_length: int = 512
    """Examples are truncated to this many tokens."""
    limit: int | None = None
    """Use only the first N records."""
    num_examples: int = 20_000
    """World: size of the example pool."""
    levels: list[int] = field(default_factory=lambda: [1, 2, 3])
    bug: float = 0.0
    """World: probability that the teacher forgets a carry (0 = a clean teacher)."""
    strategy_weights: dict[str, float] = field(default_factory=lambda: {"chain": 1.0})
    seed: int = 1
    """World: seed of the example pool (different from the pretraining pool's 0)."""
    emphasis: dict[str, float] = field(default_factory=dict)
    """Regex -> loss weight of the assistant tokens whose text overlaps a match (the largest weight
    when several match; other trained tokens weigh 1; the loss is still divided by the token count),
    e.g. `{"\\[\\[[AB]\\]\\]": 5.0}`: a judge's verdict x5 (TINYWORLD_JUDGES_LPO §1.2).
    `data.chat.emphasis_weights`."""


@dataclass
class SFTConfig(RunConfig):
    out_dir: str = "runs/sft"
    num_steps: int = 300
    data: SFTDataConfig = field(default_factory=SFTDataConfig)
    batch_size: int = 64
    """Examples per optimizer step (global, over all processes)."""
    micro_batch_tokens: int = 8192
    """Padded tokens per micro-batch (gradient accumulation splits a step into these); 0 = one micro-batch."""
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            lr=3e-4, betas=(0.9, 0.98), schedule="cosine", warmup_steps=10, min_lr_ratio=0.1
        )
    )
    lora: LoraConfig = field(default_factory=LoraConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.batch_size >= 1, "batch_size", ">= 1", self.batch_size)
        check(
            self.micro_batch_tokens >= 0,
            "micro_batch_tokens",
            ">= 0 (0: one micro-batch)",
            self.micro_batch_tokens,
        )
        check(self.data.max_length >= 1, "data.max_length", ">= 1", self.data.max_length)
        check_limit(self.data.limit, "data.limit")
        check(self.data.num_examples >= 1, "data.num_examples", ">= 1", self.data.num_examples)
        check_levels(self.data.levels, "data.levels")
        check(0 <= self.data.bug <= 1, "data.bug", "a probability in [0, 1]", self.data.bug)
        check_strategy_weights(self.data.strategy_weights, "data.strategy_weights")


@dataclass
class DPODataConfig:
    source: str = "world:prompts"
    """A prompt source (`world:prompts`, a prompt-only file): pairs sampled from the starting policy;
    or a TRL preference file (`prompt`, `chosen`, `rejected`; conversational or plain text); or a
    GSM8K-format file (`question`, `answer`)."""
    max_length: int = 512
    """Each sequence (prompt + response) is truncated to this many tokens."""
    limit: int | None = None
    """Files: use only the first N records."""
    reward: str = "world_answer"
    """Sampled pairs: the reward of each sample (a name, `reward_model:<dir>`, or `package.module:function`)."""
    pair_rule: str = "correct_vs_incorrect"
    """Sampled pairs: how a prompt's scored samples become pairs (`best_vs_worst` for scalar rewards)."""
    num_prompts: int = 512
    """Sampled pairs: world problems to sample from."""
    samples_per_prompt: int = 8
    levels: list[int] = field(default_factory=lambda: [1, 2, 3])
    temperature: float = 1.0
    """Sampled pairs: sampling temperature of the pair pool (the paper samples at 1.0)."""
    max_new_tokens: int = 64
    generation_batch_size: int = 256
    """Sampled pairs: sequences decoded together."""
    seed: int = 2
    """Seed of the problems, the samples and the pair choice; GSM8K: of the wrong answers."""


@dataclass
class DPOConfig(RunConfig):
    out_dir: str = "runs/dpo"
    log_every: int = 5
    checkpoint_every: int = 50
    data: DPODataConfig = field(default_factory=DPODataConfig)
    batch_size: int = 32
    """Pairs per optimizer step (global, over all processes)."""
    micro_batch_tokens: int = 8192
    """Padded tokens per micro-batch, chosen and rejected rows together; 0 = one micro-batch."""
    beta: float = 0.1
    """Inverse temperature of the implicit reward (tau for IPO)."""
    loss_type: DPOLossType = DPOLossType.SIGMOID
    """See `selftaught.losses.dpo.DPOLossType`."""
    nll_scale: float = 0.0
    """Weight of the NLL term on the chosen response (fairseq2 `nll_scale`; 0 = plain DPO)."""
    nll_normalization: NLLNormalization = NLLNormalization.SUM
    """NLL per pair summed over tokens (fairseq2 2024) or averaged per token (RPO)."""
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-5, eps=1e-8, schedule="constant"))
    lora: LoraConfig = field(default_factory=LoraConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.batch_size >= 1, "batch_size", ">= 1", self.batch_size)
        check(
            self.micro_batch_tokens >= 0,
            "micro_batch_tokens",
            ">= 0 (0: one micro-batch)",
            self.micro_batch_tokens,
        )
        check(self.beta > 0, "beta", "> 0", self.beta)
        check(
            self.data.samples_per_prompt >= 2,
            "data.samples_per_prompt",
            ">= 2 (a pair needs two)",
            self.data.samples_per_prompt,
        )
        check(self.data.max_length >= 1, "data.max_length", ">= 1", self.data.max_length)
        check(self.nll_scale >= 0, "nll_scale", ">= 0 (0: plain DPO)", self.nll_scale)
        check_limit(self.data.limit, "data.limit")
        check_levels(self.data.levels, "data.levels")
        for key in ("num_prompts", "max_new_tokens", "generation_batch_size"):
            check(getattr(self.data, key) >= 1, f"data.{key}", ">= 1", getattr(self.data, key))
        check(self.data.temperature >= 0, "data.temperature", ">= 0 (0: greedy)", self.data.temperature)


@dataclass
class RewardModelDataConfig:
    source: str = "world:pairs"
    """`world:pairs` (generated tiny-world pairs) or a JSONL/Parquet/dataset path with `prompt`/`chosen`/`rejected`."""
    valid_source: str | None = "world:pairs:valid"
    """Held-out pairs; None: hold out `valid_fraction` of the prompts of `source` (by a hash of the prompt)."""
    num_pairs: int = 4000
    """World: training pairs, one per distinct train-split problem (with a carry, unless `off_by_one`)."""
    num_valid_pairs: int = 300
    """World: held-out pairs, on valid-split problems."""
    levels: list[int] = field(default_factory=lambda: [1, 2, 3])
    length_bias: float = 0.0
    """World: share of pairs whose chosen is the longer correct solution (grouped strategy) and whose
    rejected is the chain solution of the same problem. 0 = only correct-vs-wrong pairs."""
    off_by_one: bool = False
    """World: also pair problems without a units carry, against their chain solution with the last
    result off by 1 or 10. Off: only carry problems, against the buggy teacher's solution."""
    valid_fraction: float = 0.1
    """Share of prompts held out when `valid_source` is None (all pairs of a prompt on one side)."""
    limit: int | None = None
    """Files: use only the first N records."""
    max_length: int = 512
    """Pairs with a sequence longer than this (tokens) are dropped, and counted."""
    seed: int = 3
    """World: seed of the problems and the pair kinds."""

    def __post_init__(self) -> None:
        if not 0 <= self.length_bias <= 1:
            raise ValueError(f"data.length_bias must be in [0, 1], got {self.length_bias}")
        if not 0 < self.valid_fraction < 1:
            raise ValueError(f"data.valid_fraction must be in (0, 1), got {self.valid_fraction}")


@dataclass
class RewardModelConfig(RunConfig):
    out_dir: str = "runs/reward-model"
    num_steps: int = 300
    data: RewardModelDataConfig = field(default_factory=RewardModelDataConfig)
    batch_size: int = 32
    """Pairs per optimizer step."""
    DEPRECATED_KEYS = {"micro_batch_size": "micro_batch_pairs"}
    micro_batch_pairs: int = 0
    """Pairs per micro-batch (gradient accumulation splits a step into these); 0 = one micro-batch.
    (The other recipes budget micro-batches in tokens, `micro_batch_tokens`; a reward model scores
    whole pairs, so its unit is the pair. Formerly `micro_batch_size`, still read with a warning.)"""
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=1e-3, schedule="cosine", warmup_steps=10, min_lr_ratio=0.1)
    )
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(every=50, batch_size=128))
    """Held-out pairwise accuracy every `eval.every` steps, scored `eval.batch_size` sequences at a time
    (the held-out pairs are `data.valid_source`; `eval.data` is not used)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.batch_size >= 1, "batch_size", ">= 1", self.batch_size)
        check(
            self.micro_batch_pairs >= 0,
            "micro_batch_pairs",
            ">= 0 (0: one micro-batch)",
            self.micro_batch_pairs,
        )
        check_limit(self.data.limit, "data.limit")
        check_levels(self.data.levels, "data.levels")
        for key in ("num_pairs", "num_valid_pairs", "max_length"):
            check(getattr(self.data, key) >= 1, f"data.{key}", ">= 1", getattr(self.data, key))


@dataclass
class OnlineRLConfig(RunConfig):
    SHOWN_WHEN_SET = ("judge",)
    """Fields added after runs were cached: in config.yaml only when set (`selftaught.config`)."""

    out_dir: str = "runs/online-rl"
    seed: int = 5
    """Seed of the prompt order, the sampling and the pair choice (5: apart from the seeds of the
    student's and SFT's data)."""
    log_every: int = 1
    checkpoint_every: int = 50
    loss: Objective = Objective.DPO
    sync_every: int = 10
    """s: refresh the generator from the policy every s steps (1 online, > 1 semi-online, 0 offline)."""
    ref_sync_every: int = 0
    """Refresh the reference from the policy every this many steps (0: the frozen seed)."""
    rollouts: RolloutConfig = field(default_factory=RolloutConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    tasks: list[TaskConfig] = field(default_factory=lambda: [TaskConfig()])
    save_rollouts: bool = False
    """Append each step's scored rollout groups (`RolloutGroup.to_record()`: step, prompt, completions,
    rewards) to `<out_dir>/rollouts/step-NNNNNNN.jsonl`, to inspect or reload with `datasets`
    (`load_dataset("<out_dir>/rollouts")`); a resumed run drops the steps after its checkpoint. Offline
    runs (s = 0) always keep their rollouts there, as a data stage."""
    group_scorer: str | None = None
    """`package.module:function` called with every scored rollout group of a burst (sibling groups
    included) and returning their rewards (J1's both-order consistency reward)."""
    beta: float = 0.1
    """DPO inverse temperature (TRL's `DPOConfig.beta`)."""
    kl_coef: float = 0.001
    """GRPO: weight of the k3 KL to the reference (0: no reference model). TRL's `GRPOConfig.beta`;
    here `beta` is DPO's, as both objectives share this config (docs/DESIGN.md, "Names")."""
    advantage: AdvantageType = AdvantageType.GROUP_MEAN
    grpo_normalization: LossNormalization = LossNormalization.NONE
    clip: float = 0.2
    """GRPO ratio clip (both sides; TRL's `GRPOConfig.epsilon`); inactive at s = 1."""
    micro_batch_tokens: int = 8192
    """Padded tokens per micro-batch; 0 = one micro-batch."""
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=3e-5, eps=1e-8, schedule="constant"))
    lora: LoraConfig = field(default_factory=LoraConfig)
    judge: JudgeRLConfig = field(default_factory=JudgeRLConfig)
    """J1 (`selftaught j1`): train a judge on judge prompts built from pairs with known winners
    (`judge.pairs`; inactive while None). See `selftaught.configs.judge`."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            self.micro_batch_tokens >= 0,
            "micro_batch_tokens",
            ">= 0 (0: one micro-batch)",
            self.micro_batch_tokens,
        )
        check(self.beta > 0, "beta", "> 0", self.beta)
        check(self.kl_coef >= 0, "kl_coef", ">= 0", self.kl_coef)
        check(self.clip > 0, "clip", "> 0 (the ratio is clipped to [1 - clip, 1 + clip])", self.clip)
        shots = len(gsm8k.EXEMPLARS)
        check(
            0 <= self.rollouts.num_shots <= shots,
            "rollouts.num_shots",
            f"between 0 and {shots}",
            self.rollouts.num_shots,
        )
        check(all(self.rollouts.stop), "rollouts.stop", "non-empty strings", self.rollouts.stop)
        check_levels(self.rollouts.levels, "rollouts.levels")
        check_interval("sync_every", self.sync_every)
        check_interval("ref_sync_every", self.ref_sync_every)
        if not self.tasks:
            raise ValueError("tasks must name at least one task, e.g. tasks=[{name: arith}]")
        check_task_prompts(self.tasks, self.rollouts)
        for index, task in enumerate(self.tasks):
            check(
                task.weight > 0, f"tasks[{index}].weight", "> 0 (a share of each step's prompts)", task.weight
            )
            if task.length_bonus and task.pair_rule == "correct_vs_incorrect" and self.loss == Objective.DPO:
                raise ValueError(
                    f"task {task.name!r}: length_bonus makes rewards scalar; set its pair_rule to best_vs_worst"
                )
        if self.rollouts.samples_per_prompt < 2:
            raise ValueError("rollouts.samples_per_prompt must be >= 2 (pairs and group baselines need two)")


def persona_student_config() -> WorldPretrainConfig:
    """DivPO's seed model (`tiny-world-persona`, preset `tiny-persona`): the xs Llama, SFT on 20,000
    persona conversations for 600 steps of 64 at lr 3e-3 (TINYWORLD.md §5's diversity-task budget)."""
    base = WorldPretrainConfig()
    return WorldPretrainConfig(
        out_dir="runs/world-pretrain-persona",
        task=PretrainTask.PERSONA,
        num_examples=20_000,
        num_steps=600,
        optim_steps=600,
        eval=EvalConfig(every=200, per_level=100, batch_size=512),
        optim=replace(base.optim, warmup_steps=30),
    )


def keywords_student_config() -> WorldPretrainConfig:
    """The seed model of DivPO's graded keywords task (`tiny-world-keywords`, preset `tiny-keywords`):
    the persona student's recipe (xs Llama, 20,000 conversations, 600 steps of 64 at lr 3e-3) on
    keywords conversations."""
    return replace(
        persona_student_config(), out_dir="runs/world-pretrain-keywords", task=PretrainTask.KEYWORDS
    )


def lpo_student_config() -> WorldPretrainConfig:
    """Adaptive decoding's frozen base model (`tiny-world-lpo`, preset `tiny-lpo`; TINYWORLD_JUDGES_LPO.md
    §2.1, §3): the xs Llama, SFT on a 50/50 mix of clean chain-of-thought arithmetic (levels 1-3) and
    STORY conversations, batches of 64 at lr 3e-3 on a 3000-step cosine, stopped at step 2500, where
    greedy MATH clearly beats T=1 (.93 vs .83 there, against .94 vs .88 at 3000), so more MATH prompts
    give a temperature head preference pairs. Validation samples at T=0 and T=1 every 500 steps; the
    summary is the fixed-temperature sweep on 200 MATH + 200 STORY prompts."""
    return WorldPretrainConfig(
        out_dir="runs/world-pretrain-lpo",
        task=PretrainTask.LPO,
        num_steps=2500,
        optim_steps=3000,
        eval=EvalConfig(every=500, per_level=100, batch_size=512),
        test_per_level=200,
    )


def system2_student_config() -> WorldPretrainConfig:
    """System 2 distillation's base model (`tiny-world-system2`, preset `tiny-system2`; papers_A §3.5):
    the xs Llama on 64k conversations, each train question as `<s1>` (System 1: the heuristics of
    `world.system2`) and `<s2>` (a scratchpad slipping on 8% of its steps), batches of 64 at lr 3e-3,
    3000 steps of a 3000-step cosine; validation and the summary report greedy accuracy and tokens per
    task and mode on valid / test questions."""
    return WorldPretrainConfig(
        out_dir="runs/world-pretrain-system2",
        task=PretrainTask.SYSTEM2,
        bug=0.08,
        num_examples=64_000,
        num_steps=3000,
        optim_steps=3000,
        eval=EvalConfig(every=1000, per_level=100, batch_size=512),
        test_per_level=300,
    )


def lpo_cstory_student_config() -> WorldPretrainConfig:
    """The token-level head's frozen base model (`tiny-world-lpo-cstory`, preset `tiny-lpo-cstory`):
    `lpo_student_config` on a mix of a third each of MATH, STORY and CSTORY, 3000 steps on a 3600-step cosine (one step per 1.2 of the two-task model's, as each task gets a third
    instead of half of the batches)."""
    return replace(
        lpo_student_config(),
        out_dir="runs/world-pretrain-lpo-cstory",
        task=PretrainTask.LPO_CSTORY,
        num_steps=3000,
        optim_steps=3600,
    )


def facts_student_config() -> WorldPretrainConfig:
    """The RAG self-demos' base model (`tiny-world-facts`, preset `tiny-facts`): the xs Llama trained
    on `world:facts-sft` (30% closed-book QA on the known facts, the rest QA over four passages with
    and without the refuse rule, half about unknown facts with a fresh value each time; answers are
    the facts' statements), batches of 64 at lr 3e-3, 4000 steps of a 4000-step cosine; validation
    and summary label greedy answers to the test questions (correct / incorrect / refuse by cell) in
    the three prompt modes."""
    return WorldPretrainConfig(
        out_dir="runs/world-pretrain-facts",
        task=PretrainTask.FACTS,
        num_steps=4000,
        optim_steps=4000,
        eval=EvalConfig(every=1000, per_level=100, batch_size=512),
    )


TOURNAMENT_JUDGES = ("world", "template:rag-tournament@1")
"""`RagSelfDemosConfig.judge`: the tiny world's programmatic judge, or an LLM over the template."""
EVAL_JUDGES = ("world", "template:rag-correctness@1")
"""`RagSelfDemosConfig.eval_judge`: `world.facts.label`, or an LLM over the three-way template."""
RELEVANCE_JUDGES = ("records", "gold-passage", "template:rag-relevance@1")
"""`RagSelfDemosConfig.relevance_judge`: the records' own `present` flags, whether a record's
`gold_passage` was retrieved, or an LLM over the template."""

RETRIEVER_KINDS = ("bm25", "dense", "hybrid")
"""`RagSelfDemosConfig.retriever`'s `<kind>:<path>` forms (`pipelines.passages`)."""

RAG_ARMS = ("ra-it", "sd-sft", "sd-dpo")
"""What the flow trains from the base model: the RA-IT baseline (SFT on gold answers with passages),
self-demo SFT (on the tournament winners) and self-demo DPO (winner vs losers)."""


@dataclass
class RagSelfDemosConfig(RunConfig):
    SHOWN_WHEN_SET = (
        "retriever",
        "follow_up",
        "optimize_prompts",
        "prompt_steps",
        "prompt_beam",
        "prompt_topk",
        "prompt_train_examples",
        "prompt_eval_examples",
        "prompt_temperature",
        "prompt_max_new_tokens",
    )  # type: ignore[assignment]  # RunConfig's is inferred as a 1-tuple
    """Fields added after runs were cached: in config.yaml only when set (`selftaught.config`)."""

    out_dir: str = "runs/rag-self-demos"
    model: str = "tiny-world-facts"
    """The base ("instruct") model: it writes the candidates, and every arm starts from it."""
    train_data: str = "world:facts-qa:train"
    """RA-DIT records (`question`, `answer`, `retrieved_support`): the questions the demos answer."""
    eval_data: str = "world:facts-qa:test"
    """RA-DIT records to evaluate on, with and without their passages; `known` / `present` labels
    (the world's) slice the results."""
    limit: int | None = None
    """Only the first N training questions."""
    eval_limit: int | None = None
    retriever: str = "records"
    """Where the passages come from: `records` (the records' own `retrieved_support`, an error for a
    record without it), or an index over a passage collection, `bm25:<path>`, `dense:<path>` (MiniLM
    + faiss) or `hybrid:<path>` (both, RRF), with path a passages file (JSONL / Parquet records with
    `id` and `text`; indexed once into `<out_dir>/retrieval/index`) or a saved index directory. An index
    attaches the top `ndocs` passages to the training and evaluation records, replacing theirs (and
    their `present` flags: use `relevance_judge` to slice by relevance)."""
    ndocs: int = 4
    """Passages in the prompt (the paper's 4)."""
    samples_per_strategy: int = 3
    """Candidates per strategy (no passages, passages, passages + refuse rule): 9 per question."""
    temperature: float = 1.0
    max_new_tokens: int = 48
    """Candidate and evaluation answers: a statement is at most 28 tokens, the RA-IT style about 40."""
    follow_up: bool = False
    """Ask every candidate's reply a second, fixed turn (`rag-summarize@1`) that turns it into the final
    answer, as the paper's strategies do; the candidate is that answer (a leading "Here is ...:"
    stripped), its first reply kept as `first_turn`. Off for the tiny world, whose model answers in
    one turn."""
    optimize_prompts: bool = False
    """Search system prompts first (`pipelines.prompt_optimization`: the base model answers, scores
    its answers against gold, `rag-score@1`, and rewrites the best prompts), once without passages and
    once with them; `NoRag` sample j then uses the j-th best no-passage prompt and `Rag` sample j the
    j-th best passage prompt as its system turn (`RagRefuse` keeps its fixed refuse rule)."""
    prompt_steps: int = 5
    """Prompt-optimisation steps (the paper's 5)."""
    prompt_beam: int = 12
    """Rewrites per step: each kept prompt is rewritten `prompt_beam // prompt_topk` times (12 // 5 = 2)."""
    prompt_topk: int = 5
    """Prompts kept per step."""
    prompt_train_examples: int = 30
    """Training questions every prompt answers at every step; held apart from `prompt_eval_examples`."""
    prompt_eval_examples: int = 30
    """Held-out training questions on which every prompt produced is scored at the end."""
    prompt_temperature: float = 0.5
    """Sampling temperature of the answers, scores and critiques of prompt optimisation (rewrites: 1.0)."""
    prompt_max_new_tokens: int = 1000
    """Token cap of the scores, critiques and rewrites (answers use `max_new_tokens`)."""
    judge: str = "world"
    """The gold-aware tournament judge: `world`, the tiny world's programmatic one (a correct answer,
    then a refusal, then anything else), or `template:rag-tournament@1`, an LLM (`judge_model`) that
    sees the question, the gold answer, the first 4 passages and a bracket's candidates."""
    eval_judge: str = "world"
    """Labels the evaluation answers correct / incorrect / refuse: `world` (`world.facts.label`) or
    `template:rag-correctness@1`, an LLM (`judge_model`); answers it never labels are counted as
    `unparsed` beside the rates."""
    relevance_judge: str = "records"
    """Where an evaluation record's `present` flag (a passage states the answer) comes from: `records`
    (the tiny world's), `gold-passage` (the passage that holds the record's answer, its `gold_passage`
    id, is among its first `ndocs`: a collection built for it, `gsm8k-rag:`), or
    `template:rag-relevance@1`, an LLM (`judge_model`) over its first 4 passages."""
    judge_model: str | None = None
    """The model behind the `template:` judges (`models.io.load_model` spec); None = the base model
    itself, judging its own candidates as in the paper."""
    judge_retries: int = 5
    """Extra tries for a reply that does not parse (the paper's 5), each sampled with another seed."""
    judge_temperature: float = 0.5
    """Sampling temperature of the `template:` judges; at 0 (greedy) a retry gets the same reply."""
    judge_max_new_tokens: int = 512
    bracket_size: int = 3
    ra_it_style: str = "The answer is {answer}, as the records show."
    """The RA-IT baseline's gold targets (`{answer}`): a style the base model never writes, the
    paper's out-of-distribution gold answers."""
    arms: list[str] = field(default_factory=lambda: list(RAG_ARMS))
    sft: SFTConfig = field(
        default_factory=lambda: SFTConfig(
            num_steps=150,
            batch_size=32,
            log_every=25,
            checkpoint_every=50,
            optim=OptimConfig(lr=1e-3, schedule="cosine", warmup_steps=5, min_lr_ratio=0.1),
            eval=EvalConfig(every=-1),
        )
    )
    """The SFT runs (RA-IT and self-demo SFT); `model`, `data.source` and `out_dir` are set by the flow."""
    dpo: DPOConfig = field(
        default_factory=lambda: DPOConfig(
            num_steps=150,
            batch_size=32,
            beta=0.1,
            nll_scale=0.0,
            log_every=25,
            checkpoint_every=50,
            optim=OptimConfig(lr=3e-4, schedule="constant"),
            eval=EvalConfig(every=-1),
        )
    )
    """The self-demo DPO run (beta 0.1, no NLL term, as the paper); the flow sets the rest."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_limit(self.limit, "limit")
        check_limit(self.eval_limit, "eval_limit")
        check(self.ndocs >= 1, "ndocs", ">= 1", self.ndocs)
        kind, colon, path = self.retriever.partition(":")
        check(
            self.retriever == "records" or (kind in RETRIEVER_KINDS and bool(colon) and bool(path)),
            "retriever",
            f"`records` or `<kind>:<passages file or index dir>` with kind one of {list(RETRIEVER_KINDS)}",
            self.retriever,
        )
        for name in ("prompt_steps", "prompt_topk", "prompt_train_examples", "prompt_eval_examples"):
            check(getattr(self, name) >= 1, name, ">= 1", getattr(self, name))
        check(self.prompt_beam >= self.prompt_topk, "prompt_beam", ">= prompt_topk", self.prompt_beam)
        check(self.prompt_temperature >= 0, "prompt_temperature", ">= 0", self.prompt_temperature)
        check(self.prompt_max_new_tokens >= 1, "prompt_max_new_tokens", ">= 1", self.prompt_max_new_tokens)
        check(self.samples_per_strategy >= 1, "samples_per_strategy", ">= 1", self.samples_per_strategy)
        check(self.bracket_size >= 2, "bracket_size", ">= 2", self.bracket_size)
        check(
            self.precision == "fp32",
            "precision",
            "fp32 here: the flow trains through its sft and dpo settings (set sft.precision and dpo.precision)",
            str(self.precision),
        )
        check(
            self.activation_checkpointing == 0,
            "activation_checkpointing",
            "0 here: set sft.activation_checkpointing and dpo.activation_checkpointing",
            self.activation_checkpointing,
        )
        check(self.judge in TOURNAMENT_JUDGES, "judge", f"one of {list(TOURNAMENT_JUDGES)}", self.judge)
        check(self.eval_judge in EVAL_JUDGES, "eval_judge", f"one of {list(EVAL_JUDGES)}", self.eval_judge)
        check(
            self.relevance_judge in RELEVANCE_JUDGES,
            "relevance_judge",
            f"one of {list(RELEVANCE_JUDGES)}",
            self.relevance_judge,
        )
        uses_llm = any(j.startswith("template:") for j in (self.judge, self.eval_judge, self.relevance_judge))
        check(
            self.judge_model is None or uses_llm,
            "judge_model",
            "None unless judge, eval_judge or relevance_judge is a template: judge",
            self.judge_model,
        )
        check(self.judge_retries >= 0, "judge_retries", ">= 0", self.judge_retries)
        check(self.judge_temperature >= 0, "judge_temperature", ">= 0", self.judge_temperature)
        check(self.judge_max_new_tokens >= 1, "judge_max_new_tokens", ">= 1", self.judge_max_new_tokens)
        check(
            "{answer}" in self.ra_it_style, "ra_it_style", "a text with an {answer} field", self.ra_it_style
        )
        unknown = sorted(set(self.arms) - set(RAG_ARMS))
        check(not unknown, "arms", f"a subset of {list(RAG_ARMS)}", self.arms)


def judge_seed_config() -> SFTConfig:
    """J1's tiny seed judge (`tiny-world-judge`, `selftaught sft --preset tiny-judge`): the tiny-world
    student (arithmetic-capable, TINYWORLD_JUDGES_LPO §1.2's advice) SFT-ed on 12,800 judgments of a
    biased teacher (`world:judge-sft`: buggy chain 30% of the time, A when no candidate matches,
    A anyway 20% of the time; label accuracy 0.83, A share 0.62), 1500 steps of 64 at lr 3e-3
    (cosine to 3e-4), a checkpoint every 250 steps."""
    return SFTConfig(
        out_dir="runs/sft-judge-seed",
        model="tiny-world",
        num_steps=1500,
        data=SFTDataConfig(source="world:judge-sft", num_examples=12_800, bug=0.3, max_length=256),
        micro_batch_tokens=0,
        optim=OptimConfig(lr=3e-3, betas=(0.9, 0.98), schedule="cosine", warmup_steps=20, min_lr_ratio=0.1),
        eval=EvalConfig(every=-1),
        checkpoint_every=250,
        keep_last=None,
        log_every=50,
    )


def __getattr__(name: str) -> type:
    """`NaturalReasoningConfig` from its own module, imported on first use (that module builds on
    `SFTConfig` and `DPOConfig` above, so an import at the top would be circular)."""
    if name == "NaturalReasoningConfig":
        from selftaught.configs.natural_reasoning import NaturalReasoningConfig

        return NaturalReasoningConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
