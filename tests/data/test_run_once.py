"""run_once: a result computed once per directory and config; another config's directory is an error."""

import json

import pytest

from selftaught.data.shards import DONE_FILE, STARTED_FILE, run_once


class Stage:
    """Counts its calls; writes a file into the run directory like a training run; may crash."""

    def __init__(self, out_dir, result=None, crash: bool = False):
        self.out_dir = out_dir
        self.result = {"accuracy": 0.5, "steps": [1, 2]} if result is None else result
        self.crash = crash
        self.num_calls = 0

    def __call__(self):
        self.num_calls += 1
        (self.out_dir / "checkpoint.txt").write_text(str(self.num_calls))
        if self.crash:
            raise RuntimeError("killed mid-run")
        return self.result


def test_first_run_calls_fn_and_writes_done_last(tmp_path):
    stage = Stage(tmp_path)
    assert run_once(tmp_path, "fp-a", stage) == {"accuracy": 0.5, "steps": [1, 2]}
    done = json.loads((tmp_path / DONE_FILE).read_text())
    assert (done["fingerprint"], done["result"]) == ("fp-a", stage.result) and "created" in done
    assert json.loads((tmp_path / STARTED_FILE).read_text()) == {"fingerprint": "fp-a"}
    assert stage.num_calls == 1


def test_same_fingerprint_returns_the_stored_result_without_running(tmp_path):
    first = run_once(tmp_path, "fp-a", Stage(tmp_path))
    again = Stage(tmp_path, result={"accuracy": 0.9})
    assert run_once(tmp_path, "fp-a", again) == first
    assert again.num_calls == 0


def test_another_fingerprint_names_both_and_suggests_a_new_out_dir(tmp_path):
    run_once(tmp_path, "fp-a", Stage(tmp_path))
    other = Stage(tmp_path)
    with pytest.raises(
        ValueError, match=r"a finished run of another config \(fingerprint fp-a.*fp-b\); pass a new out_dir"
    ):
        run_once(tmp_path, "fp-b", other)
    assert other.num_calls == 0


def test_interrupted_run_leaves_no_done_file_and_reruns_with_the_same_config(tmp_path):
    with pytest.raises(RuntimeError, match="killed"):
        run_once(tmp_path, "fp-a", Stage(tmp_path, crash=True))
    assert not (tmp_path / DONE_FILE).exists() and not (tmp_path / f"{DONE_FILE}.tmp").exists()
    resumed = Stage(tmp_path)
    assert run_once(tmp_path, "fp-a", resumed) == resumed.result
    assert resumed.num_calls == 1


def test_interrupted_run_of_another_config_is_not_resumed(tmp_path):
    with pytest.raises(RuntimeError):
        run_once(tmp_path, "fp-a", Stage(tmp_path, crash=True))
    other = Stage(tmp_path)
    with pytest.raises(ValueError, match="an interrupted run of another config"):
        run_once(tmp_path, "fp-b", other)
    assert other.num_calls == 0


def test_result_must_be_a_json_dict(tmp_path):
    with pytest.raises(TypeError, match="must return a dict"):
        run_once(tmp_path / "a", "fp", lambda: [1, 2])
    with pytest.raises(TypeError):
        run_once(tmp_path / "b", "fp", lambda: {"model": object()})
    assert not (tmp_path / "a" / DONE_FILE).exists() and not (tmp_path / "b" / DONE_FILE).exists()


def test_result_is_read_back_so_fresh_and_skipped_runs_agree(tmp_path):
    fresh = run_once(tmp_path, "fp", lambda: {"pair": (1, 2)})
    assert fresh == run_once(tmp_path, "fp", lambda: {}) == {"pair": [1, 2]}
