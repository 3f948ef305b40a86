"""Shared pieces of the SFT and DPO benchmarks against TRL: models, data, our loops, timing, profiling.

The loop functions (`sft_micro_batches`, `sft_micro_loss`, `train_sft`, `compute_ref_logps`,
`dpo_micro_batches`, `dpo_micro_loss`, `train_dpo`) are what the `sft` and offline `dpo` recipes
are meant to run, so a recipe can adopt them unchanged: tokenise once with `render_conversation`,
cut each step's examples into length-sorted micro-batches under a token budget, and call
`train_step` with a pure loss. DPO scores the frozen reference (the initial model) once, up front,
and caches its sequence log-probs; each step then runs one policy forward over the chosen and
rejected rows of its pairs.

Throughput is counted the same way for every contender: real (non-pad) tokens of the sequences a
step trains on, over the wall time of steps 2..N (step 1 pays one-off allocations and is excluded).
Achieved FLOP/s is `6 * params * tokens / s`: no attention-score term, no reference forward.

The online RL benchmarks (`grpo_vs_trl.py`, `online_dpo_vs_trl.py`) time whole steps instead:
sampling + scoring + one update, ours through `selftaught.recipes.online_rl` at s = 1
(`train_online`), TRL through its trainer, with each side's sampling call wrapped in a timer
(`timed_calls`) for the split between generation and the rest.
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from selftaught.data.chat import render_conversation, render_prompt
from selftaught.engines.hf import HFEngine
from selftaught.losses import dpo_loss, sft_loss, token_logps
from selftaught.models.io import load_model, save_model
from selftaught.models.tiny import TINY_SIZES, TinySize, build_tiny_llama
from selftaught.recipes.online_rl import (
    OnlineRLConfig,
    build_loss_fn,
    build_micro_batches,
    generate_rollouts,
    step_prompts,
    update_policy,
)
from selftaught.rewards import Rubric, world_answer_reward
from selftaught.train import (
    Batch,
    Example,
    OptimConfig,
    build_optimizer,
    build_scheduler,
    collate,
    token_budget_batches,
    train_step,
)
from selftaught.train.online import frozen_copy
from selftaught.world import sample_problems, sample_sft_examples, solve, to_sft_example
from selftaught.world.tokenizer import build_tokenizer

LEVELS = (1, 2, 3)
MAX_LENGTH = 128
"""Longest sequence either side keeps; L1-L3 world sequences have 15-50 tokens, so nothing is cut."""
LARGE_SHAPES = {"20m": TinySize(hidden_size=512, num_layers=6, num_heads=8, num_kv_heads=4, ffn_size=1536)}
"""Beyond the tiny presets: a 19M-parameter Llama with the 320-token world vocabulary."""
SHAPES = (*TINY_SIZES, *LARGE_SHAPES)

PairExample = tuple[Example, Example]
"""`(chosen, rejected)`: both whole conversations (prompt + response) as `(input_ids, loss_mask)`."""


# ----------------------------------------------------------------------------------------------
# Machine and command line


def setup_torch(num_threads: int) -> None:
    """Thread count for the process; silence the progress bars and warnings of datasets / TRL."""
    import datasets
    import transformers

    torch.set_num_threads(num_threads)
    os.environ["TQDM_DISABLE"] = "1"  # TRL's reference precompute uses tqdm directly
    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)


def load_average() -> float:
    """One-minute load average; above the thread count, other processes share the cores."""
    return os.getloadavg()[0]


def matmul_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Best fp32 GFLOP/s of a `size x size @ size x size` matmul (2 size^3 FLOPs) over `repeats` runs."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm up the BLAS thread pool
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= `minimum`."""

    def parse(text: str) -> int:
        if int(text) < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
        return int(text)

    return parse


def arg_parser(
    doc: str, batch_help: str, batch_size: int, lr: float, contenders: str
) -> argparse.ArgumentParser:
    """The options both benchmarks share."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="xs", choices=SHAPES)
    parser.add_argument("--steps", type=at_least(3), default=50, help="the first step is not timed")
    parser.add_argument("--batch-size", type=at_least(1), default=batch_size, help=batch_help)
    parser.add_argument("--repeats", type=at_least(1), default=3)
    parser.add_argument("--lr", type=float, default=lr, help="constant learning rate (both sides)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="model init and data")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="ours: padded-token budget of a micro-batch (default: one)",
    )
    parser.add_argument(
        "--foreach-adamw",
        action="store_true",
        help="ours: the for-each AdamW instead of build_optimizer's fused default (TRL: fused)",
    )
    parser.add_argument(
        "--contenders", default="ours,trl", help=f"comma-separated, in run order: {contenders}"
    )
    parser.add_argument("--profile", action="store_true", help="profile one run of each contender instead")
    return parser


# ----------------------------------------------------------------------------------------------
# Models and data


def build_model(shape: str, tokenizer: PreTrainedTokenizerBase, seed: int) -> LlamaForCausalLM:
    """A randomly initialised fp32 Llama of `shape` (`SHAPES`), tied embeddings; weights depend on `seed` only."""
    token_ids = dict(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    if shape in TINY_SIZES:
        return build_tiny_llama(shape, len(tokenizer), seed=seed, **token_ids)
    if shape not in LARGE_SHAPES:
        raise ValueError(f"--shape must be one of {list(SHAPES)}, got {shape!r}")
    size = LARGE_SHAPES[shape]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden_size,
        intermediate_size=size.ffn_size,
        num_hidden_layers=size.num_layers,
        num_attention_heads=size.num_heads,
        num_key_value_heads=size.num_kv_heads,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        **token_ids,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config).to(torch.float32)


def num_params(model: torch.nn.Module) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())


def sft_records(num: int, seed: int) -> list[dict[str, Any]]:
    """`num` world SFT conversations (chain strategy, levels 1-3, clean teacher) in TRL `messages` format."""
    return sample_sft_examples(num, LEVELS, seed)


def dpo_records(num: int, seed: int) -> list[dict[str, Any]]:
    """`num` pairs in TRL's conversational `prompt` / `chosen` / `rejected` format: chosen is the correct
    chain solution, rejected the buggy teacher's (bug=1.0: every units carry forgotten), on train
    problems with a carry, so the rejected answer is wrong. No sampling needed."""
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    for problem in sample_problems("train", 3 * num, LEVELS, seed):
        prompt, chosen = to_sft_example(problem)["messages"]
        rejected = {"role": "assistant", "content": solve(problem, "chain", bug=1.0, rng=rng)}
        if rejected["content"] != chosen["content"]:
            records.append({"prompt": [prompt], "chosen": [chosen], "rejected": [rejected]})
        if len(records) == num:
            return records
    raise ValueError(f"only {len(records)} of {3 * num} problems have a carry; ask for fewer pairs")


def tokenize_sft(tokenizer: PreTrainedTokenizerBase, records: Sequence[dict[str, Any]]) -> list[Example]:
    """Every conversation as `(input_ids, loss_mask)`, the assistant tokens trained."""
    return [render_conversation(tokenizer, record["messages"]) for record in records]


def tokenize_pairs(
    tokenizer: PreTrainedTokenizerBase, records: Sequence[dict[str, Any]]
) -> list[PairExample]:
    """Every pair as `(chosen, rejected)` whole conversations, the responses trained."""
    return [
        (
            render_conversation(tokenizer, record["prompt"] + record["chosen"]),
            render_conversation(tokenizer, record["prompt"] + record["rejected"]),
        )
        for record in records
    ]


# ----------------------------------------------------------------------------------------------
# Our loops


@dataclass
class LoopConfig:
    """What both contenders share (steps, batch, optimizer), and our own batching options."""

    steps: int
    batch_size: int
    """Sequences per SFT step; pairs per DPO step (twice as many sequences)."""
    optim: OptimConfig
    """AdamW, clipping and schedule; the benchmarks use a constant lr (TRL's `constant`)."""
    max_tokens: int | None = None
    """Padded-token budget of one of our micro-batches; None = the whole step in one batch."""
    beta: float = 0.1
    """DPO inverse temperature."""


def sft_micro_batches(examples: Sequence[Example], pad_id: int, max_tokens: int | None) -> list[Batch]:
    """One step's examples as padded micro-batches, sorted by length and cut under `max_tokens` padded
    tokens, which cuts padding (None: one batch). The grouping does not change the step's gradient."""
    if max_tokens is None:
        return [collate(examples, pad_id)]
    groups = token_budget_batches([len(ids) for ids, _ in examples], max_tokens)
    return [collate([examples[i] for i in group], pad_id) for group in groups]


def sft_micro_loss(model: torch.nn.Module, batch: Batch, num_tokens: float) -> tuple[torch.Tensor, dict]:
    """`train_step` loss: summed NLL of the batch's trained tokens divided by the step's `num_tokens`."""
    logps = token_logps(model, batch.input_ids, batch.attention_mask, position_ids=batch.position_ids)
    return sft_loss(logps, batch.loss_mask, num_tokens)


def train_sft(
    model: torch.nn.Module,
    examples: Sequence[Example],
    pad_id: int,
    cfg: LoopConfig,
    on_step: Callable[[], None],
) -> list[float]:
    """`cfg.steps` SFT steps, step i on the i-th block of `cfg.batch_size` examples; `on_step()` after
    each. Returns the per-step losses."""
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.steps)
    losses = []
    for step in range(cfg.steps):
        step_examples = examples[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        micro_batches = sft_micro_batches(step_examples, pad_id, cfg.max_tokens)
        metrics = train_step(
            model, micro_batches, sft_micro_loss, optimizer, scheduler, max_grad_norm=cfg.optim.max_grad_norm
        )
        losses.append(metrics["loss"])
        on_step()
    return losses


@dataclass
class PairBatch:
    """P preference pairs as one padded batch of 2P rows, with their cached reference log-probs."""

    batch: Batch
    """[2P, T]: rows 0..P-1 the chosen conversations, rows P..2P-1 the rejected ones, same pair order."""
    ref_chosen_logps: torch.Tensor
    """[P] summed reference log-probs of the chosen responses."""
    ref_rejected_logps: torch.Tensor
    """[P] the same for the rejected responses."""

    @property
    def loss_mask(self) -> torch.Tensor:
        """[2P, T] the response tokens (what `train_step` counts)."""
        return self.batch.loss_mask


def sequence_logps(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """[B] log-probability of each row's trained tokens (its response), summed."""
    logps = token_logps(model, batch.input_ids, batch.attention_mask, position_ids=batch.position_ids)
    return (logps * batch.loss_mask).sum(dim=1)  # [B]


@torch.no_grad()
def compute_ref_logps(
    model: torch.nn.Module, pairs: Sequence[PairExample], pad_id: int, max_tokens: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed response log-probs `([N] chosen, [N] rejected)` of every pair under `model`, the frozen
    reference, in length-sorted batches of at most `max_tokens` padded tokens. Called once before
    training (the reference never changes): the loop then holds no second model, and a pair seen in
    several epochs is scored once. In a single epoch it is the same forward work as scoring the
    reference at every step."""
    sequences = [chosen for chosen, _ in pairs] + [rejected for _, rejected in pairs]
    logps = torch.empty(len(sequences))
    for group in token_budget_batches([len(ids) for ids, _ in sequences], max_tokens):
        logps[group] = sequence_logps(model, collate([sequences[i] for i in group], pad_id))
    return logps[: len(pairs)], logps[len(pairs) :]


def dpo_micro_batches(
    pairs: Sequence[PairExample],
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    pad_id: int,
    max_tokens: int | None,
) -> list[PairBatch]:
    """One step's pairs as `PairBatch`es. Both rows of a pair stay in one micro-batch (its loss needs
    both); pairs are sorted by their longer row and cut under `max_tokens` padded tokens (None: one)."""
    if max_tokens is None:
        groups = [list(range(len(pairs)))]
    else:  # a pair costs two rows of its longer sequence's length
        groups = token_budget_batches([2 * max(len(c[0]), len(r[0])) for c, r in pairs], max_tokens)
    return [
        PairBatch(
            collate([pairs[i][0] for i in group] + [pairs[i][1] for i in group], pad_id),
            ref_chosen_logps[group],
            ref_rejected_logps[group],
        )
        for group in groups
    ]


def dpo_micro_loss(
    model: torch.nn.Module, pair_batch: PairBatch, num_pairs: float, *, beta: float
) -> tuple[torch.Tensor, dict]:
    """`train_step` loss: sigmoid DPO of the batch's pairs, summed and divided by the step's `num_pairs`
    (passed as `train_step(num_tokens=num_pairs)`). One policy forward scores both sides."""
    policy_logps = sequence_logps(model, pair_batch.batch)  # [2P]
    policy_chosen_logps, policy_rejected_logps = policy_logps.chunk(2)  # [P], [P]
    return dpo_loss(
        policy_chosen_logps,
        policy_rejected_logps,
        pair_batch.ref_chosen_logps,
        pair_batch.ref_rejected_logps,
        beta=beta,
        num_pairs=int(num_pairs),
    )


def train_dpo(
    model: torch.nn.Module,
    pairs: Sequence[PairExample],
    ref_logps: tuple[torch.Tensor, torch.Tensor],
    pad_id: int,
    cfg: LoopConfig,
    on_step: Callable[[], None],
) -> list[float]:
    """`cfg.steps` DPO steps over `pairs` in order against cached reference log-probs `([N], [N])`
    (`compute_ref_logps`); `on_step()` after each. Returns the per-step losses."""
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.steps)
    loss_fn = partial(dpo_micro_loss, beta=cfg.beta)
    losses = []
    for step in range(cfg.steps):
        span = slice(step * cfg.batch_size, (step + 1) * cfg.batch_size)
        micro_batches = dpo_micro_batches(
            pairs[span], ref_logps[0][span], ref_logps[1][span], pad_id, cfg.max_tokens
        )
        num_pairs = float(len(pairs[span]))
        metrics = train_step(
            model,
            micro_batches,
            loss_fn,
            optimizer,
            scheduler,
            max_grad_norm=cfg.optim.max_grad_norm,
            num_tokens=num_pairs,
        )
        losses.append(metrics["loss"])
        on_step()
    return losses


# ----------------------------------------------------------------------------------------------
# TRL with the same settings


def trl_training_args(cfg: LoopConfig) -> dict[str, Any]:
    """`SFTConfig` / `DPOConfig` fields equal to our settings (AdamW, clipping, constant lr, batch,
    steps, max length) with TRL's default AdamW implementation (fused). TRL defaults that differ from
    ours are turned off: bf16 autocast (fp32 here) and gradient checkpointing (ours keeps
    activations). No logging, saving, eval or shuffling: both sides see the same batches in order."""
    return dict(
        bf16=False,
        gradient_checkpointing=False,
        max_steps=cfg.steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.optim.lr,
        adam_beta1=cfg.optim.betas[0],
        adam_beta2=cfg.optim.betas[1],
        adam_epsilon=cfg.optim.eps,
        weight_decay=cfg.optim.weight_decay,
        max_grad_norm=cfg.optim.max_grad_norm,
        lr_scheduler_type="constant",
        max_length=MAX_LENGTH,
        train_sampling_strategy="sequential",
        logging_strategy="no",
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        dataloader_pin_memory=False,
    )


def trl_callbacks(clock: StepClock) -> list[Any]:
    """A `TrainerCallback` that drives `clock`: start at `on_train_begin`, tick at every `on_step_end`."""
    from transformers import TrainerCallback

    class ClockCallback(TrainerCallback):
        def on_train_begin(self, *_: Any, **__: Any) -> None:
            clock.start()

        def on_step_end(self, *_: Any, **__: Any) -> None:
            clock.tick()

    return [ClockCallback()]


# ----------------------------------------------------------------------------------------------
# Timing and the report


class StepClock:
    """Wall time and real tokens of steps 2..N: `start()` before the first step, `tick()` after each.

    With a `profile_title`, steps 2..N (the timed ones) also run under the torch profiler, and its
    `profile_breakdown` is printed after the last step.
    """

    def __init__(self, tokens_per_step: Sequence[int], profile_title: str | None = None) -> None:
        self.tokens_per_step = list(tokens_per_step)
        self.profile_title = profile_title
        self.profiler: torch.profiler.profile | None = None
        self.ends: list[float] = []

    def start(self) -> None:
        self.ends = [time.perf_counter()]

    def tick(self) -> None:
        if self.profiler is not None and self.num_steps + 1 == len(self.tokens_per_step):
            self.profiler.__exit__(None, None, None)
        self.ends.append(time.perf_counter())
        if self.profile_title is not None and self.num_steps == 1:
            self.profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self.profiler.__enter__()
            self.ends[-1] = time.perf_counter()  # the profiler's start-up is not part of step 2
        if self.profiler is not None and self.num_steps == len(self.tokens_per_step):
            print(f"  profile of {self.profile_title}, steps 2-{self.num_steps}: {self.seconds:.2f} s wall")
            profile_breakdown(self.profiler, self.seconds)

    @property
    def num_steps(self) -> int:
        return len(self.ends) - 1

    @property
    def seconds(self) -> float:
        return self.ends[-1] - self.ends[1]

    @property
    def tokens(self) -> int:
        return sum(self.tokens_per_step[1 : self.num_steps])

    @property
    def step_tokens_per_s(self) -> list[float]:
        """Throughput of each timed step alone."""
        return [self.tokens_per_step[i] / (self.ends[i + 1] - self.ends[i]) for i in range(1, self.num_steps)]


@dataclass
class RunResult:
    """One timed training run of one contender."""

    name: str
    clock: StepClock
    setup_seconds: float
    """Untimed preparation: our tokenisation, or TRL's trainer construction (its dataset preprocessing)."""
    extra_seconds: float
    """Training work outside the step loop (a reference pass before training); a pro-rata share of it
    (timed steps / all steps) counts in `tokens_per_s`."""
    mean_loss: float
    """Training loss averaged over all steps."""
    final_loss: float
    """Loss of the trained model on held-out data, computed by the same function for every contender."""
    load: float
    """One-minute load average, the larger of before and after the run."""

    @property
    def loop_tokens_per_s(self) -> float:
        return self.clock.tokens / self.clock.seconds

    @property
    def tokens_per_s(self) -> float:
        share = self.extra_seconds * (self.clock.num_steps - 1) / self.clock.num_steps
        return self.clock.tokens / (self.clock.seconds + share)


R = TypeVar("R")


def run_alternating(
    runners: dict[str, Callable[[], R]],
    order: list[str],
    repeats: int,
    describe: Callable[[Any], str] = lambda r: f"{r.tokens_per_s:,.0f} tok/s",
) -> list[R]:
    """Run the contenders in `order`, `repeats` times over (ours, TRL, ours, TRL, ...); print each
    run's `describe(result)` and the load average."""
    unknown = [name for name in order if name not in runners]
    if unknown:
        raise ValueError(f"--contenders: unknown {unknown}; choose from {list(runners)}")
    results = []
    for repeat in range(repeats):
        for name in order:
            load_before = load_average()
            result = runners[name]()
            result.load = max(result.load, load_before)
            results.append(result)
            print(f"  repeat {repeat} {name}: {describe(result)} (load {result.load:.1f})", flush=True)
    return results


def print_table(results: Sequence[RunResult], params: int, peak_gflops: float, baseline: str) -> None:
    """Per contender: the median over repeats of tokens/s (and of the loop alone), the upper quartile
    of single-step tokens/s over all repeats (robust to other processes' bursts on a shared machine),
    achieved FLOP/s, losses; then every contender's ratios to `baseline`."""
    names = list(dict.fromkeys(r.name for r in results))
    runs = {n: [r for r in results if r.name == n] for n in names}
    median = {n: statistics.median(r.tokens_per_s for r in runs[n]) for n in names}
    fast = {
        n: statistics.quantiles([x for r in runs[n] for x in r.clock.step_tokens_per_s], n=4)[2]
        for n in names
    }
    print(
        f"{'contender':<16}{'tok/s':>9}{'loop':>9}{'q3 step':>9}{'GFLOP/s':>8}{'of peak':>8}{'setup s':>8}"
        f"{'extra s':>8}{'mean loss':>10}{'held-out':>9}{'load':>6}   tok/s of each run"
    )
    for name in names:
        loop = statistics.median(r.loop_tokens_per_s for r in runs[name])
        gflops = 6 * params * median[name] / 1e9
        last = runs[name][-1]
        print(
            f"{name:<16}{median[name]:>9,.0f}{loop:>9,.0f}{fast[name]:>9,.0f}{gflops:>8.2f}{gflops / peak_gflops:>8.1%}"
            f"{last.setup_seconds:>8.2f}{last.extra_seconds:>8.2f}{last.mean_loss:>10.4f}{last.final_loss:>9.4f}"
            f"{max(r.load for r in runs[name]):>6.1f}   "
            + " ".join(f"{r.tokens_per_s:,.0f}" for r in runs[name])
        )
    for name in names:
        if baseline in names and name != baseline:
            print(
                f"ratio {name} / {baseline}: {median[name] / median[baseline]:.2f}x tok/s, "
                f"{fast[name] / fast[baseline]:.2f}x q3 step tok/s"
            )


# ----------------------------------------------------------------------------------------------
# Profiling


def label_forward(module: torch.nn.Module, label: str) -> None:
    """Record every call of `module` as a profiler region `label` (via hooks, so TRL's patched
    forward is covered too)."""
    regions: list[Any] = []

    def enter(*_: Any) -> None:
        regions.append(torch.profiler.record_function(label))
        regions[-1].__enter__()

    def leave(*_: Any) -> None:
        regions.pop().__exit__(None, None, None)

    module.register_forward_pre_hook(enter)
    module.register_forward_hook(leave)


def profile_breakdown(prof: torch.profiler.profile, wall_seconds: float, top: int = 12) -> None:
    """Where the wall time went, from the top-level profiler events: labelled forwards (`label_forward`),
    backward, optimizer, other ops (LM head and loss, collation, clipping, ...), and time inside no op
    (Python, trainer bookkeeping, and the profiler's own per-op cost, which slows a tiny-model step by
    up to 1.6x); then the `top` ops by self CPU time."""
    totals: dict[str, float] = {}
    for event in prof.events():
        if event.cpu_parent is not None:
            continue
        name = event.name
        if name.startswith("autograd::engine"):
            name = "backward"
        elif name.startswith("Optimizer."):
            name = "optimizer " + name.split("#")[-1]
        elif not name.startswith("forward:"):
            name = "other ops"
        totals[name] = totals.get(name, 0.0) + event.cpu_time_total / 1e6
    totals["no op (python, bookkeeping)"] = wall_seconds - sum(totals.values())
    for name, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"    {name:<34}{seconds:>8.3f} s {seconds / wall_seconds:>7.1%}")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top, max_name_column_width=44))


# ----------------------------------------------------------------------------------------------
# Online RL: a step is sampling + scoring + one update (grpo_vs_trl.py, online_dpo_vs_trl.py)

BuildBatches = Callable[[OnlineRLConfig, list[Any], Any, Any], tuple[list[Any], dict[str, float]]]
"""`(cfg, groups, reference, tokenizer) -> (micro_batches, metrics)`, as `online_rl.build_micro_batches`."""


def online_arg_parser(doc: str, batch_size: int, lr: float, contenders: list[str]) -> argparse.ArgumentParser:
    """The options both online RL benchmarks share; all `contenders` run by default."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--init",
        default="student",
        choices=("student", "random"),
        help="initial weights: the cached tiny-world student (xs, trained on first use), or --shape at random",
    )
    parser.add_argument("--shape", default="xs", choices=SHAPES, help="with --init random")
    parser.add_argument("--steps", type=at_least(2), default=10, help="the first step is not timed")
    parser.add_argument("--batch-size", type=at_least(1), default=batch_size, help="prompts per step")
    parser.add_argument("--max-new-tokens", type=at_least(1), default=48, help="TRL: max completion length")
    parser.add_argument("--repeats", type=at_least(1), default=3)
    parser.add_argument("--lr", type=float, default=lr, help="constant learning rate (both sides)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="model init (--init random), prompts, sampling")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="ours: padded-token budget of a micro-batch (default: one)",
    )
    parser.add_argument(
        "--contenders", default=",".join(contenders), help="comma-separated, in run order (default: all)"
    )
    return parser


class OnlineBench:
    """What the contenders of an online RL benchmark share: our config, the initial weights, the
    tokenizer, and each step's prompts (`online_rl.step_prompts`) with their token ids.

    The initial weights live in a temporary model directory that every run loads afresh: TRL's
    `GRPOTrainer` builds its reference model from the policy's `config._name_or_path`.
    """

    def __init__(self, args: argparse.Namespace, cfg: OnlineRLConfig) -> None:
        import transformers

        transformers.utils.logging.disable_progress_bar()  # every run loads the model
        self.cfg = cfg
        if args.init == "student":
            from selftaught.recipes.world_pretrain import pretrained_student

            model, tokenizer = load_model(str(pretrained_student()))
            self.model_name = "tiny-world student (xs)"
        else:
            tokenizer = build_tokenizer()
            model = build_model(args.shape, tokenizer, args.seed)
            self.model_name = f"random {args.shape}"
        self.num_params = num_params(model)
        self._init_dir = tempfile.TemporaryDirectory(prefix="online-bench-")
        save_model(model, tokenizer, self._init_dir.name)
        _, self.tokenizer = load_model(self._init_dir.name)
        self.prompts = [step_prompts(cfg, step) for step in range(1, cfg.num_steps + 1)]
        self.prompt_ids = [[render_prompt(self.tokenizer, p.messages) for p in step] for step in self.prompts]

    def load_model(self) -> torch.nn.Module:
        """A fresh copy of the initial weights, in train mode."""
        return load_model(self._init_dir.name)[0].train()

    def run_ours(
        self, name: str = "ours", build_batches: BuildBatches = build_micro_batches
    ) -> OnlineRunResult:
        """`train_online` from a fresh copy of the initial weights (its loading is `setup_seconds`)."""
        start = time.perf_counter()
        model = self.load_model()
        setup_seconds = time.perf_counter() - start
        result = train_online(name, self.cfg, model, self.tokenizer, build_batches)
        result.setup_seconds = setup_seconds
        return result

    def trl_dataset(self) -> Any:
        """Every step's prompts in order, as TRL's conversational `prompt` + the `answer` column."""
        from datasets import Dataset

        return Dataset.from_list(
            [{"prompt": p.messages, "answer": p.answer} for step in self.prompts for p in step]
        )


class RewardLog:
    """`world_answer_reward` (TRL's reward-function signature) that keeps the mean reward of each
    call. Every contender scores a step's samples in one call, so `means[k]` belongs to step k + 1."""

    def __init__(self) -> None:
        self.__name__ = "world_answer_reward"  # the name TRL and `Rubric` report it under
        self.means: list[float] = []

    def __call__(self, prompts: list[Any], completions: list[Any], answer: list[Any], **_: Any) -> list[Any]:
        rewards = world_answer_reward(prompts, completions, answer)
        scored = [r for r in rewards if r is not None]
        self.means.append(sum(scored) / len(scored) if scored else float("nan"))
        return rewards


class timed_calls:
    """Context manager: while open, each call of `owner.<name>` (a method of a class, or of one
    object) appends its wall time to the yielded list, then passes `(args, kwargs, result)` to
    `check` (untimed) when one is given."""

    def __init__(
        self, owner: Any, name: str, check: Callable[[tuple, dict, Any], None] | None = None
    ) -> None:
        self.owner, self.name, self.check = owner, name, check
        self.own = vars(owner).get(name)  # None: inherited, or a plain method of an object
        self.seconds: list[float] = []

    def __enter__(self) -> list[float]:
        original, seconds, check = getattr(self.owner, self.name), self.seconds, self.check

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = original(*args, **kwargs)
            seconds.append(time.perf_counter() - start)
            if check is not None:
                check(args, kwargs, result)
            return result

        setattr(self.owner, self.name, timed)
        return seconds

    def __exit__(self, *_: Any) -> None:
        if self.own is None:
            delattr(self.owner, self.name)
        else:
            setattr(self.owner, self.name, self.own)


def check_prompt_ids(
    expected: Sequence[list[list[int]]], prompt_ids_of: Callable[[tuple, Any], list[list[int]]]
) -> Callable[[tuple, dict, Any], None]:
    """A `timed_calls` check: TRL's k-th generation call must sample from exactly our prompt token
    ids of step k + 1, `expected[k]`, read from its arguments and result by `prompt_ids_of`."""
    calls = iter(expected)

    def check(args: tuple, _: dict, result: Any) -> None:
        got, want = prompt_ids_of(args, result), next(calls)
        if got != want:
            raise AssertionError(f"TRL sampled from other prompt ids than ours: {got[:2]} != {want[:2]}")

    return check


@dataclass
class OnlineRunResult:
    """One timed online RL run of one contender; means are over steps 2..N (step 1 pays one-off
    allocations)."""

    name: str
    step_seconds: list[float]
    """Wall time of each step: sampling, scoring, reference and policy passes, the update."""
    generation_seconds: list[float]
    """The sampling part of each step (ours: `HFEngine.generate`; TRL: its wrapped generate call)."""
    rewards: list[float]
    """Mean reward of each step's samples."""
    num_trained: list[int]
    """Sequences (GRPO) or pairs (DPO) in each step's update."""
    setup_seconds: float
    """Untimed: model loading, TRL's trainer construction (its reference model, dataset)."""
    load: float
    """One-minute load average, the larger of before and after the run."""

    @property
    def seconds_per_step(self) -> float:
        return statistics.mean(self.step_seconds[1:])

    @property
    def generation_per_step(self) -> float:
        return statistics.mean(self.generation_seconds[1:])

    @property
    def rest_per_step(self) -> float:
        """Everything but sampling: scoring, batching, reference and policy passes, optimizer."""
        return self.seconds_per_step - self.generation_per_step


def trl_online_result(
    clock: StepClock,
    generation_seconds: list[float],
    reward_log: RewardLog,
    num_trained: int,
    setup_seconds: float,
) -> OnlineRunResult:
    """TRL's run as an `OnlineRunResult`: step times from `clock` (`trl_callbacks`), one sampling
    time and one reward call per step, `num_trained` units in every update."""
    step_seconds = [end - begin for begin, end in zip(clock.ends[:-1], clock.ends[1:], strict=True)]
    assert len(step_seconds) == len(generation_seconds) == len(reward_log.means), "one generate per step"
    num_steps = len(step_seconds)
    return OnlineRunResult(
        "trl",
        step_seconds,
        generation_seconds,
        reward_log.means,
        [num_trained] * num_steps,
        setup_seconds,
        load_average(),
    )


def train_online(
    name: str,
    cfg: OnlineRLConfig,
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    build_batches: BuildBatches = build_micro_batches,
) -> OnlineRunResult:
    """Our online RL at s = 1: `online_rl.run` without eval, logging and checkpoints. Per step: sync
    the generator copy, sample and score (`generate_rollouts`), build micro-batches (`build_batches`),
    one update (`update_policy`); a step without a pair or a scored group makes no update, as in the recipe."""
    generator = HFEngine(copy.deepcopy(model), tokenizer, batch_size=cfg.rollouts.generation_batch_size)
    reference = frozen_copy(model) if cfg.loss == "dpo" or cfg.kl_coef else None
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.num_steps)
    loss_fn = build_loss_fn(cfg, reference)
    reward_log = RewardLog()
    rubric = Rubric({"arith": [reward_log]})
    count_key = "num_pairs" if cfg.loss == "dpo" else "num_sequences"
    step_seconds, num_trained = [], []
    with timed_calls(generator, "generate") as generation_seconds:
        for step in range(1, cfg.num_steps + 1):
            start = time.perf_counter()
            generator.sync_weights(model, step - 1)
            groups = generate_rollouts(cfg, generator, rubric, [step])
            micro_batches, metrics = build_batches(cfg, groups, reference, tokenizer)
            if micro_batches:
                update_policy(model, micro_batches, loss_fn, optimizer, scheduler, cfg)
            step_seconds.append(time.perf_counter() - start)
            num_trained.append(int(metrics[count_key]))
    return OnlineRunResult(
        name, step_seconds, generation_seconds, reward_log.means, num_trained, 0.0, load_average()
    )


def describe_online(result: OnlineRunResult) -> str:
    """`run_alternating`'s line for an online RL run: time per step and its sampling part."""
    return f"{result.seconds_per_step:.3f} s/step, generation {result.generation_per_step:.3f} s"


def print_online_table(results: Sequence[OnlineRunResult], baseline: str) -> None:
    """Per contender, medians over repeats: s/step, its sampling and non-sampling parts, trained
    units per step, the reward of the last step (and of the first); then each ratio to `baseline`."""
    names = list(dict.fromkeys(r.name for r in results))
    runs = {n: [r for r in results if r.name == n] for n in names}

    def median(name: str, metric: str) -> float:
        return statistics.median(getattr(r, metric) for r in runs[name])

    print(
        f"{'contender':<16}{'s/step':>8}{'gen s':>8}{'rest s':>8}{'gen %':>7}{'trained':>9}{'setup s':>9}"
        f"{'reward 1st':>11}{'last':>6}{'load':>6}   s/step of each run"
    )
    for name in names:
        step, gen, rest = (
            median(name, m) for m in ("seconds_per_step", "generation_per_step", "rest_per_step")
        )
        last = runs[name][-1]
        print(
            f"{name:<16}{step:>8.3f}{gen:>8.3f}{rest:>8.3f}{gen / step:>7.0%}"
            f"{statistics.mean(last.num_trained):>9.1f}{last.setup_seconds:>9.2f}"
            f"{last.rewards[0]:>11.3f}{last.rewards[-1]:>6.3f}{max(r.load for r in runs[name]):>6.1f}   "
            + " ".join(f"{r.seconds_per_step:.3f}" for r in runs[name])
        )
    for name in names:
        if baseline in names and name != baseline:
            ratios = [
                median(name, m) / median(baseline, m)
                for m in ("seconds_per_step", "generation_per_step", "rest_per_step")
            ]
            print(
                f"ratio {name} / {baseline}: {ratios[0]:.2f}x time per step "
                f"(generation {ratios[1]:.2f}x, rest {ratios[2]:.2f}x)"
            )
