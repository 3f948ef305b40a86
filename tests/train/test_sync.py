"""The sync schedule: which steps refresh the generator, the version it holds, staleness, bursts."""

import pytest
import torch

from selftaught.train.sync import (
    burst_steps,
    check_interval,
    copy_weights,
    is_sync_step,
    staleness,
    synced_version,
)


@pytest.mark.parametrize(
    ("every", "sync_steps"),
    [(0, [1]), (1, list(range(1, 11))), (3, [1, 4, 7, 10]), (10, [1]), (4, [1, 5, 9])],
)
def test_sync_points_are_step_1_then_every_s_steps(every, sync_steps):
    assert [step for step in range(1, 11) if is_sync_step(step, every)] == sync_steps


@pytest.mark.parametrize("every", [0, 1, 2, 3, 5])
def test_the_synced_version_is_that_of_the_latest_sync_point_and_staleness_counts_updates(every):
    latest = 0
    for step in range(1, 13):
        if is_sync_step(step, every):
            latest = step - 1  # the policy has taken step - 1 updates before step `step`
        assert synced_version(step, every) == latest
        assert staleness(step, synced_version(step, every)) == step - 1 - latest
    if every:
        assert max(staleness(step, synced_version(step, every)) for step in range(1, 13)) == every - 1


@pytest.mark.parametrize(("every", "num_steps"), [(1, 5), (2, 5), (3, 7), (4, 4), (0, 6)])
def test_bursts_cover_every_step_once_and_start_at_sync_points(every, num_steps):
    bursts = [
        burst_steps(step, every, num_steps) for step in range(1, num_steps + 1) if is_sync_step(step, every)
    ]
    assert [step for burst in bursts for step in burst] == list(range(1, num_steps + 1))
    assert all(len(burst) <= (every or num_steps) for burst in bursts)
    assert all(synced_version(step, every) == burst[0] - 1 for burst in bursts for step in burst)


def test_bad_intervals_and_steps_are_errors():
    with pytest.raises(ValueError, match="sync_every must be >= 0"):
        check_interval("sync_every", -1)
    with pytest.raises(ValueError, match="1-based"):
        is_sync_step(0, 2)
    with pytest.raises(ValueError, match="not a sync point"):
        burst_steps(2, 3, 10)


def test_copy_weights_makes_the_target_equal_and_independent():
    source, target = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    copy_weights(source, target)
    assert torch.equal(source.weight, target.weight) and torch.equal(source.bias, target.bias)
    with torch.no_grad():
        source.weight.add_(1.0)
    assert not torch.equal(source.weight, target.weight)
