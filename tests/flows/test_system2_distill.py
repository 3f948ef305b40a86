"""The system2-distill flow end to end on a scripted System 1 / System 2 of the world (the oracle:
heuristic `<s1>`, noisy `<s2>` scratchpad) and a real random-init student trained by the sft recipe;
stage reuse; the presets and the table."""

import json

import pytest

from selftaught.config import apply_overrides
from selftaught.flows import system2_distill as flow
from selftaught.presets import get_preset
from tests.flows.system2_oracle import patch


def smoke(tmp_path, model, *overrides):
    cfg = get_preset("system2-distill", "tiny-smoke")
    return apply_overrides(cfg, [f"out_dir={tmp_path / 'run'}", f"model={model}", "sft_steps=3", *overrides])


def test_letters_majority_end_to_end(tiny_model_dir, tmp_path, monkeypatch):
    oracle = patch(tiny_model_dir, noise=0.1, monkeypatch=monkeypatch)
    result = flow.run(smoke(tmp_path, tiny_model_dir))
    arms = {row["arm"]: row for row in result["arms"]}
    assert arms["system2 (cot)"]["accuracy"] > arms["system1"]["accuracy"]  # the oracle's S2 beats its S1
    assert arms["system2 (cot)"]["tokens"] > 5 * arms["system1"]["tokens"] > 0
    assert "distilled system1" in arms and 0 <= arms["distilled system1"]["parsed"] <= 1
    kept = result["curation"]
    assert kept["num_items"] == 24 and 0 < kept["num_kept"] <= 24
    assert kept["kept_target_accuracy"] == 1.0  # with 10% slips per word, 2/4 agreeing samples are right
    data = [json.loads(line) for line in (tmp_path / "run" / "data" / "sft.jsonl").read_text().splitlines()]
    assert len(data) == kept["num_kept"]
    user, assistant = data[0]["messages"]
    assert user["content"].startswith("<s1> last letters: ") and assistant["content"].isalpha()  # answer only
    table = (tmp_path / "run" / "table.md").read_text()
    assert "| distilled system1 |" in table and "tokens / input" in table

    calls = oracle.calls
    again = flow.run(smoke(tmp_path, tiny_model_dir))  # every stage is done: nothing is sampled again
    assert oracle.calls == calls and again["arms"] == result["arms"]


def test_judge_swap_curation_and_inconsistency(tiny_model_dir, tmp_path, monkeypatch):
    patch(tiny_model_dir, noise=0.2, monkeypatch=monkeypatch)
    result = flow.run(smoke(tmp_path, tiny_model_dir, "task=world-judge", "curation=swap"))
    arms = {row["arm"]: row for row in result["arms"]}
    assert arms["system1"]["inconsistent"] > 0.5  # the position-biased heuristic says A in both orders
    assert arms["system2 (cot)"]["inconsistent"] == 0 and arms["system2 (cot)"]["accuracy"] == 1  # greedy
    assert arms["system2 (cot)"]["tokens"] > 5 * arms["system1"]["tokens"]
    kept = result["curation"]
    assert kept["num_kept"] + kept["num_no_answer"] + kept["num_disagree"] == 24
    assert (tmp_path / "run" / "system2-swapped" / "manifest.json").is_file()
    data = (tmp_path / "run" / "data" / "sft.jsonl").read_text()
    assert "[[A]]" in data or "[[B]]" in data


@pytest.mark.parametrize("curation", ["none", "usc"])
def test_other_curations(tiny_model_dir, tmp_path, monkeypatch, curation):
    patch(tiny_model_dir, noise=0.2, monkeypatch=monkeypatch)
    result = flow.run(smoke(tmp_path, tiny_model_dir, f"curation={curation}"))
    kept = result["curation"]
    if curation == "none":  # the oracle always parses: every input kept, some targets wrong
        assert kept["num_kept"] == 24 and kept["kept_target_accuracy"] < 1
    else:  # the oracle's USC names a majority response (ties: the first)
        usc = (tmp_path / "run" / "usc" / "part-00000.jsonl").read_text().splitlines()
        assert all(json.loads(line)["choice"] is not None for line in usc)
        assert kept["num_kept"] == 24 and kept["curation_tokens_per_input"] > 0


@pytest.mark.parametrize(
    "override, message",
    [
        ("curation=swap", "swap only for a pairwise task"),
        ("task=gsm8k", "GSM8K-format JSONL"),
        ("curation=vote", "curation"),
        ("samples=0", "samples"),
    ],
)
def test_config_errors_name_the_field(override, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(get_preset("system2-distill", "tiny"), [override])


@pytest.mark.parametrize("preset", ["tiny", "tiny-smoke", "gemma3-270m", "qwen7b-vllm"])
def test_presets_are_valid(preset):
    cfg = get_preset("system2-distill", preset)
    assert cfg.method in flow.METHODS
