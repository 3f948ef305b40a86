from dataclasses import dataclass, field
from typing import Literal

import pytest

from selftaught.config import apply_overrides, describe, dump_yaml, field_docs, from_dict, load_yaml, to_dict
from selftaught.types import StrEnum


class Loss(StrEnum):
    SIGMOID = "sigmoid"
    IPO = "ipo"


@dataclass
class Task:
    name: str = "chain"
    weight: float = 1.0
    reward_model: str | None = None


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
    loss: Loss = Loss.SIGMOID
    tasks: list[Task] = field(default_factory=lambda: [Task(), Task("direct")])
    maybe_levels: list[int] | None = None
    grid: list[list[int]] = field(default_factory=lambda: [[1, 2]])


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


def test_str_enum_fields_take_value_strings_and_write_them_back(tmp_path):
    cfg = apply_overrides(Cfg(), ["loss=ipo"])
    assert cfg.loss is Loss.IPO
    assert from_dict(Cfg, {"loss": Loss.IPO}).loss is Loss.IPO  # a member is accepted as is
    assert to_dict(cfg)["loss"] == "ipo" and type(to_dict(cfg)["loss"]) is str
    assert "loss: ipo\n" in dump_yaml(cfg, tmp_path / "c.yaml")
    assert load_yaml(Cfg, tmp_path / "c.yaml").loss is Loss.IPO
    assert dict((key, value) for key, value, _ in describe(cfg))["loss"] == "ipo"
    with pytest.raises(ValueError, match=r"config key 'loss': 'hinge' is not one of \['sigmoid', 'ipo'\]"):
        apply_overrides(Cfg(), ["loss=hinge"])


def test_overrides_index_into_lists():
    cfg = apply_overrides(
        Cfg(), ["tasks[1].reward_model=rm/path", "tasks[0].weight=2", "levels[0]=4", "optim.betas[1]=0.9"]
    )
    assert cfg.tasks == [Task(weight=2.0), Task("direct", reward_model="rm/path")]
    assert isinstance(cfg.tasks[0].weight, float) and cfg.levels == [4, 2] and cfg.optim.betas == (0.9, 0.9)
    assert apply_overrides(Cfg(), ["grid[0][1]=5"]).grid == [[1, 5]]
    assert Cfg().tasks[0].weight == 1.0  # the input is not mutated


def test_the_index_past_the_end_of_a_config_list_adds_an_item_and_describe_lists_its_keys():
    cfg = apply_overrides(Cfg(), ["tasks[2].name=third", "tasks[2].weight=3", "tasks[3].reward_model=rm"])
    assert cfg.tasks[2:] == [Task("third", weight=3.0), Task(reward_model="rm")]
    rows = {key: value for key, value, _ in describe(cfg)}
    assert rows["tasks[2].name"] == "third" and rows["tasks[3].reward_model"] == "rm" and "tasks" not in rows


@dataclass
class Renamed:
    DEPRECATED_KEYS = {"old_steps": "steps"}
    steps: int = 10
    optim: Optim = field(default_factory=Optim)


def test_a_renamed_key_still_works_with_a_one_line_warning(tmp_path, capsys):
    assert apply_overrides(Renamed(), ["old_steps=5"]).steps == 5
    err = capsys.readouterr().err
    assert err == "warning: config key 'old_steps' is deprecated, use 'steps'\n"
    (tmp_path / "c.yaml").write_text("old_steps: 7\n")
    assert load_yaml(Renamed, tmp_path / "c.yaml").steps == 7
    assert "'old_steps' is deprecated" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown config key 'old_step'"):
        apply_overrides(Renamed(), ["old_step=5"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "tasks[3].weight=1",
            "config key 'tasks[3]': index 3 is out of range, 'tasks' has 2 items; index 2 adds",
        ),
        ("levels[5]=1", "'levels' has 2 items"),
        ("maybe_levels[0]=1", "'maybe_levels' has 0 items"),
        ("steps[0]=1", "config key 'steps[0]': 'steps' has type int, it is not a list"),
        ("optim.lr[0]=1", "'optim.lr' has type float, it is not a list"),
        ("tasks[0].weigth=1", "unknown config key 'tasks[0].weigth' (did you mean 'tasks[0].weight'?)"),
        ("taskz[0].weight=1", "did you mean 'tasks'"),
        ("tasks[0].weight=abc", "config key 'tasks[0].weight': expected float"),
        ("levels[0]=a", "config key 'levels[0]': expected int"),
        ("tasks[0]=3", "config key 'tasks[0]' must be a mapping of its keys"),
        ("tasks[x].weight=1", "is not a field name with optional [index]"),
        ("tasks[-1].weight=1", "is not a field name with optional [index]"),
    ],
)
def test_bad_list_overrides_name_the_key(override, message):
    with pytest.raises(ValueError) as err:
        apply_overrides(Cfg(), [override])
    assert message in str(err.value)


@dataclass
class RunCfg:
    out_dir: str = "runs/x"
    """Where the run writes."""
    seed: int = 0
    """Random seed."""
    loss: Loss = Loss.SIGMOID
    """The loss variant."""


@dataclass
class ChildCfg(RunCfg):
    seed: int = 7
    """Seed of the child recipe."""
    beta: float = 0.1
    """KL weight."""


def test_inherited_fields_and_docs(tmp_path):
    assert field_docs(ChildCfg) == {
        "out_dir": "Where the run writes.",
        "seed": "Seed of the child recipe.",
        "loss": "The loss variant.",
        "beta": "KL weight.",
    }
    cfg = apply_overrides(ChildCfg(), ["out_dir=runs/y", "loss=ipo", "beta=1"])
    assert cfg == ChildCfg(out_dir="runs/y", seed=7, loss=Loss.IPO, beta=1.0)
    assert list(to_dict(cfg)) == ["out_dir", "seed", "loss", "beta"]
    dump_yaml(cfg, tmp_path / "c.yaml")
    assert load_yaml(ChildCfg, tmp_path / "c.yaml") == cfg
    assert from_dict(ChildCfg, {"out_dir": "z"}).seed == 7  # the redeclared default
    rows = {key: (value, doc) for key, value, doc in describe(cfg)}
    assert rows["out_dir"] == ("runs/y", "Where the run writes.") and rows["seed"] == (
        7,
        "Seed of the child recipe.",
    )
    with pytest.raises(ValueError, match="did you mean 'out_dir'"):
        apply_overrides(ChildCfg(), ["outdir=x"])


def test_fields_shown_when_set_leave_config_dicts_only_while_at_their_default():
    """`SHOWN_WHEN_SET` (fields added after runs were cached): out of `to_dict` at their default, so
    those runs keep their fingerprints and resume checks; set ones are written, read and overridden."""

    @dataclass
    class Late:
        SHOWN_WHEN_SET = ("extra", "items")
        name: str = "a"
        extra: str | None = None
        items: list[int] = field(default_factory=list)

    @dataclass
    class Outer:
        parts: list[Late] = field(default_factory=lambda: [Late()])

    assert to_dict(Outer()) == {"parts": [{"name": "a"}]}
    changed = apply_overrides(Outer(), ["parts[0].extra=x", "parts[1].items=[1]"])
    assert changed == Outer([Late(extra="x"), Late(items=[1])])
    assert to_dict(changed) == {"parts": [{"name": "a", "extra": "x"}, {"name": "a", "items": [1]}]}
    assert from_dict(Outer, to_dict(changed)) == changed
