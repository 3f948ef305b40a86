"""The sync schedule of online RL: when the generator and the reference are refreshed from the policy.

One integer `s` (papers_B §1.1, §1.4) interpolates between offline and online training:

    s = 0   offline: the generator is the seed model for the whole run (all rollouts up front)
    s = 1   online: the generator is refreshed before every optimizer step
    s > 1   semi-online: refreshed before steps 1, s + 1, 2s + 1, ...

Steps are 1-based (`step` k is the k-th optimizer update) and the policy *version* is the number of
updates its weights have taken, so before step k the policy is version k - 1. fairseq2 tests
`k % s == 0` with a 0-based k; `is_sync_step` is the same test on `step - 1`. Between two sync
points the generator is frozen, so the rollouts of the whole window can be generated in one burst
at its start (`burst_steps`); the staleness of a rollout used at step k is `(k - 1) - version`.

The reference model has its own interval (`ref_sync_every`, 0 = never: the frozen seed).
"""

from __future__ import annotations

from typing import Protocol

import torch

from selftaught.configs.train import check_interval as check_interval
from selftaught.engines.base import Engine


class SyncableEngine(Engine, Protocol):
    """A generator whose weights the trainer can refresh.

    `HFEngine` copies the policy's state into its own model. A remote OpenAI-compatible server
    fits the same slot for offline and semi-online runs: its `sync_weights` saves the policy as a
    checkpoint directory and asks the server to reload it (one reload per `s` steps).
    """

    policy_version: int
    """The policy version the engine's weights are from (stamped on every completion)."""

    def sync_weights(self, source_model: torch.nn.Module, policy_version: int) -> None: ...


def is_sync_step(step: int, every: int) -> bool:
    """Whether the weights are refreshed from the policy right before optimizer step `step` (1-based).

    Step 1 is always a sync point (generator = policy = seed); `every = 0` means only step 1.
    """
    if step < 1:
        raise ValueError(f"steps are 1-based, got step {step}")
    return step == 1 if every == 0 else (step - 1) % every == 0


def synced_version(step: int, every: int) -> int:
    """Policy version the synced copy holds during step `step`: that of the latest sync point."""
    if every == 0:
        return 0
    return (step - 1) // every * every


def staleness(step: int, policy_version: int) -> int:
    """Updates between the weights that sampled a rollout and the policy it trains at `step`."""
    return step - 1 - policy_version


def burst_steps(step: int, every: int, num_steps: int) -> list[int]:
    """The steps whose rollouts are generated together at sync step `step`: the whole window up to
    the next sync point (every remaining step when `every = 0`), capped at `num_steps`."""
    if not is_sync_step(step, every):
        raise ValueError(f"step {step} is not a sync point of interval {every}")
    end = num_steps if every == 0 else min(step + every - 1, num_steps)
    return list(range(step, end + 1))


@torch.no_grad()
def copy_weights(source: torch.nn.Module, target: torch.nn.Module) -> None:
    """Load `source`'s state into `target` (the reference re-sync); names must match (unwrap first)."""
    target.load_state_dict(source.state_dict())
