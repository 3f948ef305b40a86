"""A remote OpenAI-compatible generator whose weights the trainer syncs through checkpoints.

`RemoteSyncEngine` generates through `OpenAIEngine` and satisfies `train.sync.SyncableEngine`:
`sync_weights(policy, k)` saves the policy and its tokenizer to `<checkpoint_root>/policy-<k>`
(`save_model`: safetensors + config, a directory any HF loader reads), asks the server to reload
it (`POST <base_url>/admin/reload`, the route of `selftaught serve`), checks the answered version,
and deletes older `policy-*` directories beyond `keep_last`.

One save and one reload per sync (seconds for small models, more for large ones) is cheap next to
a window of rollouts, so this suits offline (s = 0: one sync at the start) and semi-online
(s > 1) training; at s = 1 an in-process `HFEngine`, which copies tensors, is the better generator.
The server must read `checkpoint_root` at the same path (same machine or a shared filesystem),
and only one trainer may drive a server: completions are stamped with the version this engine
last synced. `selftaught serve` reloads only with a key and from allowed directories: start it with
`--api-key-env VAR --allow-reload <checkpoint_root>` and give this engine the key in the environment
variable `config.api_key_env` (online-rl: `generator.api_key_env`, default `SELFTAUGHT_GENERATOR_KEY`).

vLLM 0.32 has no equivalent single route. With `VLLM_SERVER_DEV_MODE=1`, `vllm serve` mounts
development routes at the server root (not under `/v1`) that do the same in steps: `POST
/pause?mode=wait` (finish in-flight requests; its default `clear_cache=true` also drops the prefix
cache, computed with the old weights), `POST /collective_rpc` with `{"method": "reload_weights",
"kwargs": {"weights_path": "<dir>"}}` (the workers reload in place from disk), `POST
/update_weight_version` with `{"new_version": "<k>"}`, then `POST /resume`. Only `selftaught
serve`'s route is implemented and tested here.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from selftaught.engines.base import SamplingParams, ServerError
from selftaught.engines.openai import OpenAIConfig, OpenAIEngine, request_error_message
from selftaught.models.io import save_model
from selftaught.types import Completion, Prompt

CHECKPOINT_NAME = re.compile(r"policy-(\d+)")
"""Directory names `sync_weights` writes (and prunes): `policy-<version>`."""


class RemoteSyncEngine:
    """Generate on an OpenAI-compatible server; `sync_weights` makes it serve the policy's weights.

    See the module doc. `engine` is the `OpenAIEngine` that generates (its `stats` count requests);
    every completion carries `policy_version`, the version of the last successful sync (initially
    the constructor's, which must be the version the server serves at the start). `config` must
    not set `cache_path`: a cached response would come from older weights under the same model name.
    """

    def __init__(
        self,
        config: OpenAIConfig,
        tokenizer: Any,
        checkpoint_root: str | Path,
        *,
        keep_last: int = 2,
        policy_version: int = 0,
        reload_timeout_s: float = 600.0,
        show_progress: bool = False,
    ) -> None:
        if len(config.base_urls) != 1:
            raise ValueError(
                f"openai.base_url lists {len(config.base_urls)} servers, but a synced generator reloads "
                "the weights of one; give it one URL"
            )
        if config.cache_path is not None:
            raise ValueError(
                "openai.cache_path must be unset for a synced generator: cached responses would come from "
                "older weights served under the same model name"
            )
        if keep_last < 1:
            raise ValueError(
                f"keep_last must be >= 1 (the served checkpoint is always kept), got {keep_last}"
            )
        if reload_timeout_s <= 0:
            raise ValueError(f"reload_timeout_s must be > 0, got {reload_timeout_s}")
        self.engine = OpenAIEngine(config, show_progress=show_progress)
        self.tokenizer = tokenizer
        self.checkpoint_root = Path(checkpoint_root)
        self.keep_last = keep_last
        self.policy_version = policy_version
        self.reload_timeout_s = reload_timeout_s

    def generate(self, prompts: list[Prompt], sampling: SamplingParams) -> list[list[Completion]]:
        """`result[i][j]` is the j-th of `sampling.n` samples for `prompts[i]` (Engine Protocol)."""
        results = self.engine.generate(prompts, sampling)
        for completions in results:
            for completion in completions:
                completion.policy_version = self.policy_version
        return results

    def sync_weights(self, source_model: Any, policy_version: int) -> None:
        """Save `source_model` as `policy-<policy_version>` and have the server serve it.

        `source_model` is a `transformers` model (unwrap DDP, gather FSDP weights first). Raises
        RuntimeError, with the server's message, when the reload fails; the server then keeps its
        old weights and `policy_version` is unchanged.
        """
        if not hasattr(source_model, "save_pretrained"):
            raise ValueError(
                f"sync_weights needs a transformers model with save_pretrained, got {type(source_model).__name__}; "
                "unwrap DDP/FSDP (model.module) first"
            )
        directory = self._save(source_model, policy_version)
        self._request_reload(directory, policy_version)
        self.policy_version = policy_version
        self._prune(keep=directory)

    def _save(self, model: Any, policy_version: int) -> Path:
        """Write the checkpoint to a temporary name, then rename: the server never reads half a save."""
        directory = (self.checkpoint_root / f"policy-{policy_version}").resolve()
        partial = directory.with_name(f".{directory.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        save_model(model, self.tokenizer, partial)
        if directory.exists():  # re-synced after a resume: the new save replaces the old one
            shutil.rmtree(directory)
        os.replace(partial, directory)
        return directory

    def _request_reload(self, directory: Path, policy_version: int) -> None:
        import httpx

        config = self.engine.config
        api_key = os.environ.get(config.api_key_env)
        url = f"{config.base_urls[0].rstrip('/')}/admin/reload"
        try:
            response = httpx.post(
                url,
                json={"model": str(directory), "policy_version": policy_version},
                headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
                timeout=self.reload_timeout_s,
            )
        except httpx.TransportError as err:
            raise ServerError(
                f"could not ask {url} to reload {directory}: {type(err).__name__}: {err}"
            ) from err
        if response.status_code != 200:
            raise ServerError(
                f"the server did not reload {directory} and keeps serving policy version "
                f"{self.policy_version}: {request_error_message(response, config)}"
            )
        answered = response.json().get("policy_version")
        if answered != policy_version:
            raise RuntimeError(
                f"the server answered the reload of {directory} with policy_version {answered!r}, "
                f"expected {policy_version}; is another trainer reloading it?"
            )

    def _prune(self, keep: Path) -> None:
        """Delete `policy-<k>` directories but `keep` and the `keep_last - 1` highest other versions."""
        versions = {
            int(match.group(1)): path
            for path in self.checkpoint_root.iterdir()
            if path.is_dir() and (match := CHECKPOINT_NAME.fullmatch(path.name))
        }
        others = sorted(version for version, path in versions.items() if path.resolve() != keep)
        for version in others[: max(0, len(others) - (self.keep_last - 1))]:
            shutil.rmtree(versions[version])
