import json
from dataclasses import dataclass

import pytest
import torch

from selftaught.runlog import RunLog, read_metrics


@dataclass
class Tiny:
    lr: float = 0.1


def test_run_dir_holds_config_metrics_and_log(tmp_path):
    with RunLog(tmp_path / "run", Tiny(), quiet=True) as run:
        run.log(1, loss=torch.tensor(0.5), acc=0.25)
        run.log(2, loss=float("nan"))
        run.info("hello")
    records = read_metrics(tmp_path / "run")
    assert [r["step"] for r in records] == [1, 2]
    assert records[0]["loss"] == 0.5 and records[0]["acc"] == 0.25
    assert records[1]["loss"] == "nan"
    assert "lr: 0.1" in (tmp_path / "run" / "config.yaml").read_text()
    assert "hello" in (tmp_path / "run" / "log.txt").read_text()
    json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])


def test_the_progress_bar_shows_the_latest_loss_reward_and_accuracy(tmp_path):
    with RunLog(tmp_path / "run", Tiny()) as run:
        bar_texts = []
        for step in run.progress(range(1, 4), total=3):
            run.log(step, loss=1.0 / step, reward=0.25 * step, grad_norm=3.0, note="text")
            if step == 2:
                run.log(step, val_accuracy=0.612, val_stderr=0.034)
            bar_texts.append(str(run._bar))
    assert run.postfix == {"loss": "0.3333", "reward": "0.75", "val_accuracy": "0.612"}
    assert "loss=1, reward=0.25" in bar_texts[0] and "grad_norm" not in bar_texts[0]
    assert "loss=0.3333, reward=0.75, val_accuracy=0.612" in bar_texts[2]  # kept until the next eval


def test_disabled_run_log_writes_nothing(tmp_path):
    run = RunLog(tmp_path / "rank1", Tiny(), enabled=False)
    run.log(1, loss=1.0)
    run.info("x")
    assert list(run.progress(range(3))) == [0, 1, 2]
    assert not (tmp_path / "rank1").exists()
    with pytest.raises(FileNotFoundError, match="run directory"):
        read_metrics(tmp_path / "rank1")


def test_a_run_directory_records_what_ran_it_at_every_start(tmp_path):
    import json

    from selftaught.runlog import RunLog

    for _ in range(2):  # a start and a resume
        RunLog(tmp_path / "run", quiet=True).close()
    starts = json.loads((tmp_path / "run" / "env.json").read_text())
    assert len(starts) == 2
    assert {"command", "python", "versions", "git_commit", "cpu", "gpu", "platform", "time"} <= starts[
        0
    ].keys()
    assert starts[0]["versions"]["selftaught"] and starts[0]["versions"]["torch"]


def test_version_flag(capsys):
    import pytest

    from selftaught import __version__
    from selftaught.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"selftaught {__version__}"
