"""The adaptive decoder head: uniform at start, argmax ties to the lowest temperature, seeded
sampling, save/load next to (not inside) a model directory, bad settings refused."""

import math

import pytest
import torch

from selftaught.models.adaptive import AdaptiveDecoder, Level


def test_a_new_head_is_uniform_and_its_argmax_is_greedy():
    head = AdaptiveDecoder(8)
    logps = head(torch.randn(4, 5, 8))
    assert logps.shape == (4, 5, 6)
    assert torch.allclose(logps, torch.full_like(logps, -math.log(6)))
    index, tau = head.select(torch.randn(3, 8), sample=False)
    assert index.tolist() == [0, 0, 0] and tau.tolist() == [0.0, 0.0, 0.0]


def test_sampling_follows_the_head_and_is_seeded():
    head = AdaptiveDecoder(4, [0.0, 1.0], depth=1)
    with torch.no_grad():
        head.mlp[-1].bias.copy_(torch.tensor([0.0, math.log(3.0)]))  # P = (.25, .75)
    hidden = torch.zeros(4000, 4)
    index, tau = head.select(hidden, sample=True, generator=torch.Generator().manual_seed(0))
    assert index.float().mean().item() == pytest.approx(0.75, abs=0.03)
    again, _ = head.select(hidden, sample=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(index, again) and set(tau.tolist()) == {0.0, 1.0}


def test_save_and_load_round_trip(tmp_path):
    head = AdaptiveDecoder(8, [0.0, 0.5, 1.0], depth=2, width=16, level=Level.TOKEN)
    with torch.no_grad():
        for p in head.parameters():
            p.normal_()
    loaded = AdaptiveDecoder.load(head.save(tmp_path / "head"))
    hidden = torch.randn(3, 8)
    assert torch.equal(loaded(hidden), head(hidden))
    assert (loaded.temperatures, loaded.level, loaded.width) == ([0.0, 0.5, 1.0], Level.TOKEN, 16)
    with pytest.raises(ValueError, match="holds no adaptive head"):
        AdaptiveDecoder.load(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperatures": [0.5, 0.0]}, "distinct, increasing"),
        ({"temperatures": [-0.1, 1.0]}, ">= 0"),
        ({"temperatures": []}, "distinct"),
        ({"depth": 0}, "depth must be >= 1"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdaptiveDecoder(8, **kwargs)
