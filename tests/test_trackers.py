"""`report_to`: the records of metrics.jsonl also reach TensorBoard, Weights & Biases and Trackio (offline)."""

import pytest

from selftaught.runlog import RunLog
from selftaught.train.loop import RunConfig


def test_tensorboard_receives_every_numeric_record(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = RunConfig(out_dir=str(tmp_path / "run"), report_to=["tensorboard"])
    with RunLog(cfg.out_dir, cfg, quiet=True) as run_log:
        for step in (1, 2, 3):
            run_log.log(step, loss=1.0 / step, note="text is not sent")
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert [(e.step, round(e.value, 6)) for e in events.Scalars("loss")] == [
        (1, 1.0),
        (2, 0.5),
        (3, round(1 / 3, 6)),
    ]
    assert "note" not in events.Tags()["scalars"]


def test_wandb_offline_gets_the_config_and_the_metrics(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = RunConfig(out_dir=str(tmp_path / "run"), seed=7, report_to=["wandb"])
    with RunLog(cfg.out_dir, cfg, quiet=True) as run_log:
        run_log.log(1, loss=2.0)
        run_log.log(2, loss=1.5, val_accuracy=0.25)
        run = run_log.trackers[0].run
        assert run.name == "run" and run.config["seed"] == 7
        assert run.summary["loss"] == 1.5 and run.summary["val_accuracy"] == 0.25 and run.summary["step"] == 2
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb"))  # the offline record, for `wandb sync`


def test_an_unknown_tracker_is_a_config_error():
    with pytest.raises(ValueError, match=r"report_to: unknown tracker\(s\) \['mlflow'\]"):
        RunConfig(report_to=["mlflow"])


TRACKIO_READBACK = """
import json, sys
from selftaught.runlog import RunLog
from selftaught.train.loop import RunConfig

cfg = RunConfig(out_dir=sys.argv[1], seed=7, report_to=["trackio"])
with RunLog(cfg.out_dir, cfg, quiet=True) as run_log:
    run_log.log(1, loss=2.0, note="text is not sent")
    run_log.log(2, loss=1.5, val_accuracy=0.25)
from trackio.sqlite_storage import SQLiteStorage

logs = SQLiteStorage.get_logs("selftaught", "run")
config = SQLiteStorage.get_run_config("selftaught", "run")
print(json.dumps({"logs": logs, "seed": config["seed"], "runs": SQLiteStorage.get_runs("selftaught")}))
"""


def test_trackio_logs_the_config_and_the_metrics_locally(tmp_path):
    """In a fresh process: Trackio reads its store's directory (`TRACKIO_DIR`) once, at import."""
    pytest.importorskip("trackio")
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", TRACKIO_READBACK, str(tmp_path / "run")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(next(line for line in out.stdout.splitlines() if line.startswith('{"logs"')))
    assert result["runs"] == ["run"] and result["seed"] == 7
    assert [{k: v for k, v in r.items() if k != "timestamp"} for r in result["logs"]] == [
        {"step": 1, "loss": 2.0},
        {"step": 2, "loss": 1.5, "val_accuracy": 0.25},
    ]
    assert (tmp_path / "trackio" / "selftaught.db").is_file()
