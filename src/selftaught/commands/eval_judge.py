"""`selftaught eval-judge`: a judge's accuracy and position bias on preference pairs.

Defaults finish in about a minute on a CPU with the tiny-world student or Gemma 3 270M: 10 pairs
(20 judgments), a token cap fitted to the template (`TEMPLATE_DEFAULTS`: a few tokens and a newline
stop for the few-shot verdict, more for templates that reason first), raw-text prompts for a model
without a chat template. The command prints what it will do before loading the model, and warns
when the judge is a base model (no chat template).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from selftaught.commands.common import (
    add_model_arg,
    add_sampling_args,
    check_out_file,
    hf_engine,
    require,
    sampling,
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "eval-judge",
        help="judge accuracy and position bias on preference pairs",
        description="Judge every pair in both orders (pairwise templates) or score both "
        "responses (pointwise) and report accuracy per order, position-consistent accuracy, "
        "flip, tie and unparsed rates. With --n k, verdicts are the majority of k samples.",
    )
    add_model_arg(p)
    p.add_argument(
        "--data",
        default="world:test",
        help="world:<split> (tiny-world judge pairs) or a prompt/chosen/rejected file (default: world:test)",
    )
    p.add_argument(
        "--template",
        default="j1-pairwise-verdict@1",
        help="versioned judge template, e.g. j1-pointwise@1 or world-pairwise-verdict@1; a wrong name lists "
        "them all (default: j1-pairwise-verdict@1; base models: world-pairwise-fewshot@1)",
    )
    p.add_argument(
        "--prompt-style",
        choices=["auto", "chat", "text"],
        default="auto",
        help="chat: the model's chat template; text: a raw-text prompt, for base models; auto: chat when "
        "the model has a chat template, else text (default: auto)",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"pairs: the first N of a file, N world pairs (default: {DEFAULT_LIMIT}, about a minute on a CPU)",
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        help="a training checkpoint (a run's checkpoints/step-NNNNNNN, or checkpoints/ for the latest) whose "
        "weights replace --model's, e.g. --model tiny-world-judge --checkpoint runs/j1-tiny/checkpoints",
    )
    p.add_argument("--out", default=None, help="also write the metrics and every judgment as JSON here")
    add_sampling_args(p, temperature=0.0, max_new_tokens=None)
    p.set_defaults(func=cmd_eval_judge)


DEFAULT_LIMIT = 10
"""Pairs judged by default (both orders: 20 judgments; Gemma 3 270M takes ~3 s a judgment on 2 CPU
cores with the few-shot template). Raise `--limit` for tighter numbers."""
TEMPLATE_DEFAULTS: dict[str, tuple[int, list[str]]] = {
    "world-pairwise-fewshot@1": (8, ["\n"]),  # ` [[A]]`, then the base model would write more examples
    "gsm8k-pairwise-fewshot@1": (8, ["\n"]),
    "world-pairwise-verdict@1": (112, []),  # a worked sum and `Answer: N [[A]]`, or a list check trace
}
"""`--max-new-tokens` and `--stop` defaults per template (others: `DEFAULT_MAX_NEW_TOKENS`, no stop)."""
FEWSHOT_TEMPLATES = ("world-pairwise-fewshot@1", "gsm8k-pairwise-fewshot@1")
"""Templates written for base models (solved examples, then the pair): no base-model hint for these."""
DEFAULT_MAX_NEW_TOKENS = 256
"""Templates that reason before their verdict (J1, EvalPlanner, STE): raise it for long reasoning."""
SLOW_TOKENS = 50_000
"""Above this many generated tokens at most (judgments x cap), the plan line warns about the time."""


def judge_sampling(args: argparse.Namespace) -> Any:
    """`SamplingParams` of the flags, with the template's defaults for the cap and the stop strings."""
    max_new_tokens, stop = TEMPLATE_DEFAULTS.get(args.template, (DEFAULT_MAX_NEW_TOKENS, []))
    return sampling(args, stop, max_new_tokens)


def resolve_prompt_style(args: argparse.Namespace, tokenizer: Any) -> str:
    """`--prompt-style auto`: chat when the tokenizer has a chat template, else text; a one-line
    warning when the judge has no chat template (a base model)."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    style = args.prompt_style if args.prompt_style != "auto" else ("chat" if has_template else "text")
    if not has_template:
        advice = (
            "judging with raw-text prompts"
            if style == "text"
            else "--prompt-style chat renders a generic template it never saw; use --prompt-style text"
        )
        hint = (
            ""
            if args.template in FEWSHOT_TEMPLATES
            else f"; base models follow a few-shot template ({', '.join(FEWSHOT_TEMPLATES)}), not instructions"
        )
        print(f"warning: {args.model} has no chat template (a base model): {advice}{hint}", flush=True)
    return style


def plan_line(args: argparse.Namespace, num_pairs: int, kind: str, params: Any) -> str:
    """What the command will do, printed before the model loads, and how long it may take."""
    orders = "in both orders" if kind == "pairwise" else "scoring both responses"
    judgments = 2 * num_pairs * params.n
    stop = f", stop {params.stop!r}" if params.stop else ""
    most = judgments * params.max_new_tokens
    pace = (
        f"up to {most:,} generated tokens: this can take hours on a CPU; lower --limit or --max-new-tokens"
        if most > SLOW_TOKENS
        else f"about {max(1, round(judgments * 3 / 60))} min on a CPU for Gemma 3 270M (seconds for the tiny "
        "world); the progress bar shows the time left"
    )
    return (
        f"eval-judge: {num_pairs} pairs of {args.data} (--limit {args.limit}) {orders} = {judgments} "
        f"judgments by {args.model} with {args.template}, at most {params.max_new_tokens} new tokens "
        f"each{stop}; {pace}"
    )


def load_checkpoint_weights(model: Any, checkpoint: str) -> Path:
    """Load the model weights of a training checkpoint (a step directory, or a checkpoint directory:
    its latest step) into `model`, the run's `model` as loaded; the step directory it read."""
    from safetensors.torch import load_file

    from selftaught.train.checkpoint import latest_checkpoint

    step_dir = Path(checkpoint)
    if not (step_dir / "model.safetensors").is_file():
        latest = latest_checkpoint(step_dir) if step_dir.is_dir() else None
        if latest is None:
            raise ValueError(
                f"--checkpoint {checkpoint}: no model.safetensors here nor a step-NNNNNNN directory"
            )
        step_dir = latest
    missing, unexpected = model.load_state_dict(load_file(step_dir / "model.safetensors"), strict=False)
    tied = {"lm_head.weight"} if getattr(model.config, "tie_word_embeddings", False) else set()
    if unexpected or set(missing) - tied:
        raise ValueError(
            f"--checkpoint {step_dir} does not fit --model ({len(unexpected)} unexpected weights, e.g. "
            f"{unexpected[:2]}; {len(set(missing) - tied)} missing): name the run's seed model as --model, or "
            "evaluate a LoRA run's merged <out_dir>/model"
        )
    return step_dir


def cmd_eval_judge(args: argparse.Namespace) -> int:
    """Judge the pairs with `--model` and print the metrics table (and write them with `--out`)."""
    from selftaught.judges import build_judge, evaluate_judge, get_template, load_judge_pairs

    template = get_template(args.template)  # before the slow model load: a typo fails fast
    require(args.limit >= 1, "--limit", ">= 1", args.limit)
    if args.out:
        check_out_file("--out", args.out)
    params = judge_sampling(args)
    pairs = load_judge_pairs(args.data, limit=args.limit, seed=args.seed)
    if not pairs:
        raise ValueError(f"--data {args.data} holds no pairs; nothing to judge")
    print(plan_line(args, len(pairs), str(template.kind), params), flush=True)
    engine = hf_engine(args)
    if args.checkpoint:
        print(f"eval-judge: weights of {load_checkpoint_weights(engine.model, args.checkpoint)}", flush=True)
    prompt_style = resolve_prompt_style(args, engine.tokenizer)
    judge = build_judge(engine, template, params, prompt_style)
    result = evaluate_judge(judge, pairs)
    print(
        f"judge {args.model} ({result.template}, {prompt_style}) on {args.data}: {len(pairs)} pairs, "
        f"{result.num_judgments} judgments, {result.seconds:.1f}s, mean {result.mean_tokens:.1f} tokens, "
        f"{result.truncated_rate:.0%} truncated"
    )
    print(result.metrics.table())
    for name in (
        "thinking_accuracy",
        "accuracy_when_thinking_right",
    ):  # the judge's own answer (`own_answer`)
        if (value := getattr(result, name)) is not None:
            print(f"| {name} | {value:.3f} |")
    for section, value in result.rewardbench.items():  # one shuffled order, undecided = 0.5
        print(f"| rewardbench {section} | {value:.3f} |")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        summary = {"model": args.model, "data": args.data, "prompt_style": prompt_style, **vars(result)}
        out.write_text(json.dumps(summary, indent=2, default=vars))
    return 0
