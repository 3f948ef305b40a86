from dataclasses import dataclass, field
from typing import Literal

import pytest

from selftaught.config import apply_overrides, describe, dump_yaml, from_dict, load_yaml, to_dict


@dataclass
class Optim:
    lr: float = 1e-3
    """Peak learning rate."""
    schedule: Literal["constant", "cosine"] = "cosine"
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass
class Cfg:
    optim: Optim = field(default_factory=Optim)
    steps: int = 10
    """Optimizer steps."""
    name: str | None = None
    levels: list[int] = field(default_factory=lambda: [1, 2])
    flag: bool = False
    weights: dict[str, float] = field(default_factory=lambda: {"chain": 1.0})


def test_overrides_parse_and_check_types():
    cfg = apply_overrides(
        Cfg(),
        [
            "optim.lr=1e-4",
            "steps=5",
            "name=abc",
            "levels=[1,2,3]",
            "flag=true",
            "optim.betas=[0.9, 0.98]",
            "weights={chain: 0.5, direct: 2}",
        ],
    )
    assert cfg.optim.lr == 1e-4 and cfg.steps == 5 and cfg.name == "abc" and cfg.flag is True
    assert cfg.levels == [1, 2, 3] and cfg.optim.betas == (0.9, 0.98)
    assert cfg.weights == {"chain": 0.5, "direct": 2.0} and isinstance(cfg.weights["direct"], float)
    assert apply_overrides(cfg, ["name=null"]).name is None
    assert Cfg().steps == 10  # the input is not mutated


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lrr=1", "unknown config key 'optim.lrr' (did you mean 'optim.lr'?)"),
        ("stepz=3", "did you mean 'steps'"),
        ("steps=abc", "config key 'steps': expected int"),
        ("steps=1.5", "config key 'steps': expected int"),
        ("steps=true", "config key 'steps': expected int"),
        ("flag=3", "config key 'flag': expected bool"),
        ("optim.schedule=foo", "not one of ['constant', 'cosine']"),
        ("optim.betas=[0.9]", "expected 2 items"),
        ("steps.x=1", "has no sub-keys"),
        ("levels=[a]", "config key 'levels[0]'"),
        ("nokey", "must look like key=value"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ValueError) as err:
        apply_overrides(Cfg(), [override])
    assert message in str(err.value)


def test_yaml_round_trip(tmp_path):
    cfg = apply_overrides(Cfg(), ["optim.lr=2e-5", "levels=[3]"])
    dump_yaml(cfg, tmp_path / "c.yaml")
    assert load_yaml(Cfg, tmp_path / "c.yaml") == cfg
    (tmp_path / "bad.yaml").write_text("optim:\n  lr: 1\n  momentum: 0.9\n")
    with pytest.raises(ValueError, match="optim.momentum"):
        load_yaml(Cfg, tmp_path / "bad.yaml")


def test_partial_dict_keeps_defaults_and_describe_lists_docs():
    cfg = from_dict(Cfg, {"optim": {"lr": 3}})
    assert cfg.optim.lr == 3.0 and cfg.optim.schedule == "cosine" and cfg.steps == 10
    rows = {key: (value, doc) for key, value, doc in describe(cfg)}
    assert rows["optim.lr"] == (3.0, "Peak learning rate.")
    assert rows["steps"] == (10, "Optimizer steps.")
    assert to_dict(cfg)["optim"]["betas"] == [0.9, 0.999]
