"""Typed configs: nested dataclasses, YAML in and out, dotted overrides checked against the types.

A recipe's config is a dataclass whose fields are values or other dataclasses, each with an
attribute docstring. Presets are Python functions returning such a config. Users change any field
from the command line with `key.sub=value`; the value is parsed as YAML and checked against the
field's type, and a wrong key or type is an error that names the key:

    cfg = apply_overrides(SFTConfig(), ["optim.lr=3e-4", "steps=500"])
    apply_overrides(cfg, ["optim.lrr=1"])  # ValueError: unknown config key 'optim.lrr' (did you mean 'optim.lr'?)

A list item is addressed by its index (`tasks[0].reward=math_answer`, `levels[0]=4`); in a list of
configs, the index one past the end appends an item with its defaults (`tasks[1].name=gsm8k` adds a
second task), so no list needs inline YAML. A renamed key keeps working for a while: a config class
lists it in `DEPRECATED_KEYS` (old name -> new name) and using it prints a one-line warning. A field
added after runs were cached (and keyed by their config: `run_once` fingerprints, resume checks) is
listed in its class's `SHOWN_WHEN_SET`: `to_dict` (config.yaml, --print-config) leaves it out while it
holds its default, so those runs keep their keys. A field typed with a
`StrEnum` takes the member's value string (`loss_type=ipo`) and holds the member; YAML holds the
string. Configs may inherit from one another: inherited fields and their docstrings work the same.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import difflib
import inspect
import re
import sys
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from selftaught.types import StrEnum

C = TypeVar("C")


def check(ok: bool, key: str, must: str, value: Any) -> None:
    """A ValueError `config key '<key>' must be <must>, got <value>` unless `ok`: the range checks
    every config runs in `__post_init__`, so a bad value fails before any work."""
    if not ok:
        raise ValueError(f"config key {key!r} must be {must}, got {value!r}")


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain Python values (nested dicts), ready for YAML or JSON. A field that its class
    lists in `SHOWN_WHEN_SET` is left out while it holds its default (see the module doc)."""
    return _plain(_as_dict(cfg))


def _as_dict(value: Any) -> Any:
    """`dataclasses.asdict`, leaving out the `SHOWN_WHEN_SET` fields that hold their defaults."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        hidden = shown_when_set(type(value))
        return {
            f.name: _as_dict(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not (f.name in hidden and getattr(value, f.name) == _field_default(f))
        }
    if isinstance(value, (list, tuple)):
        return [_as_dict(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_dict(v) for k, v in value.items()}
    return copy.deepcopy(value)


def shown_when_set(cls: type) -> set[str]:
    """The `SHOWN_WHEN_SET` fields of `cls` and of every class it inherits from (a subclass that lists
    its own keeps its parents': `RunConfig`'s `precision` stays hidden at its default in every recipe)."""
    return {name for klass in cls.__mro__ for name in vars(klass).get("SHOWN_WHEN_SET", ())}


def _field_default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def from_dict(cls: type[C], data: dict[str, Any], *, where: str = "") -> C:
    """Build `cls` from a (possibly partial) nested dict; missing fields keep their defaults."""
    if not isinstance(data, dict):
        keys = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        example = "{" + ", ".join(f"{k}: ..." for k in keys[:2]) + (", ...}" if len(keys) > 2 else "}")
        what = f"config key {where!r}" if where else "a config"
        raise ValueError(
            f"{what} must be a mapping of its keys ({example}), got {data!r:.80} ({type(data).__name__})"
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        key = _current_name(cls, key, f"{where}.{key}" if where else key)
        path = f"{where}.{key}" if where else key
        if key not in fields:
            raise ValueError(_unknown_key_message(path, key, list(fields)))
        kwargs[key] = _coerce(hints[key], value, path)
    return cls(**kwargs)


def apply_overrides(cfg: C, overrides: list[str]) -> C:
    """A copy of `cfg` with each `dotted.key=value` applied (value parsed as YAML, type-checked)."""
    data = to_dict(cfg)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} must look like key=value (e.g. optim.lr=3e-5)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ValueError(
                f"override {item!r}: the value is not valid YAML ({problem}); quote it or fix the brackets"
            ) from None
        _set_dotted(data, type(cfg), key.strip(), value)
    return from_dict(type(cfg), data)


def load_yaml(cls: type[C], path: str | Path) -> C:
    """Read a config written by `dump_yaml` (or by hand); unknown keys are errors."""
    text = read_config_text(path)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ValueError(f"{where}: not valid YAML ({getattr(err, 'problem', None) or err})") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"{path}: a config file must be a mapping of config keys (as --print-config writes it), "
            f"got {type(data).__name__} {data!r:.60}"
        )
    return from_dict(cls, data)


def read_config_text(path: str | Path) -> str:
    """The text of a config file; a ValueError naming the file when it is missing, a directory or
    not UTF-8 text."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"config file {str(path)!r} is a directory; pass a YAML file")
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} does not exist")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"config file {str(path)!r} is not UTF-8 text ({err.reason} at byte {err.start}); pass a YAML file"
        ) from None


def check_levels(levels: Any, key: str) -> None:
    """`check` for a list of tiny-world difficulty levels: non-empty, distinct integers >= 1."""
    ok = (
        isinstance(levels, (list, tuple))
        and bool(levels)
        and len(set(levels)) == len(levels)
        and all(isinstance(level, int) and level >= 1 for level in levels)
    )
    check(ok, key, "distinct integers >= 1, e.g. [1, 2, 3]", levels)


def check_limit(limit: int | None, key: str) -> None:
    """`check` for a "first N records" field: None (all) or >= 1."""
    check(limit is None or limit >= 1, key, "None (all records) or >= 1", limit)


def dump_yaml(cfg: Any, path: str | Path | None = None) -> str:
    """The config as YAML text; also written to `path` when given."""
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False)
    if path is not None:
        Path(path).write_text(text)
    return text


def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a dataclass (the string literal right after each field), inherited
    ones included: every class of the MRO contributes, and a subclass's docstring wins over its base's."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_own_field_docs(klass))
    return docs


def describe(cfg: Any, prefix: str = "") -> list[tuple[str, Any, str]]:
    """`(dotted key, current value, docstring)` for every leaf field, for `--help` listings."""
    rows: list[tuple[str, Any, str]] = []
    docs = field_docs(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            rows.extend(describe(value, key + "."))
        elif isinstance(value, list) and value and all(dataclasses.is_dataclass(v) for v in value):
            for index, item in enumerate(
                value
            ):  # `tasks[0].reward`: each item's keys, as overrides name them
                rows.extend(describe(item, f"{key}[{index}]."))
        else:
            rows.append((key, _plain(value), docs.get(f.name, "")))
    return rows


# --- internals ---------------------------------------------------------------------------------


def _own_field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings written in `cls`'s own class body (none when its source is unavailable)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for node, nxt in zip(body, body[1:], strict=False):  # pairs of neighbours
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if (
                isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


_KEY_PART = re.compile(r"([A-Za-z_]\w*)((?:\[\d+\])*)")
"""One dotted part of an override key: a field name, then zero or more `[index]`."""


def _key_steps(key: str) -> list[str | int]:
    """`"tasks[1].weight"` -> `["tasks", 1, "weight"]`: field names and list indices, in order."""
    steps: list[str | int] = []
    for part in key.split("."):
        match = _KEY_PART.fullmatch(part)
        if match is None:
            raise ValueError(
                f"override key {key!r}: {part!r} is not a field name with optional [index] "
                "(e.g. optim.lr, tasks[0].weight, levels[1])"
            )
        steps.append(match.group(1))
        steps.extend(int(index) for index in re.findall(r"\d+", match.group(2)))
    return steps


def _current_name(cls: Any, name: str, path: str) -> str:
    """`name`, or the field it was renamed to (`cls.DEPRECATED_KEYS`), with a one-line warning."""
    renamed = getattr(cls, "DEPRECATED_KEYS", {}).get(name)
    if renamed is None:
        return name
    parent = path.rpartition(".")[0]
    new_path = f"{parent}.{renamed}" if parent else renamed
    print(f"warning: config key {path!r} is deprecated, use {new_path!r}", file=sys.stderr)
    return renamed


def _set_dotted(data: dict[str, Any], cls: type, key: str, value: Any) -> None:
    """Put `value` at `key` in `data` (the dict of a `cls`), checking every field name and index on the
    way; the value itself is type-checked later, by `from_dict`."""
    steps = _key_steps(key)
    node: Any = data
    node_type: Any = cls
    path = ""
    for depth, step in enumerate(steps):
        if isinstance(step, int):
            child_type = _check_index(node, node_type, step, path)
            path = f"{path}[{step}]"
        else:
            if isinstance(node_type, type) and dataclasses.is_dataclass(node_type):
                step = _current_name(node_type, step, f"{path}.{step}" if path else step)
            child_type = _check_field(node_type, step, path)
            path = f"{path}.{step}" if path else step
        if depth == len(steps) - 1:
            node[step] = value
            return
        node, node_type = node[step], child_type


def _check_field(node_type: Any, name: str, path: str) -> Any:
    """The type of field `name` of the dataclass `node_type` found at `path` ("" = the root)."""
    if not (isinstance(node_type, type) and dataclasses.is_dataclass(node_type)):
        raise ValueError(f"config key {path!r} has type {_type_name(node_type)}, it has no sub-keys")
    fields = [f.name for f in dataclasses.fields(node_type)]
    if name not in fields:
        full = f"{path}.{name}" if path else name
        raise ValueError(_unknown_key_message(full, name, fields))
    return typing.get_type_hints(node_type)[name]


def _check_index(items: Any, list_type: Any, index: int, path: str) -> Any:
    """The type of item `index` of the list `items` (annotated `list_type`) found at `path`."""
    if typing.get_origin(list_type) in (Union, types.UnionType):  # `list[X] | None`: its list part
        lists = (a for a in typing.get_args(list_type) if (typing.get_origin(a) or a) in (list, tuple))
        list_type = next(lists, list_type)
    origin = typing.get_origin(list_type) or list_type  # a bare `list` is its own origin
    if origin not in (list, tuple):
        raise ValueError(
            f"config key '{path}[{index}]': {path!r} has type {_type_name(list_type)}, it is not a list"
        )
    length = len(items) if isinstance(items, list) else 0
    args = typing.get_args(list_type)
    item_type = args[0] if origin is list and args else None
    appendable = isinstance(item_type, type) and dataclasses.is_dataclass(item_type)
    if index == length and appendable and isinstance(items, list) and item_type is not None:
        items.append(to_dict(item_type()))  # one past the end of a list of configs: a new item
        return item_type
    if index >= length:
        more = f"; index {length} adds an item" if appendable else ""
        raise ValueError(
            f"config key '{path}[{index}]': index {index} is out of range, {path!r} has {length} items{more}"
        )
    if origin is tuple and args and args[-1] is not Ellipsis:
        return args[index]
    return args[0] if args else Any


def _coerce(tp: Any, value: Any, path: str) -> Any:
    """Check `value` against the annotation `tp`, converting where it is lossless."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where=path)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, path)
            except ValueError:
                pass
        raise ValueError(f"config key {path!r}: {value!r} is not a {_type_name(tp)}")
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        return _coerce_enum(tp, value, path)
    if origin is Literal:
        if value not in args:
            raise ValueError(f"config key {path!r}: {value!r} is not one of {list(args)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"config key {path!r}: expected a list ({_type_name(tp)}), got {value!r}")
        item_types = args[:1] * len(value) if origin is list or args[-1:] == (Ellipsis,) else args
        if origin is tuple and args and args[-1] is not Ellipsis and len(value) != len(args):
            raise ValueError(f"config key {path!r}: expected {len(args)} items, got {len(value)}")
        items = [
            _coerce(t, v, f"{path}[{i}]")
            for i, (t, v) in enumerate(zip(item_types or [Any] * len(value), value, strict=True))
        ]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"config key {path!r}: expected a mapping, got {value!r}")
        key_type, value_type = args or (Any, Any)
        return {_coerce(key_type, k, path): _coerce(value_type, v, f"{path}.{k}") for k, v in value.items()}
    return _coerce_scalar(tp, value, path)


def _coerce_enum(tp: type[StrEnum], value: Any, path: str) -> StrEnum:
    """The member of `tp` whose value is `value` (a member or its value string)."""
    try:
        return tp(value)
    except ValueError:
        valid = [member.value for member in tp]
        raise ValueError(f"config key {path!r}: {value!r} is not one of {valid}") from None


def _coerce_scalar(tp: Any, value: Any, path: str) -> Any:
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:  # YAML reads "1e-4" (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if tp is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # e.g. model=123 names a directory "123"
    if isinstance(value, bool) != (tp is bool):  # bool is an int subclass: never mix them
        raise ValueError(
            f"config key {path!r}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})"
        )
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ValueError(
        f"config key {path!r}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})"
    )


def _unknown_key_message(path: str, key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1)
    parent = path.rpartition(".")[0]
    hint = f" (did you mean {(parent + '.' if parent else '') + close[0]!r}?)" if close else ""
    return f"unknown config key {path!r}{hint}; valid keys here: {', '.join(valid)}"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _plain(value: Any) -> Any:
    """`value` with tuples as lists and enum members as their value strings: what YAML and JSON hold."""
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
