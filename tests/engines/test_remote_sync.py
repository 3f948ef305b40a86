"""`RemoteSyncEngine` against an in-process `selftaught serve`: after `sync_weights` the server's greedy
tokens and logprobs are those of the synced policy; bad checkpoints are refused and the old weights
keep serving; a reload never splits a batch; old checkpoints are pruned. Reload needs an API key and
the allowed directories, and its refusals say nothing of the server's filesystem."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from selftaught.engines.base import SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.engines.openai import OpenAIConfig
from selftaught.engines.remote import RemoteSyncEngine
from selftaught.engines.scripted import ScriptedEngine
from selftaught.engines.server import EngineServer
from selftaught.models.io import load_model, save_model
from selftaught.train.sync import SyncableEngine
from selftaught.types import Completion, Prompt
from tests.conftest import write_tiny_model
from tests.engines.conftest import build_gpt2

MODEL = "tiny"
KEY = "s3cret"
KEY_ENV = "REMOTE_SYNC_TEST_KEY"
GREEDY = SamplingParams(temperature=0, max_new_tokens=8)
PROMPTS = [
    Prompt(id="text", messages=[], text="12 + 7 ="),
    Prompt(id="chat", messages=[{"role": "user", "content": "Name an animal."}]),
]


@pytest.fixture
def served(tiny_model_dir: str) -> tuple[Any, Any]:
    """A fresh (model, tokenizer) per test: reloads change the served weights in place."""
    return load_model(tiny_model_dir)


@pytest.fixture
def server(served, tmp_path, monkeypatch) -> Iterator[EngineServer]:
    """Serves with a key (in `KEY_ENV`, where `remote_engine` reads it) and reloads from `tmp_path`."""
    monkeypatch.setenv(KEY_ENV, KEY)
    engine = HFEngine(*served)
    with EngineServer(
        engine, served[1], MODEL, port=0, api_key=KEY, allow_reload=[tmp_path]
    ).start() as running:
        yield running


def remote_engine(server: EngineServer, root: Path, tokenizer: Any, **kwargs: Any) -> RemoteSyncEngine:
    config = OpenAIConfig(
        model=MODEL, base_url=server.url, api_key_env=KEY_ENV, logprobs=True, token_ids=True
    )
    return RemoteSyncEngine(config, tokenizer, root, **kwargs)


def perturbed_policy(tiny_model_dir: str, seed: int = 0) -> Any:
    """The served model's weights plus noise: a policy some updates away from the seed."""
    policy, _ = load_model(tiny_model_dir)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in policy.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))
    return policy


def greedy_outputs(engine: Any) -> list[Completion]:
    return [samples[0] for samples in engine.generate(PROMPTS, GREEDY)]


def assert_same_outputs(actual: list[Completion], expected: list[Completion]) -> None:
    for got, want in zip(actual, expected, strict=True):
        assert (got.text, got.token_ids, got.finish_reason) == (want.text, want.token_ids, want.finish_reason)
        assert got.logprobs == pytest.approx(want.logprobs, abs=1e-5)


def served_version(server: EngineServer) -> int:
    (card,) = httpx.get(f"{server.url}/models", headers=auth(KEY)).json()["data"]
    return card["metadata"]["policy_version"]


def auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def post_reload(server: EngineServer, body: dict[str, Any], key: str | None = KEY) -> httpx.Response:
    return httpx.post(f"{server.url}/admin/reload", json=body, headers=auth(key), timeout=30)


def test_sync_makes_the_server_generate_with_the_policy(server, served, tiny_model_dir, tmp_path):
    remote = remote_engine(server, tmp_path / "ckpt", served[1])
    assert isinstance(remote, SyncableEngine)
    seed_outputs = greedy_outputs(HFEngine(*load_model(tiny_model_dir)))
    assert_same_outputs(greedy_outputs(remote), seed_outputs)

    policy = perturbed_policy(tiny_model_dir)
    policy_outputs = greedy_outputs(HFEngine(policy, served[1]))
    for policy_output, seed_output in zip(policy_outputs, seed_outputs, strict=True):  # a visible change
        assert policy_output.logprobs[0] != pytest.approx(seed_output.logprobs[0], abs=1e-3)
    remote.sync_weights(policy, 3)

    outputs = greedy_outputs(remote)
    assert_same_outputs(outputs, policy_outputs)
    assert {c.policy_version for c in outputs} == {3}
    assert remote.policy_version == served_version(server) == 3
    reloaded, tokenizer = load_model(str(tmp_path / "ckpt" / "policy-3"))
    assert tokenizer.get_vocab() == served[1].get_vocab()
    assert_same_outputs(greedy_outputs(HFEngine(reloaded, tokenizer)), policy_outputs)


def test_bad_checkpoints_are_refused_and_the_old_weights_serve_on(server, served, tiny_model_dir, tmp_path):
    before = greedy_outputs(HFEngine(*load_model(tiny_model_dir)))
    wider = write_tiny_model(tmp_path / "wider", size="s")
    gpt2 = save_model(build_gpt2(served[1]), served[1], tmp_path / "gpt2")
    cases = [  # a missing directory, one without a model, another shape, another architecture: one answer
        ({"model": str(tmp_path / "missing"), "policy_version": 5}, "could not load"),
        ({"model": str(tmp_path), "policy_version": 5}, "could not load"),
        ({"model": wider, "policy_version": 5}, "could not load"),
        ({"model": str(gpt2), "policy_version": 5}, "could not load"),
        ({"model": wider}, "`policy_version` is required"),
        ({"model": wider, "policy_version": "5"}, "`policy_version` must be int"),
    ]
    for body, message in cases:
        response = post_reload(server, body)
        assert response.status_code == 400, body
        assert message in response.json()["error"]["message"]
        assert str(tmp_path) not in response.text and "exist" not in response.text

    remote = remote_engine(server, tmp_path / "ckpt", served[1])
    wider_policy, _ = load_model(wider)
    with pytest.raises(RuntimeError, match="keeps serving policy version 0.*could not load"):
        remote.sync_weights(wider_policy, 1)
    assert remote.policy_version == served_version(server) == 0
    assert_same_outputs(greedy_outputs(remote), before)


def test_requests_during_a_reload_run_on_the_old_or_the_new_weights(server, served, tiny_model_dir, tmp_path):
    policy = perturbed_policy(tiny_model_dir)
    old = greedy_outputs(HFEngine(*load_model(tiny_model_dir)))
    new = greedy_outputs(HFEngine(policy, served[1]))
    directory = save_model(policy, served[1], tmp_path / "policy-1")
    remote = remote_engine(server, tmp_path / "ckpt", served[1])
    reloaded = threading.Event()
    answers: list[list[Completion]] = []

    def ask_until_reloaded() -> None:
        while not reloaded.is_set():
            answers.append(greedy_outputs(remote))
        answers.append(greedy_outputs(remote))

    thread = threading.Thread(target=ask_until_reloaded)
    thread.start()
    try:
        assert post_reload(server, {"model": str(directory), "policy_version": 1}).status_code == 200
    finally:
        reloaded.set()
        thread.join()
    for answer in answers:
        for got, old_one, new_one in zip(answer, old, new, strict=True):
            assert got.token_ids in (old_one.token_ids, new_one.token_ids)
            want = old_one if got.token_ids == old_one.token_ids else new_one
            assert got.logprobs == pytest.approx(want.logprobs, abs=1e-5)
    assert_same_outputs(answers[-1], new)


def test_keep_last_prunes_older_policy_checkpoints_only(server, served, tiny_model_dir, tmp_path):
    root = tmp_path / "ckpt"
    (root / "policy-notes").mkdir(parents=True)
    (root / "policy-9.txt").write_text("not a checkpoint")
    remote = remote_engine(server, root, served[1], keep_last=2)
    for version in [1, 2, 3, 4]:
        remote.sync_weights(perturbed_policy(tiny_model_dir, seed=version), version)
    assert sorted(p.name for p in root.iterdir()) == ["policy-3", "policy-4", "policy-9.txt", "policy-notes"]
    remote.keep_last = 1
    remote.sync_weights(perturbed_policy(tiny_model_dir), 2)  # a lower version (a resumed run) is kept
    assert sorted(p.name for p in root.iterdir()) == ["policy-2", "policy-9.txt", "policy-notes"]


def test_reload_needs_the_api_key(server, served, tiny_model_dir, tmp_path, monkeypatch):
    directory = save_model(perturbed_policy(tiny_model_dir), served[1], tmp_path / "policy-1")
    for key in [None, "wrong"]:
        assert post_reload(server, {"model": str(directory), "policy_version": 1}, key).status_code == 401
    remote = remote_engine(server, tmp_path / "ckpt", served[1])
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(RuntimeError, match="HTTP 401"):
        remote.sync_weights(perturbed_policy(tiny_model_dir), 1)
    monkeypatch.setenv(KEY_ENV, KEY)
    remote.sync_weights(perturbed_policy(tiny_model_dir), 1)
    assert served_version(server) == 1


def test_reload_is_off_unless_directories_are_allowed_and_a_key_is_set(served, tiny_model_dir, tmp_path):
    engine = HFEngine(*served)
    with EngineServer(engine, served[1], MODEL, port=0, api_key=KEY).start() as server:
        response = post_reload(server, {"model": tiny_model_dir, "policy_version": 1})
    assert response.status_code == 403 and "--allow-reload" in response.json()["error"]["message"]
    assert engine.policy_version == 0
    with pytest.raises(ValueError, match="needs an API key"):
        EngineServer(engine, served[1], MODEL, port=0, allow_reload=[tmp_path])


def test_only_directories_in_the_allowed_ones_are_loaded(server, served, tiny_model_dir, tmp_path):
    """A model outside the allowed directory is refused however it is named: directly, through `..`,
    through a symlink, or relatively; the refusal is the same whether the path exists or not."""
    (tmp_path / "link").symlink_to(tiny_model_dir)
    outside = [
        tiny_model_dir,
        os.path.join(tmp_path, os.path.relpath(tiny_model_dir, tmp_path)),  # tmp_path/../..
        str(tmp_path / "link"),
        os.path.relpath(tiny_model_dir),
        "/no/such/directory",
        "/nul\x00byte",
    ]
    for directory in outside:
        response = post_reload(server, {"model": directory, "policy_version": 1})
        assert response.status_code == 403, directory
        assert response.json()["error"]["message"] == "not an allowed model directory"
    assert served_version(server) == 0
    inside = save_model(perturbed_policy(tiny_model_dir), served[1], tmp_path / "sub" / "policy-1")
    assert post_reload(server, {"model": str(inside), "policy_version": 1}).status_code == 200
    assert served_version(server) == 1


def test_engines_without_reload_answer_501(served, tiny_model_dir, tmp_path):
    engine = ScriptedEngine({"p": ["a"]})
    with EngineServer(
        engine, served[1], MODEL, port=0, api_key=KEY, allow_reload=[tmp_path]
    ).start() as server:
        response = post_reload(server, {"model": tiny_model_dir, "policy_version": 1})
        assert served_version(server) is None
    assert response.status_code == 501
    assert "ScriptedEngine" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"keep_last": 0}, "keep_last must be >= 1"),
        ({"reload_timeout_s": 0}, "reload_timeout_s must be > 0"),
    ],
)
def test_bad_settings_name_the_field(kwargs, message, tmp_path):
    config = OpenAIConfig(model=MODEL)
    with pytest.raises(ValueError, match=message):
        RemoteSyncEngine(config, None, tmp_path, **kwargs)


def test_a_response_cache_is_refused(tmp_path):
    config = OpenAIConfig(model=MODEL, cache_path=str(tmp_path / "cache.sqlite"))
    with pytest.raises(ValueError, match="cache_path must be unset"):
        RemoteSyncEngine(config, None, tmp_path)
