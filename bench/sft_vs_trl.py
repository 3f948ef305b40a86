"""SFT throughput: the `sft` recipe (`selftaught.recipes.sft.run`) against TRL's `SFTTrainer`, in one
process.

Ours is what `selftaught sft` executes: `sft.run(cfg)` on a JSONL file of tiny-world
chain-of-thought conversations (L1-L3), from a model directory holding the initial weights, with
eval, checkpoints and per-step logging off. Its steps are `train_supervised`'s: the step's
examples of the recipe's seeded order (`sft.step_micro_batches`), `train_step` with
`sft_loss_fn`. TRL gets the same records in that order, in the conversational prompt-completion
format (its token ids and loss mask are checked equal to ours), the same initial weights, batch
size, max length, AdamW settings (constant lr, clipping at 1.0) and steps; fp32, `--threads` torch
threads, no packing. Runs alternate (ours, TRL, ours, TRL, ...). The table shows median tokens/s,
achieved FLOP/s against a measured fp32 matmul peak, and both losses (training mean; held-out NLL
of the trained model).

    python bench/sft_vs_trl.py --shape xs --steps 50 --batch-size 64 --repeats 3
    python bench/sft_vs_trl.py --shape 20m --steps 8 --batch-size 16 --repeats 2
    python bench/sft_vs_trl.py --shape xs --steps 20 --profile
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import harness
import peers
import torch
from timing import StepClock, label_forward, recipe_clock
from workloads import (
    MAX_LENGTH,
    InitialWeights,
    gsm8k_records,
    release_tokenizer,
    step_order,
    world_records,
    write_records,
)

from selftaught.data.formats import sft_examples
from selftaught.data.gsm8k import conversation
from selftaught.models.policy import LoraConfig
from selftaught.recipes import sft
from selftaught.train.batching import collate
from selftaught.train.loop import EvalConfig
from selftaught.train.optim import OptimConfig
from selftaught.train.precision import Precision
from selftaught.train.supervised import sft_loss_fn

NUM_HELD_OUT = 256


class SFTBench:
    """What both contenders share: the initial weights, our config and its data file, the records
    in our training order, the held-out examples, and the tokens of each step."""

    def __init__(self, args: Any) -> None:
        self.args = args
        num_train = args.steps * args.batch_size
        if args.model:  # GSM8K train (question -> worked answer); no held-out set (too slow there)
            self.weights = InitialWeights.named(args.model)
            records = gsm8k_records(num_train)
        else:
            self.weights = InitialWeights.random(args.shape, args.seed)
            records = world_records("world:sft", num_train + NUM_HELD_OUT, args.seed)
        self.tokenizer = self.weights.tokenizer
        self._data_dir = tempfile.TemporaryDirectory(prefix="sft-bench-")
        self.cfg = build_config(args, self.weights.path, Path(self._data_dir.name), records[:num_train])
        order = step_order(args.steps, args.batch_size, num_train, self.cfg.seed)
        self.train = [
            records[i] if "messages" in records[i] else {"messages": conversation(records[i])} for i in order
        ]
        examples = sft.build_examples(self.cfg.data, self.tokenizer)
        self.tokens_per_step = [
            sum(len(examples[i][0]) for i in order[s * args.batch_size : (s + 1) * args.batch_size])
            for s in range(args.steps)
        ]
        held_out = records[num_train:]
        self.held_out = sft_examples(held_out, self.tokenizer, "held-out", MAX_LENGTH) if held_out else []

    def held_out_nll(self, model: torch.nn.Module) -> float:
        """Mean NLL per trained token of the held-out conversations (our function, for every contender);
        NaN without a held-out set."""
        if not self.held_out:
            return float("nan")
        batch = collate(self.held_out, self.tokenizer.pad_token_id)
        with torch.no_grad():
            loss, _ = sft_loss_fn(model, batch, batch.num_tokens)
        return float(loss)


def build_config(args: Any, model_dir: str, data_dir: Path, records: list[dict[str, Any]]) -> sft.SFTConfig:
    """The `sft` recipe's config for the command line: constant lr, no eval, checkpoints or per-step
    logging; the data is `records`, written to `data_dir`."""
    return sft.SFTConfig(
        model=model_dir,
        num_steps=args.steps,
        seed=args.seed,
        log_every=args.steps,
        checkpoint_every=0,
        eval=EvalConfig(every=-1),
        data=sft.SFTDataConfig(
            source=write_records(records, data_dir / "train.jsonl"), max_length=args.max_length
        ),
        batch_size=args.batch_size,
        lora=LoraConfig(r=args.lora, alpha=2 * args.lora) if args.lora else LoraConfig(),
        precision=Precision(args.precision),
        activation_checkpointing=args.activation_checkpointing,
        micro_batch_tokens=args.max_tokens or 0,
        optim=OptimConfig(
            lr=args.lr,
            betas=(0.9, 0.98),
            max_grad_norm=1.0,
            schedule="constant",
            fused=False if args.foreach_adamw else None,
        ),
    )


def run_ours(bench: SFTBench) -> harness.RunResult:
    """`sft.run` in a fresh run directory, clocked at its steps."""
    release_tokenizer(bench)
    profile = bench.args.profile
    clock = StepClock(bench.tokens_per_step, "ours" if profile else None)
    with tempfile.TemporaryDirectory() as out_dir:
        with recipe_clock(clock, "forward: policy" if profile else None) as recipe:
            start = time.perf_counter()
            sft.run(replace(bench.cfg, out_dir=out_dir))
    return harness.RunResult(
        "ours",
        clock,
        recipe.started - start,
        0.0,
        statistics.mean(recipe.losses),
        bench.held_out_nll(recipe.model),
        harness.load_average(),
        first_loss=recipe.losses[0],
    )


def run_trl(bench: SFTBench, gradient_checkpointing: bool = False) -> harness.RunResult:
    """TRL's `SFTTrainer` on the same records, in our order (`trl-gc`: with its gradient checkpointing)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args, name = bench.args, "trl-gc" if gradient_checkpointing else "trl"
    model = bench.weights.load()
    dataset = Dataset.from_list(
        [{"prompt": r["messages"][:1], "completion": r["messages"][1:]} for r in bench.train]
    )
    clock = StepClock(bench.tokens_per_step, name if args.profile else None)
    training_args = peers.trl_training_args(
        args.steps, args.batch_size, bench.cfg.optim, args.precision != "fp32", gradient_checkpointing
    )
    with tempfile.TemporaryDirectory() as out_dir, peers.StepLosses(SFTTrainer) as losses:
        start = time.perf_counter()
        trainer = SFTTrainer(
            model=model,
            args=SFTConfig(output_dir=out_dir, packing=False, max_length=args.max_length, **training_args),
            train_dataset=dataset,
            processing_class=bench.tokenizer,
            callbacks=peers.trl_callbacks(clock),
            peft_config=peers.trl_lora(bench.cfg.lora),
        )
        setup_seconds = time.perf_counter() - start
        check_same_tokens(peers.quiet(trainer).train_dataset, bench)
        if args.profile:
            label_forward(model.model, "forward: policy")
        output = trainer.train()
    return harness.RunResult(
        name,
        clock,
        setup_seconds,
        0.0,
        output.training_loss,
        bench.held_out_nll(trainer.model),
        harness.load_average(),
        first_loss=losses.losses[0],
    )


def check_same_tokens(dataset: Any, bench: SFTBench) -> None:
    """TRL must train on exactly our token ids and loss mask, or the comparison means nothing."""
    ours = sft_examples(bench.train, bench.tokenizer, "train", bench.args.max_length)
    for row, (ids, mask) in zip(dataset, ours, strict=True):
        if row["input_ids"] != ids or [label != -100 for label in row["labels"]] != mask:
            raise AssertionError(f"TRL tokenised a conversation differently: {row} != {ids}, {mask}")


def main() -> None:
    parser = harness.arg_parser(
        __doc__, "sequences per step", batch_size=64, lr=1e-3, contenders="ours, trl, trl-gc"
    )
    args = parser.parse_args()
    harness.setup_torch(args.threads)
    peak = 0.0 if args.child else harness.print_machine(args.threads, args.precision)
    bench = SFTBench(args)
    runners = {
        "ours": lambda: run_ours(bench),
        "trl": lambda: run_trl(bench),
        "trl-gc": lambda: run_trl(bench, gradient_checkpointing=True),
    }
    if not args.child:
        print(
            f"SFT {bench.weights.name}: {bench.weights.num_params:,} params, {harness.tuning(args)}, "
            f"{args.steps} steps x {args.batch_size} sequences, "
            f"{sum(bench.tokens_per_step) / len(bench.train):.1f} tokens/sequence (prompt tokens count)"
        )
    results = harness.run_contenders(args, runners)
    if results:
        harness.print_table(results, bench.weights.num_params, peak, baseline="trl")


if __name__ == "__main__":
    main()
