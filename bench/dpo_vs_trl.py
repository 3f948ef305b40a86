"""DPO throughput: our loop (`common.train_dpo`) against TRL's `DPOTrainer`, in one process.

Pairs come from the tiny world without sampling: chosen = the correct chain solution, rejected = the
buggy teacher's (bug=1.0) on problems with a carry, so it is wrong. Same model init (the reference
is the initial model), data (TRL's conversational prompt / chosen / rejected; its token ids are
checked equal to ours), pairs per step, max length, AdamW settings, sigmoid loss with beta 0.1,
number of steps; fp32, `--threads` torch threads. Runs alternate (ours, TRL, ours, TRL, ...).

Ours scores the reference once before training; that pass is `extra s` in the table and its
pro-rata share counts in our tok/s (`loop tok/s` leaves it out). TRL by default runs a reference
forward at every step. `--contenders ours,trl,trl-precomputed` adds TRL with
`precompute_ref_log_probs=True`, whose pass is counted the same way.

    python bench/dpo_vs_trl.py --shape xs --steps 50 --batch-size 32 --repeats 3
    python bench/dpo_vs_trl.py --shape 20m --steps 8 --batch-size 8 --repeats 2
"""

from __future__ import annotations

import copy
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from selftaught.world.tokenizer import build_tokenizer  # noqa: E402

NUM_HELD_OUT = 128
REF_MAX_TOKENS = 8192
"""Padded-token budget of one reference batch: no gradient, so larger than a training batch."""


class DPOBench:
    """What all contenders share: settings, tokenizer, training pairs, held-out pairs and their
    reference log-probs, token counts."""

    def __init__(self, args: Any) -> None:
        self.args = args
        self.tokenizer = build_tokenizer()
        self.pad_id = self.tokenizer.pad_token_id
        self.cfg = common.LoopConfig(
            steps=args.steps,
            batch_size=args.batch_size,
            optim=common.OptimConfig(
                lr=args.lr, max_grad_norm=1.0, fused=False if args.foreach_adamw else None
            ),
            max_tokens=args.max_tokens,
        )
        num_train = args.steps * args.batch_size
        records = common.dpo_records(num_train + NUM_HELD_OUT, args.seed)
        self.train = records[:num_train]
        self.held_out = common.tokenize_pairs(self.tokenizer, records[num_train:])
        self.held_out_ref = common.compute_ref_logps(
            self.build_model(), self.held_out, self.pad_id, REF_MAX_TOKENS
        )
        pairs = common.tokenize_pairs(self.tokenizer, self.train)
        self.tokens_per_step = [
            sum(len(c[0]) + len(r[0]) for c, r in pairs[s * args.batch_size : (s + 1) * args.batch_size])
            for s in range(args.steps)
        ]

    def build_model(self) -> torch.nn.Module:
        return common.build_model(self.args.shape, self.tokenizer, self.args.seed)

    def held_out_loss(self, model: torch.nn.Module) -> float:
        """Mean DPO loss of the held-out pairs (our function, for every contender)."""
        (pair_batch,) = common.dpo_micro_batches(
            self.held_out, *self.held_out_ref, self.pad_id, max_tokens=None
        )
        with torch.no_grad():
            loss, _ = common.dpo_micro_loss(model, pair_batch, len(self.held_out), beta=self.cfg.beta)
        return float(loss)


def run_ours(bench: DPOBench) -> common.RunResult:
    start = time.perf_counter()
    pairs = common.tokenize_pairs(bench.tokenizer, bench.train)
    setup_seconds = time.perf_counter() - start
    model = bench.build_model()
    start = time.perf_counter()
    ref_logps = common.compute_ref_logps(model, pairs, bench.pad_id, REF_MAX_TOKENS)  # the initial model
    ref_seconds = time.perf_counter() - start
    if bench.args.profile:
        common.label_forward(model.model, "forward: policy")
    clock = common.StepClock(
        bench.tokens_per_step, "ours (reference pass not included)" if bench.args.profile else None
    )
    clock.start()
    losses = common.train_dpo(model, pairs, ref_logps, bench.pad_id, bench.cfg, clock.tick)
    mean_loss = sum(losses) / len(losses)
    return common.RunResult(
        "ours",
        clock,
        setup_seconds,
        ref_seconds,
        mean_loss,
        bench.held_out_loss(model),
        common.load_average(),
    )


def run_trl(bench: DPOBench, precompute_ref: bool) -> common.RunResult:
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback
    from trl import DPOConfig, DPOTrainer

    name = "trl-precomputed" if precompute_ref else "trl"
    model = bench.build_model()
    # TRL cannot rebuild an in-memory model as its reference, so it gets a copy of the initial one
    ref_model = None if precompute_ref else copy.deepcopy(model)
    clock = common.StepClock(bench.tokens_per_step, name if bench.args.profile else None)
    with tempfile.TemporaryDirectory() as out_dir, timed_ref_precompute(DPOTrainer) as ref_seconds:
        start = time.perf_counter()
        trainer = DPOTrainer(
            model=model,
            ref_model=ref_model,
            args=DPOConfig(
                output_dir=out_dir,
                beta=bench.cfg.beta,
                loss_type=["sigmoid"],
                precompute_ref_log_probs=precompute_ref,
                **common.trl_training_args(bench.cfg),
            ),
            train_dataset=Dataset.from_list(bench.train),
            processing_class=bench.tokenizer,
            callbacks=common.trl_callbacks(clock),
        )
        setup_seconds = time.perf_counter() - start - sum(ref_seconds)
        trainer.remove_callback(PrinterCallback)
        check_same_tokens(trainer.train_dataset, bench)
        if bench.args.profile:
            common.label_forward(model.model, "forward: policy")
            if ref_model is not None:
                common.label_forward(ref_model.model, "forward: reference")
        output = trainer.train()
    return common.RunResult(
        name,
        clock,
        setup_seconds,
        sum(ref_seconds),
        output.training_loss,
        bench.held_out_loss(model),
        common.load_average(),
    )


class timed_ref_precompute:
    """Context manager: wraps `DPOTrainer._precompute_ref_logps` to append its wall time to the yielded
    list, so TRL's reference pass is counted like ours and not as dataset preprocessing."""

    def __init__(self, trainer_class: Any) -> None:
        self.trainer_class = trainer_class
        self.original = trainer_class._precompute_ref_logps
        self.seconds: list[float] = []

    def __enter__(self) -> list[float]:
        original, seconds = self.original, self.seconds

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = original(*args, **kwargs)
            seconds.append(time.perf_counter() - start)
            return result

        self.trainer_class._precompute_ref_logps = timed
        return seconds

    def __exit__(self, *_: Any) -> None:
        self.trainer_class._precompute_ref_logps = self.original


def check_same_tokens(dataset: Any, bench: DPOBench) -> None:
    """TRL must train on exactly our token ids and response masks, or the comparison means nothing."""
    for row, (chosen, rejected) in zip(
        dataset, common.tokenize_pairs(bench.tokenizer, bench.train), strict=True
    ):
        prompt = row["prompt_ids"]
        for response, (ids, mask) in [(row["chosen_ids"], chosen), (row["rejected_ids"], rejected)]:
            if prompt + response != ids or [False] * len(prompt) + [True] * len(response) != mask:
                raise AssertionError(f"TRL tokenised a pair differently: {row} != {chosen}, {rejected}")


def main() -> None:
    contenders = "ours, trl, trl-precomputed"
    parser = common.arg_parser(
        __doc__, "pairs per step (2x sequences)", batch_size=32, lr=1e-4, contenders=contenders
    )
    args = parser.parse_args()
    common.setup_torch(args.threads)
    bench = DPOBench(args)
    params = common.num_params(bench.build_model())
    peak = common.matmul_peak_gflops()
    print(
        f"DPO {args.shape}: {params:,} params, {args.steps} steps x {args.batch_size} pairs, "
        f"{sum(bench.tokens_per_step) / (2 * len(bench.train)):.1f} tokens/sequence, {args.threads} threads, "
        f"fp32 matmul peak {peak:.1f} GFLOP/s, load {common.load_average():.1f}"
    )
    runners = {
        "ours": lambda: run_ours(bench),
        "trl": lambda: run_trl(bench, precompute_ref=False),
        "trl-precomputed": lambda: run_trl(bench, precompute_ref=True),
    }
    repeats = 1 if args.profile else args.repeats
    results = common.run_alternating(runners, args.contenders.split(","), repeats)
    common.print_table(results, params, peak, baseline="trl")


if __name__ == "__main__":
    main()
