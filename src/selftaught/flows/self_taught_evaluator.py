"""self-taught-evaluator: a judge that improves on its own judgments of synthetic pairs (Wang et al.
2024, papers_A §5).

Algorithm (papers_A §5.1; every step a resumable stage under `out_dir`, a rerun reuses what is done):
  0. pairs        `num_pairs` synthetic pairs with a known winner, fixed for the whole loop (`pairs`):
                  list tasks with a *modified instruction* (`world-lists:train`, the paper's main
                  method: y_l is the right output of a near-miss instruction, `sort down` for `sort
                  up`) or a random corruption of the right output (`world-lists:train:random_corruption`);
                  the arithmetic world's answer-mismatch pairs (`world:train`: a correct chain against
                  a dropped-carry or off-by-one one); a prompt/chosen/rejected file; a GSM8K file
                  (answer mismatch: the reference solution against a wrong final number); or, with
                  `instructions`, pairs synthesised from real instructions by `pair_generator`
                  (`pipelines.ste_pairs`: classify and keep a category, answer x, then a modified
                  instruction x' and its answer, or a direct bad answer). Each pair is
                  shown in one random order (seeded by the run seed and the pair): the winner is A
                  with probability `chosen_first_share` (0.5 in the paper)
  for iteration i = 1 .. `iterations`:
  1. judgments    the current judge (i = 1: `annotator`, default the seed; then judge i-1) samples
                  `samples_per_pair` judgments of every pair (T 0.7, top-p 0.9), one generate call;
                  `annotator=gold` writes perfect judgments instead (the gold-label baseline)
  2. keep         rejection sampling: only judgments whose verdict names the known winner; one per
                  pair (`pick`: random or first); a pair with none is dropped; `balance_labels`
                  truncates the kept examples to as many A as B verdicts (`iter-i/data/sft.jsonl`)
  3. train        SFT of the *seed* judge (re-initialised every iteration) on the kept judgments,
                  through the `sft` recipe (`iter-i/sft/model`); with `dpo_steps` > 0, then DPO + NLL
                  of that judge on correct vs wrong judgments of the same pairs (the released
                  model's second stage, papers_A §5.2; `iter-i/dpo/model`)
  4. evaluate     greedy judgments of `eval_num_pairs` held-out pairs in both orders: accuracy per
                  order, position-consistent accuracy, flip rate, A share (`judges.evaluate`); the
                  same on each `eval_extra` set, and majority@k (`eval_majority_k`, `maj_*`)
Writes `<out_dir>/table.md` (one row per iteration, the seed first) and `summary.json`.

Deviations: in the tiny world the near-miss instructions stand in for LLM-written modified
instructions (`instructions` + `pair_generator` run the LLM version on real data). The DPO stage
pairs the iteration's own sampled judgments (the release samples fresh ones from the SFT judge).

This is a flow, not a recipe: it composes the sft and dpo recipes (layer L7, like rag-self-demos).

CPU: selftaught self-taught-evaluator                  (tiny world: `tiny-world-judge`, 3 iterations)
     selftaught self-taught-evaluator --preset tiny-smoke
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from selftaught.config import to_dict
from selftaught.configs.judge import SelfTaughtEvaluatorConfig as SelfTaughtEvaluatorConfig
from selftaught.configs.losses import NLLNormalization
from selftaught.configs.recipes import DPOConfig, DPODataConfig, SFTConfig, SFTDataConfig
from selftaught.configs.train import EvalConfig, OptimConfig
from selftaught.data.shards import compute_fingerprint, run_once
from selftaught.data.sources import read_records, write_jsonl
from selftaught.engines.base import Engine, SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.flows.natural_reasoning import build_engine
from selftaught.judges import build_judge, evaluate_judge, load_judge_pairs
from selftaught.judges.evaluate import LISTS_PREFIX
from selftaught.judges.rl import PAIRWISE_ORDERS, judge_prompt, judgment_correct, pair_id
from selftaught.judges.templates import get_template
from selftaught.models.io import load_model, resolve_model_source
from selftaught.pipelines.ste_pairs import synthesize_pairs
from selftaught.recipes import dpo, sft
from selftaught.types import Completion, Pair, Prompt
from selftaught.world.list_tasks import check_trace

GOLD = "gold"
"""`annotator=gold`: iteration 1 trains on perfect judgments (world pairs), the gold-label baseline."""
METRICS = (
    "accuracy",
    "accuracy_chosen_first",
    "accuracy_chosen_second",
    "consistent_accuracy",
    "flip_rate",
    "a_rate",
)


def run(cfg: SelfTaughtEvaluatorConfig) -> dict[str, Any]:
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = synthesized_pairs(cfg) if cfg.instructions else cfg.pairs
    pairs = load_judge_pairs(source, limit=cfg.num_pairs, seed=cfg.seed)
    rows = [{"iteration": 0, "model": cfg.model, **evaluate(cfg, cfg.model, out / "iter-0")}]
    judge_model = cfg.annotator or cfg.model
    for i in range(1, cfg.iterations + 1):
        step_dir = out / f"iter-{i}"
        kept = annotate(cfg, judge_model, pairs, step_dir / "data", i)
        check_kept(cfg, kept, step_dir / "data" / "sft.jsonl")
        trained = train_judge(cfg, step_dir / "data" / "sft.jsonl", step_dir / "sft", kept["num_kept"])
        if cfg.dpo_steps:
            trained = train_judge_dpo(cfg, trained, step_dir / "data" / "dpo.jsonl", step_dir / "dpo")
        rows.append({"iteration": i, "model": trained, **kept, **evaluate(cfg, trained, step_dir)})
        judge_model = trained
        print(format_table(rows), flush=True)
    (out / "table.md").write_text(format_table(rows))
    (out / "summary.json").write_text(json.dumps({"iterations": rows}, indent=2))
    return {"out_dir": cfg.out_dir, "final": rows[-1]}


def synthesized_pairs(cfg: SelfTaughtEvaluatorConfig) -> str:
    """Step 0 from instructions (`cfg.instructions`): contrasting pairs by `pair_generator`
    (`pipelines.ste_pairs`, resumable stages under `<out_dir>/pairs`); the pairs file."""
    assert cfg.instructions is not None
    records = read_records(cfg.instructions)
    instructions = [
        {"id": str(r.get("id", i)), "instruction": r["instruction"] if "instruction" in r else r["prompt"]}
        for i, r in enumerate(records)
        if "instruction" in r or isinstance(r.get("prompt"), str)
    ]
    if len(instructions) < len(records):
        raise ValueError(
            f"instructions {cfg.instructions}: every record needs an `instruction` or a text `prompt`"
        )
    spec = cfg.pair_generator or cfg.annotator or cfg.model
    out = Path(cfg.out_dir) / "pairs"
    pairs, counts = synthesize_pairs(
        out,
        instructions,
        build_engine(spec),
        generator=spec,
        mode=cfg.pair_mode,
        keep=cfg.keep_categories,
        seed=cfg.seed,
        max_new_tokens=cfg.pair_max_new_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
    )
    print(f"self-taught-evaluator: pairs from {cfg.instructions}: {counts}", flush=True)
    if not pairs:
        raise ValueError(f"no pair was synthesised from {cfg.instructions} ({counts}); see {out}")
    write_jsonl(out / "pairs.jsonl", pairs)
    return str(out / "pairs.jsonl")


def _fingerprint(cfg: SelfTaughtEvaluatorConfig, **extra: Any) -> str:
    return compute_fingerprint({**{k: v for k, v in to_dict(cfg).items() if k != "out_dir"}, **extra})


def shown_order(cfg: SelfTaughtEvaluatorConfig, pair: Pair) -> str:
    """The one order a pair is shown in (`ab`: chosen as A), drawn from the seed and the pair id;
    `ab` with probability `chosen_first_share`."""
    rng = random.Random(f"{cfg.seed}|{pair_id(pair)}")
    if cfg.chosen_first_share == 0.5:
        return rng.choice(PAIRWISE_ORDERS)  # the balanced draw, as runs before the share knob drew it
    return "ab" if rng.random() < cfg.chosen_first_share else "ba"


def annotate(
    cfg: SelfTaughtEvaluatorConfig, judge_model: str, pairs: list[Pair], out_dir: Path, iteration: int
) -> dict[str, Any]:
    """Steps 1-2 as one stage: sample judgments, keep one correct per pair, balance; write `sft.jsonl`."""
    fingerprint = _fingerprint(cfg, judge_model=judge_model, iteration=iteration)
    return run_once(out_dir, fingerprint, lambda: _annotate(cfg, judge_model, pairs, out_dir, iteration))


def _annotate(
    cfg: SelfTaughtEvaluatorConfig, judge_model: str, pairs: list[Pair], out_dir: Path, iteration: int
) -> dict[str, Any]:
    template = get_template(cfg.template)
    prompts = [judge_prompt(pair, template, shown_order(cfg, pair), cfg.prompt_style) for pair in pairs]
    if judge_model == GOLD:
        samples = gold_judgments(cfg, pairs, prompts)
    else:
        sampling = SamplingParams(
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            n=cfg.samples_per_pair,
            max_new_tokens=cfg.max_new_tokens,
            stop=cfg.stop,
            seed=cfg.seed * 1_000_003 + iteration,
        )
        samples = judge_engine(cfg, judge_model).generate(prompts, sampling)
    rng = random.Random(f"{cfg.seed}|keep|{iteration}")
    kept: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    dpo_pairs: list[dict[str, Any]] = []
    num_correct = 0
    for prompt, completions in zip(prompts, samples, strict=True):
        winner = prompt.meta["winner"]
        correct = [c.text for c in completions if judgment_correct(c.text, winner, template.name)]
        # a wrong judgment can be empty (EOS first): no DPO response, so it is no rejected candidate
        wrong = [
            c.text
            for c in completions
            if c.text.strip() and not judgment_correct(c.text, winner, template.name)
        ]
        num_correct += len(correct)
        if not correct:
            continue
        judgment = rng.choice(correct) if cfg.pick == "random" else correct[0]
        if cfg.dpo_steps and wrong:
            dpo_pairs.append(judgment_pair(prompt, judgment, rng.choice(wrong)))
        kept[winner].append({**judgment_example(prompt, judgment), "id": prompt.id, "winner": winner})
    num_a, num_b = len(kept["A"]), len(kept["B"])
    if cfg.balance_labels:
        keep = min(num_a, num_b)
        kept = {label: examples[:keep] for label, examples in kept.items()}
    records = kept["A"] + kept["B"]
    random.Random(f"{cfg.seed}|shuffle|{iteration}").shuffle(records)
    write_jsonl(out_dir / "sft.jsonl", records)
    if cfg.dpo_steps:
        write_jsonl(out_dir / "dpo.jsonl", dpo_pairs)
    return {
        "annotator_sample_accuracy": num_correct / (len(prompts) * cfg.samples_per_pair),
        "num_pairs_with_a_correct_judgment": num_a + num_b,
        "num_kept": len(records),
    }


def judgment_example(prompt: Prompt, judgment: str) -> dict[str, Any]:
    """The SFT record of a kept judgment, rendered as the judge saw its prompt: a conversation (chat
    prompts), or a TRL plain-text `prompt` + `completion` (raw-text prompts: BOS + the few-shot text,
    no chat markers, the judgment and EOS)."""
    if prompt.text is not None:
        return {"prompt": prompt.text, "completion": judgment}
    return {"messages": [*prompt.messages, {"role": "assistant", "content": judgment}]}


def judgment_pair(prompt: Prompt, chosen: str, rejected: str) -> dict[str, Any]:
    """A TRL preference record: the judge prompt, a correct and a wrong judgment (conversational for
    chat prompts, plain text for raw-text ones)."""
    if prompt.text is not None:
        return {"id": prompt.id, "prompt": prompt.text, "chosen": chosen, "rejected": rejected}
    return {
        "id": prompt.id,
        "prompt": prompt.messages,
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


def gold_judgments(
    cfg: SelfTaughtEvaluatorConfig, pairs: list[Pair], prompts: list[Prompt]
) -> list[list[Completion]]:
    """`annotator=gold`: the judgment a perfect judge writes, as every one of the N samples (the
    gold-label baseline): for world pairs the correct chain and the right verdict, for list pairs
    the right output, its checks and the verdict (`world.list_tasks.judgment`)."""
    if cfg.template != "world-pairwise-verdict@1" or not cfg.pairs.startswith(("world:", LISTS_PREFIX)):
        raise ValueError(
            "annotator=gold writes world-pairwise-verdict@1 judgments of world: or world-lists: pairs; "
            f"template is {cfg.template}, pairs {cfg.pairs}"
        )
    lists = cfg.pairs.startswith(LISTS_PREFIX)
    samples = []
    for pair, prompt in zip(pairs, prompts, strict=True):
        winner = prompt.meta["winner"]
        if lists:
            shown = (pair.chosen.text, pair.rejected.text)
            text = check_trace(pair.chosen.text, *(shown if winner == "A" else shown[::-1]))
        else:
            text = f"{pair.chosen.text} [[{winner}]]"
        samples.append([Completion(prompt.id, text)] * cfg.samples_per_pair)
    return samples


def check_kept(cfg: SelfTaughtEvaluatorConfig, kept: dict[str, Any], data: Path) -> None:
    """A ValueError naming the cause when an iteration kept nothing to train on."""
    if kept["num_kept"]:
        return
    if kept["num_pairs_with_a_correct_judgment"]:
        raise ValueError(
            f"{data}: {kept['num_pairs_with_a_correct_judgment']} pairs had a correct judgment, but all of "
            "one verdict letter, and balance_labels truncated them to none; set balance_labels=false or "
            f"show pairs in both positions (chosen_first_share={cfg.chosen_first_share})"
        )
    raise ValueError(
        f"{data}: no judgment was right, nothing to train on; raise samples_per_pair or temperature"
    )


def train_judge(cfg: SelfTaughtEvaluatorConfig, data: Path, out_dir: Path, num_kept: int) -> str:
    """Step 3: SFT of the seed judge on the kept judgments (the sft recipe, run once); the model dir."""
    if num_kept == 0:
        raise ValueError(
            f"{data}: no judgment was right, nothing to train on; raise samples_per_pair or temperature"
        )
    sft_cfg = SFTConfig(
        out_dir=str(out_dir / "run"),
        model=cfg.model,
        seed=cfg.seed,
        num_steps=cfg.sft_steps,
        batch_size=min(cfg.sft_batch_size, num_kept),
        data=SFTDataConfig(source=str(data), max_length=cfg.max_length),
        micro_batch_tokens=0,
        lora=cfg.lora,
        precision=cfg.precision,
        activation_checkpointing=cfg.activation_checkpointing,
        optim=OptimConfig(
            lr=cfg.sft_lr,
            betas=(0.9, 0.98),
            schedule="cosine",
            warmup_steps=min(10, cfg.sft_steps - 1),
            min_lr_ratio=0.1,
        ),
        eval=EvalConfig(every=-1),
        checkpoint_every=max(cfg.sft_steps // 2, 1),
        log_every=50,
    )
    settings = {k: v for k, v in to_dict(sft_cfg).items() if k != "out_dir"}
    fingerprint = compute_fingerprint({**settings, "data_file": data.read_text()})
    run_once(out_dir, fingerprint, lambda: sft.run(sft_cfg))
    return str(out_dir / "run" / "model")


def train_judge_dpo(cfg: SelfTaughtEvaluatorConfig, sft_model: str, data: Path, out_dir: Path) -> str:
    """Step 3b (`dpo_steps` > 0): DPO + NLL of the iteration's SFT judge on correct vs wrong judgments
    (the dpo recipe, reference = the SFT judge, run once); the model dir. No pair (every sample right,
    or gold judgments): the SFT judge as it is."""
    if not data.read_text().strip():
        return sft_model
    dpo_cfg = DPOConfig(
        out_dir=str(out_dir / "run"),
        model=sft_model,
        seed=cfg.seed,
        num_steps=cfg.dpo_steps,
        batch_size=min(cfg.sft_batch_size, len(data.read_text().splitlines())),
        data=DPODataConfig(source=str(data), max_length=cfg.max_length),
        micro_batch_tokens=0,
        lora=cfg.lora,
        precision=cfg.precision,
        activation_checkpointing=cfg.activation_checkpointing,
        beta=cfg.dpo_beta,
        nll_scale=cfg.dpo_nll_scale,
        nll_normalization=NLLNormalization.TOKEN_MEAN,
        optim=OptimConfig(lr=cfg.dpo_lr, schedule="constant"),
        eval=EvalConfig(every=-1),
        checkpoint_every=max(cfg.dpo_steps // 2, 1),
        log_every=50,
    )
    settings = {k: v for k, v in to_dict(dpo_cfg).items() if k != "out_dir"}
    run_once(
        out_dir, compute_fingerprint({**settings, "data_file": data.read_text()}), lambda: dpo.run(dpo_cfg)
    )
    return str(out_dir / "run" / "model")


def evaluate(cfg: SelfTaughtEvaluatorConfig, model_dir: str, out_dir: Path) -> dict[str, Any]:
    """Step 4: greedy both-order metrics of `model_dir` on the held-out pairs, the `eval_extra` sets
    (prefixed by their names) and majority@k (`maj_`) when asked (run once)."""
    settings = {
        "model": model_dir,
        "pairs": cfg.eval_pairs,
        "num": cfg.eval_num_pairs,
        "template": cfg.template,
    }
    if cfg.eval_extra or cfg.eval_majority_k > 1:  # keys of runs before these knobs stay as they were
        settings |= {"extra": cfg.eval_extra, "majority_k": cfg.eval_majority_k, "seed": cfg.seed}
    if cfg.stop:
        settings |= {"stop": cfg.stop}
    return run_once(out_dir / "eval", compute_fingerprint(settings), lambda: _evaluate(cfg, model_dir))


def _evaluate(cfg: SelfTaughtEvaluatorConfig, model_dir: str) -> dict[str, Any]:
    engine = judge_engine(cfg, model_dir, batch_size=400)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=cfg.max_new_tokens, stop=cfg.stop)
    row = judge_metrics(cfg, engine, cfg.eval_pairs, greedy)
    for name in cfg.eval_extra:
        row |= {f"{name}/{k}": v for k, v in judge_metrics(cfg, engine, name, greedy).items()}
    if cfg.eval_majority_k > 1:
        sampled = SamplingParams(
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            n=cfg.eval_majority_k,
            max_new_tokens=cfg.max_new_tokens,
            stop=cfg.stop,
            seed=cfg.seed,
        )
        row |= {f"maj_{k}": v for k, v in judge_metrics(cfg, engine, cfg.eval_pairs, sampled).items()}
    return row


def judge_engine(cfg: SelfTaughtEvaluatorConfig, model_dir: str, batch_size: int | None = None) -> Engine:
    """The engine of `cfg.engine` on a judge: the in-process HF engine, or vLLM on its directory."""
    if cfg.engine == "vllm":
        from selftaught.engines.vllm import VLLMEngine

        return VLLMEngine(str(resolve_model_source(model_dir)))
    model, tokenizer = load_model(model_dir)
    return (
        HFEngine(model, tokenizer)
        if batch_size is None
        else HFEngine(model, tokenizer, batch_size=batch_size)
    )


def judge_metrics(
    cfg: SelfTaughtEvaluatorConfig, engine: Engine, pairs_spec: str, sampling: SamplingParams
) -> dict[str, Any]:
    """Both-order metrics of the judge on `pairs_spec` (`eval_num_pairs` pairs); with `sampling.n`
    above 1 each order's verdict is the majority of the samples."""
    pairs = load_judge_pairs(pairs_spec, limit=cfg.eval_num_pairs, seed=0)
    result = evaluate_judge(build_judge(engine, cfg.template, sampling, cfg.prompt_style), pairs)
    return {m: getattr(result.metrics, m) for m in METRICS} | {
        "thinking_accuracy": result.thinking_accuracy,
        "accuracy_when_thinking_right": result.accuracy_when_thinking_right,
        "unparsed_rate": result.metrics.unparsed_rate,
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one row per iteration (0 = the seed judge)."""
    columns = [*METRICS, "thinking_accuracy", "annotator_sample_accuracy", "num_kept"]
    lines = ["| iteration | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row in rows:
        cells = [_fmt(row.get(c)) for c in columns]
        lines.append(f"| {row['iteration']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.3f}"
