"""The dpo recipe: a complete run directory whose pairs stage and reference cache a rerun reuses,
accumulation = one batch, exact resume, and preference files (TRL, GSM8K, a missing column).

A random-init model never answers a world problem right, so these tests check answers by the
parity of the completion's length instead: the pools are then mixed and give pairs.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from selftaught.cli import main
from selftaught.config import apply_overrides
from selftaught.data.formats import gsm8k_preference_records
from selftaught.data.preferences import build_pair_examples
from selftaught.pipelines import pairs as pipelines_pairs
from selftaught.presets.dpo import tiny_smoke as dpo_smoke
from selftaught.recipes import dpo
from selftaught.rewards.registry import REWARDS
from selftaught.train import reference
from selftaught.world.tokenizer import build_tokenizer


def parity_reward(prompts, completions, **columns):
    """Answers "checked" by the parity of their length: a random-init model's pools are then mixed."""
    return [float(len(c[0]["content"]) % 2 == 0) for c in completions]


@pytest.fixture
def parity_checker(monkeypatch):
    monkeypatch.setitem(REWARDS, "world_answer", parity_reward)


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(model_dir / "model.safetensors")


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _count_calls(monkeypatch, module, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    return calls


def test_smoke_run_writes_pairs_and_reference_that_a_rerun_reuses(
    tiny_model_dir, tmp_path, parity_checker, monkeypatch
):
    out = tmp_path / "run"
    argv = [
        "dpo",
        "--preset",
        "tiny-smoke",
        f"out_dir={out}",
        f"model={tiny_model_dir}",
        "data.max_new_tokens=16",
    ]
    assert main(argv) == 0
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "log.txt",
        "pairs/manifest.json",
        "ref_logps.safetensors",
        "checkpoints/step-0000004/model.safetensors",
        "model/model.safetensors",
    ):
        assert (out / name).exists(), name
    before, after = _weights(Path(tiny_model_dir)), _weights(out / "model")
    assert any(not torch.equal(before[k], after[k]) for k in before)
    metrics = _metrics(out)
    steps = [m for m in metrics if "reward_margin" in m]
    assert [m["step"] for m in steps] == [1, 2, 3, 4]
    assert all(torch.isfinite(torch.tensor(m["loss"])) and m["num_pairs"] == 4 for m in steps)
    assert steps[0]["reward_margin"] == pytest.approx(0, abs=1e-4)  # policy == reference at step 1
    data = next(m for m in metrics if "pair_yield" in m)
    assert data["num_prompts"] == 16 and 0 < data["num_pairs"] == data["num_train_pairs"] <= 16
    record = json.loads((out / "pairs" / "part-00000.jsonl").read_text().splitlines()[0])
    assert record["prompt"][0]["role"] == "user" and record["chosen"][0]["role"] == "assistant"
    assert len(record["chosen"][0]["content"]) % 2 == 0 and len(record["rejected"][0]["content"]) % 2 == 1

    stamps = {p: p.stat().st_mtime_ns for p in [out / "ref_logps.safetensors", *(out / "pairs").iterdir()]}
    pair_calls = _count_calls(monkeypatch, pipelines_pairs, "score_samples")
    ref_calls = _count_calls(monkeypatch, reference, "compute_sequence_logps")
    assert main(argv) == 0
    assert pair_calls == [] and ref_calls == []
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in stamps.items())
    assert "ref_logps_reused=True" in (out / "log.txt").read_text()


@pytest.mark.parametrize(
    "loss",
    [
        ["nll_scale=0.5"],
        ["loss_type=ipo"],
        ["loss_type=length_normalized", "nll_scale=1", "nll_normalization=token_mean"],
    ],
)
def test_gradient_accumulation_equals_one_big_batch(tiny_model_dir, tmp_path, parity_checker, loss):
    common = [
        "dpo",
        "--preset",
        "tiny-smoke",
        f"model={tiny_model_dir}",
        "eval.every=-1",
        "checkpoint_every=0",
        "num_steps=2",
        "batch_size=8",
        "data.max_new_tokens=16",
        *loss,
    ]
    assert main([*common, f"out_dir={tmp_path / 'one'}", "micro_batch_tokens=0"]) == 0
    assert main([*common, f"out_dir={tmp_path / 'many'}", "micro_batch_tokens=170"]) == 0
    one, many = ({m["step"]: m for m in _metrics(tmp_path / run) if "loss" in m} for run in ("one", "many"))
    for key in ("loss", "reward_margin", "logps_chosen", "length_rejected", "num_pairs"):
        assert [one[1][key], one[2][key]] == pytest.approx(
            [many[1][key], many[2][key]], rel=1e-6, abs=1e-5
        ), key
    # at step 1 the policy is the reference: which side wins a zero margin is float noise
    assert one[2]["reward_accuracy"] == many[2]["reward_accuracy"]
    one, many = _weights(tmp_path / "one" / "model"), _weights(tmp_path / "many" / "model")
    for key in one:
        torch.testing.assert_close(one[key], many[key], atol=1e-6, rtol=0)


def test_micro_batches_keep_each_pair_together():
    chosen = [([1] * (5 + i), [False] * 3 + [True] * (2 + i)) for i in range(6)]
    rejected = [([2] * (9 - i), [False] * 3 + [True] * (6 - i)) for i in range(6)]
    pairs = list(zip(chosen, rejected, strict=True))
    ref_logps = torch.arange(12.0)  # chosen i -> i, rejected i -> 6 + i
    cfg = apply_overrides(dpo_smoke(), ["batch_size=6", "micro_batch_tokens=40"])
    batches = dpo.step_micro_batches(pairs, ref_logps, 1, cfg, pad_id=0)
    assert len(batches) > 1
    seen = []
    for batch in batches:
        chosen_ref, rejected_ref = batch.ref_logps.chunk(2)
        assert torch.equal(rejected_ref, chosen_ref + 6)  # row k and row P + k are one pair
        rows = batch.sequences.input_ids
        assert rows.shape[0] == 2 * batch.num_pairs and rows.numel() <= 40
        assert (rows[: batch.num_pairs, 0] == 1).all() and (rows[batch.num_pairs :, 0] == 2).all()
        seen.extend(int(i) for i in chosen_ref)
    assert sorted(seen) == list(range(6))


def test_resume_from_a_checkpoint_reproduces_the_run(tiny_model_dir, tmp_path, parity_checker):
    out = tmp_path / "run"
    cfg = apply_overrides(
        dpo_smoke(),
        [
            f"out_dir={out}",
            f"model={tiny_model_dir}",
            "eval.every=-1",
            "num_steps=4",
            "checkpoint_every=2",
            "data.max_new_tokens=16",
            "batch_size=6",
        ],
    )
    dpo.run(cfg)
    straight = _weights(out / "model")
    straight_losses = [(m["step"], m["loss"]) for m in _metrics(out) if "loss" in m]
    shutil.rmtree(out / "checkpoints" / "step-0000004")
    shutil.rmtree(out / "model")
    dpo.run(cfg)  # resumes from step 2; the records of steps 3 and 4 are redone, not repeated
    assert all(torch.equal(straight[k], v) for k, v in _weights(out / "model").items())
    losses = [(m["step"], m["loss"]) for m in _metrics(out) if "loss" in m]
    assert [step for step, _ in losses] == [1, 2, 3, 4] and losses == straight_losses
    assert [m["step"] for m in _metrics(out)] == [0, 1, 2, 3, 4]  # one step-0 record (data counts)


def _write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def test_preference_file_without_rejected_is_a_clear_error(tiny_model_dir, tmp_path, capsys):
    source = _write_jsonl(tmp_path / "prefs.jsonl", [{"prompt": "1+1", "chosen": "2"}])
    assert (
        main(
            [
                "dpo",
                "--preset",
                "tiny-smoke",
                f"out_dir={tmp_path / 'run'}",
                f"model={tiny_model_dir}",
                f"data.source={source}",
            ]
        )
        == 2
    )
    assert "record 0 has no column 'rejected'" in capsys.readouterr().err


def test_trl_preference_files_train_on_the_responses_only(tmp_path):
    tokenizer = build_tokenizer()
    rows = [
        {
            "prompt": [{"role": "user", "content": "12+7+30+45-3"}],
            "chosen": [{"role": "assistant", "content": "Answer: 19"}],
            "rejected": [{"role": "assistant", "content": "Answer: 18"}],
        },
        {"prompt": "3-1=", "chosen": "2", "rejected": "5 5"},
    ]
    records = dpo.load_preference_records(
        apply_overrides(dpo_smoke(), [f"data.source={_write_jsonl(tmp_path / 'p.jsonl', rows)}"]),
        None,
        tokenizer,
    )[0]
    pairs, num_dropped = build_pair_examples(records, tokenizer, max_length=64)
    assert num_dropped == 0
    for (chosen_ids, chosen_mask), (rejected_ids, rejected_mask) in pairs:
        prompt_length = chosen_mask.index(True)
        assert (
            rejected_mask.index(True) == prompt_length
            and chosen_ids[:prompt_length] == rejected_ids[:prompt_length]
        )
        assert all(chosen_mask[prompt_length:]) and all(rejected_mask[prompt_length:])
        assert chosen_ids[-1] == rejected_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(pairs[1][1][0][pairs[1][1][1].index(True) : -1]) == "5 5"
    plain_length = max(len(ids) for ids, _ in pairs[1])
    assert pairs[0][0][1].index(True) > plain_length  # the chat template makes the first prompt longer
    kept, num_dropped = build_pair_examples(records, tokenizer, max_length=plain_length)
    assert num_dropped == 1 and kept == [pairs[1]]
    with pytest.raises(ValueError, match="`prompt` and `chosen` must both be message lists"):
        build_pair_examples([{"prompt": "1+1", "chosen": rows[0]["chosen"], "rejected": "3"}], tokenizer, 64)


def test_gsm8k_pairs_differ_only_in_the_final_number():
    records = [
        {"question": f"Q{i}?", "answer": f"Add 3 and {i}.\n3 + {i} = {3 + i}\n#### {3 + i}"}
        for i in range(30)
    ]
    pairs = gsm8k_preference_records(records, seed=0)
    assert pairs == gsm8k_preference_records(records, seed=0) != gsm8k_preference_records(records, seed=1)
    for i, pair in enumerate(pairs):
        chosen, rejected = pair["chosen"][0]["content"], pair["rejected"][0]["content"]
        head, _, wrong = rejected.rpartition("The answer is ")
        assert chosen == f"{head}The answer is {3 + i}." and head == f"Add 3 and {i}.\n3 + {i} = {3 + i}\n"
        assert 0 < abs(int(wrong.rstrip(".")) - (3 + i)) <= 10


@pytest.mark.slow
def test_gemma_lora_preset_runs_on_gsm8k_pairs(tmp_path):
    gsm8k = Path(__file__).resolve().parents[3] / "shared" / "data" / "gsm8k"
    out = tmp_path / "gemma"
    assert (
        main(
            [
                "dpo",
                "--preset",
                "gemma3-270m",
                f"out_dir={out}",
                f"data.source={gsm8k / 'train.jsonl'}",
                "num_steps=2",
                "data.limit=8",
                "batch_size=4",
            ]
        )
        == 0
    )
    steps = [m for m in _metrics(out) if "reward_margin" in m]
    assert len(steps) == 2 and all(torch.isfinite(torch.tensor(m["loss"])) for m in steps)
    assert steps[0]["reward_margin"] == pytest.approx(
        0, abs=1e-3
    )  # adapters start at zero: policy == reference
    assert not any("lora" in key for key in _weights(out / "model"))
