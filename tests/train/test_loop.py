"""The loop cadence every recipe shares (`train.loop`), the supervised loop's stop rule, and
validation on a user's own file (`train.evaluation`): held-out loss and preference accuracy."""

import json
from dataclasses import replace

import torch
from safetensors.torch import load_file

from selftaught.models.io import load_model
from selftaught.runlog import RunLog
from selftaught.train import loop
from selftaught.train.batching import collate
from selftaught.train.evaluation import validate_policy
from selftaught.train.loop import EvalConfig, RunConfig
from selftaught.train.optim import OptimConfig, build_optimizer, build_scheduler
from selftaught.train.supervised import train_supervised


def test_cadence():
    cfg = RunConfig(num_steps=10, log_every=4, eval=EvalConfig(every=3), checkpoint_every=5)
    assert [s for s in range(1, 11) if loop.should_log(cfg, s)] == [4, 8, 10]
    assert [s for s in range(1, 11) if loop.should_eval(cfg, s)] == [3, 6, 9]  # the last: finish's
    assert [s for s in range(1, 11) if loop.should_checkpoint(cfg, s)] == [5, 10]
    assert not any(loop.should_eval(replace(cfg, eval=EvalConfig(every=0)), s) for s in range(1, 11))


def _supervised(model_dir, out, stop=None, num_steps=6):
    model, tokenizer = load_model(model_dir)
    model.train()
    cfg = RunConfig(
        out_dir=str(out), num_steps=num_steps, log_every=1, eval=EvalConfig(every=2), checkpoint_every=2
    )
    optim = OptimConfig(lr=1e-3, schedule="constant")
    optimizer = build_optimizer(model, optim)
    scheduler = build_scheduler(optimizer, optim, cfg.num_steps)
    batch = collate([([1, 5, 6, 7, 2], [False, True, True, True, True])], tokenizer.pad_token_id)
    calls = []

    def validate():
        calls.append(1)
        return {"val_accuracy": len(calls) / 10}

    with RunLog(out, cfg, quiet=True) as run_log:
        final = train_supervised(
            cfg,
            run_log,
            model,
            tokenizer,
            optimizer,
            scheduler,
            lambda step: [batch],
            max_grad_norm=1.0,
            validate=validate,
            stop=stop,
        )
    return final, [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_the_supervised_loop_stops_on_its_rule_and_logs_the_final_eval_at_that_step(tiny_model_dir, tmp_path):
    final, rows = _supervised(tiny_model_dir, tmp_path / "a", stop=lambda val: val["val_accuracy"] >= 0.3)
    assert final["steps"] == 4 and final["val_accuracy"] == 0.3  # evals at 0, 2, 4: the third meets it
    assert [r["step"] for r in rows if "val_accuracy" in r] == [0, 2, 4]
    assert (tmp_path / "a" / "model" / "model.safetensors").is_file()


def test_the_supervised_loop_resumes_from_its_checkpoint_exactly(tiny_model_dir, tmp_path):
    _, full = _supervised(tiny_model_dir, tmp_path / "full", num_steps=6)
    _supervised(tiny_model_dir, tmp_path / "cut", num_steps=4)  # checkpoints at 2 and 4
    final, resumed = _supervised(tiny_model_dir, tmp_path / "cut", num_steps=6)  # resumes at 4
    assert final["steps"] == 6
    full_losses = {r["step"]: r["loss"] for r in full if "loss" in r}
    resumed_losses = {r["step"]: r["loss"] for r in resumed if "loss" in r}
    assert resumed_losses[5] == full_losses[5] and resumed_losses[6] == full_losses[6]
    a = load_file(tmp_path / "full" / "model" / "model.safetensors")
    b = load_file(tmp_path / "cut" / "model" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_validation_on_a_conversation_file_and_a_preference_file(tiny_model_dir, tmp_path):
    model, tokenizer = load_model(tiny_model_dir)
    sft = tmp_path / "sft.jsonl"
    sft.write_text(json.dumps({"prompt": "1+1=", "completion": "2"}) + "\n")
    metrics = validate_policy(model, tokenizer, EvalConfig(data=str(sft)))
    assert metrics["val_loss"] > 0 and metrics["val_num_tokens"] == 2  # "2" + EOS
    pairs = tmp_path / "pairs.jsonl"
    rows = [
        {"prompt": "1+1=", "chosen": "2", "rejected": "3333"},
        {"prompt": "2+2=", "chosen": "4", "rejected": "44"},
    ]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    metrics = validate_policy(model, tokenizer, EvalConfig(data=str(pairs)))
    assert metrics["val_num_pairs"] == 2 and 0 <= metrics["val_preference_accuracy"] <= 1
    assert metrics["val_preference_accuracy"] == 1.0  # a shorter response has the higher summed log-prob here
    world = validate_policy(model, tokenizer, EvalConfig(data="world:valid", per_level=2, levels=[1]))
    assert set(world) >= {"val_accuracy", "val_stderr"}


def test_a_resume_with_a_changed_config_is_refused_and_names_the_keys(tiny_model_dir, tmp_path):
    import pytest

    _supervised(tiny_model_dir, tmp_path / "run", num_steps=4)
    saved = (tmp_path / "run" / "config.yaml").read_text()
    changed = RunConfig(out_dir=str(tmp_path / "run"), num_steps=6, seed=3, log_every=1)
    with (
        RunLog(tmp_path / "run", changed, quiet=True) as run_log,
        pytest.raises(ValueError, match=r"seed: 0 -> 3"),
    ):
        loop.check_resumed_config(changed, run_log)
    assert (tmp_path / "run" / "config.yaml").read_text() == saved  # put back, not overwritten
    same = RunConfig(
        out_dir=str(tmp_path / "run"), num_steps=6, log_every=1, eval=EvalConfig(every=2), checkpoint_every=2
    )
    with RunLog(tmp_path / "run", same, quiet=True) as run_log:
        loop.check_resumed_config(same, run_log)  # num_steps, cadence and eval may change


def test_a_resume_drops_the_metrics_of_the_redone_steps_and_one_run_at_a_time(tiny_model_dir, tmp_path):
    import pytest

    _supervised(tiny_model_dir, tmp_path / "run", num_steps=4)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    with RunLog(tmp_path / "run", quiet=True) as run_log:
        assert run_log.rewind(2) == len([r for r in rows if r["step"] > 2])
        with pytest.raises(ValueError, match="another run is writing to"):
            RunLog(tmp_path / "run")
    kept = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert kept == [r for r in rows if r["step"] <= 2]
    RunLog(tmp_path / "run").close()  # the lock is released with the run


def test_a_restart_before_the_first_checkpoint_drops_the_earlier_attempts_metrics(tiny_model_dir, tmp_path):
    """kill -9 before any checkpoint: the rerun starts from step 0, so the records of the killed
    attempt must go (they were logged twice before: issue 16's kill -9 probe)."""
    out = tmp_path / "run"
    out.mkdir()
    stale = [{"step": s, "loss": 9.0} for s in (0, 1)]
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stale))
    _, rows = _supervised(tiny_model_dir, out, num_steps=2)
    assert all(r.get("loss") != 9.0 for r in rows)
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]
    assert [r["step"] for r in rows if "val_accuracy" in r] == [0, 2]
