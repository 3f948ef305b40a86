"""DPO throughput: the offline `dpo` recipe (`selftaught.recipes.dpo.run`) against TRL's `DPOTrainer`,
in one process.

Ours is what `selftaught dpo` executes: `dpo.run(cfg)` on a JSONL file of tiny-world preference
pairs (`world:pairs`: chosen = the correct chain solution, rejected = the buggy teacher's, bug=1.0,
on problems with a carry), from a model directory holding the initial weights (the reference),
with eval, checkpoints and per-step logging off. Before its first step it tokenises the pairs and
scores the reference once (`dpo.prepare_pairs`); each step takes the next pairs of the recipe's
seeded order (`dpo.step_micro_batches`) and runs `train_step` with `pair_loss`. TRL gets the same
records in that order (its conversational prompt / chosen / rejected; its token ids are checked
equal to ours), the same initial weights, pairs per step, max length, AdamW settings, sigmoid loss
with beta 0.1, steps; fp32, `--threads` torch threads. Runs alternate (ours, TRL, ours, TRL, ...).

Our reference pass (`load_or_compute_ref_logps`, in a fresh run directory, so never a cache hit)
is `extra s` in the table, and its pro-rata share counts in our tok/s (`loop tok/s` leaves it out).
It uses the recipe's micro-batch budget, `--max-tokens`. TRL by default runs a reference forward at
every step. `--contenders ours,trl,trl-precomputed` adds TRL with `precompute_ref_log_probs=True`,
whose pass is counted the same way.

    python bench/dpo_vs_trl.py --shape xs --steps 50 --batch-size 32 --repeats 3
    python bench/dpo_vs_trl.py --shape 20m --steps 8 --batch-size 8 --repeats 2
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import harness
import peers
import torch
from timing import StepClock, label_forward, recipe_clock, timed_calls
from workloads import (
    MAX_LENGTH,
    InitialWeights,
    gsm8k_records,
    release_tokenizer,
    step_order,
    world_records,
    write_records,
)

from selftaught.data.formats import gsm8k_preference_records
from selftaught.data.preferences import build_pair_examples
from selftaught.models.policy import LoraConfig
from selftaught.recipes import dpo
from selftaught.train.loop import EvalConfig
from selftaught.train.optim import OptimConfig
from selftaught.train.precision import Precision
from selftaught.train.preference import build_pair_batches, pair_loss
from selftaught.train.reference import compute_sequence_logps

NUM_HELD_OUT = 128
TRL_COLUMNS = ("prompt", "chosen", "rejected")


class DPOBench:
    """What all contenders share: the initial weights, our config and its data file, the records in
    our training order, the held-out pairs and their reference log-probs, the tokens of each step."""

    def __init__(self, args: Any) -> None:
        self.args = args
        num_train = args.steps * args.batch_size
        if args.model:  # GSM8K train pairs (a wrong final number rejected), no held-out set
            self.weights = InitialWeights.named(args.model)
            records = gsm8k_preference_records(gsm8k_records(num_train), args.seed)
        else:
            self.weights = InitialWeights.random(args.shape, args.seed)
            records = world_records("world:pairs", num_train + NUM_HELD_OUT, args.seed)
        self.tokenizer = self.weights.tokenizer
        self._data_dir = tempfile.TemporaryDirectory(prefix="dpo-bench-")
        self.cfg = build_config(args, self.weights.path, Path(self._data_dir.name), records[:num_train])
        order = step_order(args.steps, args.batch_size, num_train, self.cfg.seed)
        self.train = [{key: records[i][key] for key in TRL_COLUMNS} for i in order]
        self.pairs, _ = build_pair_examples(self.train, self.tokenizer, args.max_length)
        self.tokens_per_step = [
            sum(len(c[0]) + len(r[0]) for c, r in self.pairs[s * args.batch_size : (s + 1) * args.batch_size])
            for s in range(args.steps)
        ]
        self.held_out: list = []
        self.held_out_ref = torch.empty(0)
        if len(records) > num_train:
            self.held_out, _ = build_pair_examples(records[num_train:], self.tokenizer, MAX_LENGTH)
            self.held_out_ref = self.reference_logps()

    def reference_logps(self) -> torch.Tensor:
        """The initial weights' log-probs of the held-out sequences (chosen, then rejected)."""
        sequences = [chosen for chosen, _ in self.held_out] + [rejected for _, rejected in self.held_out]
        pad_id = self.tokenizer.pad_token_id
        return compute_sequence_logps(self.weights.load(), sequences, pad_id=pad_id, micro_batch_tokens=0)

    def held_out_loss(self, model: torch.nn.Module) -> float:
        """Mean DPO loss of the held-out pairs (our function, for every contender); NaN without them."""
        if not self.held_out:
            return float("nan")
        (batch,) = build_pair_batches(
            self.held_out, self.held_out_ref, pad_id=self.tokenizer.pad_token_id, micro_batch_tokens=0
        )
        with torch.no_grad():
            loss, _ = pair_loss(model, batch, batch.num_pairs, beta=self.cfg.beta)
        return float(loss)


def build_config(args: Any, model_dir: str, data_dir: Path, records: list[dict[str, Any]]) -> dpo.DPOConfig:
    """The `dpo` recipe's config for the command line: sigmoid loss, beta 0.1, constant lr, no eval,
    checkpoints or per-step logging; the data is `records`, written to `data_dir`."""
    return dpo.DPOConfig(
        model=model_dir,
        num_steps=args.steps,
        seed=args.seed,
        log_every=args.steps,
        checkpoint_every=0,
        eval=EvalConfig(every=-1),
        data=dpo.DPODataConfig(
            source=write_records(records, data_dir / "train.jsonl"), max_length=args.max_length
        ),
        batch_size=args.batch_size,
        lora=LoraConfig(r=args.lora, alpha=2 * args.lora) if args.lora else LoraConfig(),
        precision=Precision(args.precision),
        activation_checkpointing=args.activation_checkpointing,
        micro_batch_tokens=args.max_tokens or 0,
        beta=0.1,
        optim=OptimConfig(
            lr=args.lr, max_grad_norm=1.0, schedule="constant", fused=False if args.foreach_adamw else None
        ),
    )


def run_ours(bench: DPOBench) -> harness.RunResult:
    """`dpo.run` in a fresh run directory, clocked at its steps; its reference pass timed apart."""
    release_tokenizer(bench)
    profile = bench.args.profile
    title = "ours (reference pass not included)" if profile else None
    clock = StepClock(bench.tokens_per_step, title)
    with tempfile.TemporaryDirectory() as out_dir:
        with (
            recipe_clock(clock, "forward: policy" if profile else None) as recipe,
            timed_calls(dpo, "load_or_compute_ref_logps") as ref_seconds,
        ):
            start = time.perf_counter()
            dpo.run(replace(bench.cfg, out_dir=out_dir))
    return harness.RunResult(
        "ours",
        clock,
        recipe.started - start - sum(ref_seconds),
        sum(ref_seconds),
        statistics.mean(recipe.losses),
        bench.held_out_loss(recipe.model),
        harness.load_average(),
        first_loss=recipe.losses[0],
    )


def run_trl(bench: DPOBench, name: str) -> harness.RunResult:
    """TRL's `DPOTrainer` on the same records, in our order; a reference model (a second copy of the
    initial weights; with LoRA, the policy with its adapters off) or, `trl-precomputed`, its
    reference log-probs computed before training; `trl-gc`: with its gradient checkpointing."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    args, precompute_ref = bench.args, name == "trl-precomputed"
    model = bench.weights.load()
    ref_model = None if precompute_ref or args.lora else bench.weights.load()
    clock = StepClock(bench.tokens_per_step, name if args.profile else None)
    training_args = peers.trl_training_args(
        args.steps, args.batch_size, bench.cfg.optim, args.precision != "fp32", name == "trl-gc"
    )
    with (
        tempfile.TemporaryDirectory() as out_dir,
        timed_calls(DPOTrainer, "_precompute_ref_logps") as ref_seconds,
        peers.StepLosses(DPOTrainer) as losses,
    ):
        start = time.perf_counter()
        trainer = DPOTrainer(
            model=model,
            ref_model=ref_model,
            args=DPOConfig(
                output_dir=out_dir,
                beta=bench.cfg.beta,
                loss_type=["sigmoid"],
                precompute_ref_log_probs=precompute_ref,
                max_length=args.max_length,
                **training_args,
            ),
            train_dataset=Dataset.from_list(bench.train),
            processing_class=bench.tokenizer,
            callbacks=peers.trl_callbacks(clock),
            peft_config=peers.trl_lora(bench.cfg.lora),
        )
        setup_seconds = time.perf_counter() - start - sum(ref_seconds)
        check_same_tokens(peers.quiet(trainer).train_dataset, bench)
        if args.profile:
            label_forward(model.model, "forward: policy")
            if ref_model is not None:
                label_forward(ref_model.model, "forward: reference")
        output = trainer.train()
    return harness.RunResult(
        name,
        clock,
        setup_seconds,
        sum(ref_seconds),
        output.training_loss,
        bench.held_out_loss(trainer.model),
        harness.load_average(),
        first_loss=losses.losses[0],
    )


def check_same_tokens(dataset: Any, bench: DPOBench) -> None:
    """TRL must train on exactly our token ids and response masks (both cut at `--max-length`, TRL's
    `truncation_mode="keep_start"`), or the comparison means nothing."""
    cut = bench.args.max_length
    for i, (row, (chosen, rejected)) in enumerate(zip(dataset, bench.pairs, strict=True)):
        prompt = row["prompt_ids"]
        for response, (ids, mask) in [(row["chosen_ids"], chosen), (row["rejected_ids"], rejected)]:
            theirs = ((prompt + response)[:cut], ([False] * len(prompt) + [True] * len(response))[:cut])
            if theirs != (ids, mask):
                raise AssertionError(f"TRL tokenised pair {i} differently: {theirs} != {(ids, mask)}")


def main() -> None:
    contenders = "ours, trl, trl-precomputed, trl-gc"
    parser = harness.arg_parser(
        __doc__, "pairs per step (2x sequences)", batch_size=32, lr=1e-4, contenders=contenders
    )
    args = parser.parse_args()
    harness.setup_torch(args.threads)
    peak = 0.0 if args.child else harness.print_machine(args.threads, args.precision)
    bench = DPOBench(args)
    if not args.child:
        print(
            f"DPO {bench.weights.name}: {bench.weights.num_params:,} params, {harness.tuning(args)}, "
            f"{args.steps} steps x {args.batch_size} pairs, "
            f"{sum(bench.tokens_per_step) / (2 * len(bench.train)):.1f} tokens/sequence (prompt tokens count)"
        )
    runners = {"ours": lambda: run_ours(bench)}
    runners |= {name: partial(run_trl, bench, name) for name in ("trl", "trl-precomputed", "trl-gc")}
    results = harness.run_contenders(args, runners)
    if results:
        harness.print_table(results, bench.weights.num_params, peak, baseline="trl")


if __name__ == "__main__":
    main()
