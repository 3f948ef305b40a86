"""SFT throughput: our loop (`common.train_sft`) against TRL's `SFTTrainer`, in one process.

Same model init, data (tiny-world chain-of-thought conversations, L1-L3; TRL gets them in the
conversational prompt-completion format, and its token ids and loss mask are checked equal to
ours), batch size, max length, AdamW settings (constant lr, clipping at 1.0), number of steps; fp32,
`--threads` torch threads, no packing. Runs alternate (ours, TRL, ours, TRL, ...). The table shows
median tokens/s, achieved FLOP/s against a measured fp32 matmul peak, and both losses (training
mean; held-out NLL of the trained model).

    python bench/sft_vs_trl.py --shape xs --steps 50 --batch-size 64 --repeats 3
    python bench/sft_vs_trl.py --shape 20m --steps 8 --batch-size 16 --repeats 2
    python bench/sft_vs_trl.py --shape xs --steps 20 --profile
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from selftaught.world.tokenizer import build_tokenizer  # noqa: E402

NUM_HELD_OUT = 256


class SFTBench:
    """What both contenders share: settings, tokenizer, training and held-out data, token counts."""

    def __init__(self, args: Any) -> None:
        self.args = args
        self.tokenizer = build_tokenizer()
        self.pad_id = self.tokenizer.pad_token_id
        self.cfg = common.LoopConfig(
            steps=args.steps,
            batch_size=args.batch_size,
            optim=common.OptimConfig(
                lr=args.lr, betas=(0.9, 0.98), max_grad_norm=1.0, fused=False if args.foreach_adamw else None
            ),
            max_tokens=args.max_tokens,
        )
        num_train = args.steps * args.batch_size
        records = common.sft_records(num_train + NUM_HELD_OUT, args.seed)
        self.train = records[:num_train]
        self.held_out = common.tokenize_sft(self.tokenizer, records[num_train:])
        examples = common.tokenize_sft(self.tokenizer, self.train)
        self.tokens_per_step = [
            sum(len(ids) for ids, _ in examples[s * args.batch_size : (s + 1) * args.batch_size])
            for s in range(args.steps)
        ]

    def build_model(self) -> torch.nn.Module:
        return common.build_model(self.args.shape, self.tokenizer, self.args.seed)

    def held_out_nll(self, model: torch.nn.Module) -> float:
        """Mean NLL per trained token of the held-out conversations (our function, for every contender)."""
        batch = common.collate(self.held_out, self.pad_id)
        with torch.no_grad():
            loss, _ = common.sft_micro_loss(model, batch, batch.num_tokens)
        return float(loss)


def run_ours(bench: SFTBench) -> common.RunResult:
    start = time.perf_counter()
    examples = common.tokenize_sft(bench.tokenizer, bench.train)
    setup_seconds = time.perf_counter() - start
    model = bench.build_model()
    if bench.args.profile:
        common.label_forward(model.model, "forward: policy")
    clock = common.StepClock(bench.tokens_per_step, "ours" if bench.args.profile else None)
    clock.start()
    losses = common.train_sft(model, examples, bench.pad_id, bench.cfg, clock.tick)
    mean_loss = sum(losses) / len(losses)
    return common.RunResult(
        "ours", clock, setup_seconds, 0.0, mean_loss, bench.held_out_nll(model), common.load_average()
    )


def run_trl(bench: SFTBench) -> common.RunResult:
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    model = bench.build_model()
    dataset = Dataset.from_list(
        [{"prompt": r["messages"][:1], "completion": r["messages"][1:]} for r in bench.train]
    )
    clock = common.StepClock(bench.tokens_per_step, "trl" if bench.args.profile else None)
    with tempfile.TemporaryDirectory() as out_dir:
        start = time.perf_counter()
        trainer = SFTTrainer(
            model=model,
            args=SFTConfig(output_dir=out_dir, packing=False, **common.trl_training_args(bench.cfg)),
            train_dataset=dataset,
            processing_class=bench.tokenizer,
            callbacks=common.trl_callbacks(clock),
        )
        setup_seconds = time.perf_counter() - start
        trainer.remove_callback(PrinterCallback)
        check_same_tokens(trainer.train_dataset, bench)
        if bench.args.profile:
            common.label_forward(model.model, "forward: policy")
        output = trainer.train()
    return common.RunResult(
        "trl",
        clock,
        setup_seconds,
        0.0,
        output.training_loss,
        bench.held_out_nll(model),
        common.load_average(),
    )


def check_same_tokens(dataset: Any, bench: SFTBench) -> None:
    """TRL must train on exactly our token ids and loss mask, or the comparison means nothing."""
    for row, (ids, mask) in zip(dataset, common.tokenize_sft(bench.tokenizer, bench.train), strict=True):
        if row["input_ids"] != ids or [label != -100 for label in row["labels"]] != mask:
            raise AssertionError(f"TRL tokenised a conversation differently: {row} != {ids}, {mask}")


def main() -> None:
    parser = common.arg_parser(__doc__, "sequences per step", batch_size=64, lr=1e-3, contenders="ours, trl")
    args = parser.parse_args()
    common.setup_torch(args.threads)
    bench = SFTBench(args)
    params = common.num_params(bench.build_model())
    peak = common.matmul_peak_gflops()
    print(
        f"SFT {args.shape}: {params:,} params, {args.steps} steps x {args.batch_size} sequences, "
        f"{sum(bench.tokens_per_step) / len(bench.train):.1f} tokens/sequence, {args.threads} threads, "
        f"fp32 matmul peak {peak:.1f} GFLOP/s, load {common.load_average():.1f}"
    )
    runners = {"ours": lambda: run_ours(bench), "trl": lambda: run_trl(bench)}
    repeats = 1 if args.profile else args.repeats
    results = common.run_alternating(runners, args.contenders.split(","), repeats)
    common.print_table(results, params, peak, baseline="trl")


if __name__ == "__main__":
    main()
