"""Typed configs to and from plain data: one loader for study files, ``--set`` and MLflow.

``from_dict(cls, data)`` builds a (frozen) dataclass from a mapping, driven only by the
dataclass's own fields and their type annotations, so a config class needs no parsing code
of its own: a new field is readable from YAML, JSON, ``--set`` and a logged
``sweep_spec.json`` as soon as it is declared. Every mistake is a ``ConfigError`` naming the
field path (``lora[0].hiddenkey.key_dropout``), the value and what is allowed; unknown keys
get the closest valid name. ``to_dict`` is its inverse (``from_dict(cls, to_dict(x)) == x``).

Types understood: ``int``, ``float`` (ints are accepted), ``bool``, ``str``, ``None``,
``tuple[X, ...]`` (from lists), ``dict``, ``Any``, unions (``X | None``; unions of config
classes are told apart by their ``name`` field, as ``Full``/``Lora`` are) and nested
dataclasses. Strings are never numbers here: YAML 1.2 numbers such as ``2e-3`` are read as
numbers by ``load_yaml``, while a quoted ``'1'`` stays a string and is refused for an int.

``load_yaml`` reads YAML with the YAML 1.2 core schema's numbers and booleans (PyYAML
implements YAML 1.1, where ``2e-3`` is a string and ``no`` is False) and refuses duplicate
keys (YAML says they are an error; PyYAML keeps the last silently).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import types
import typing
from typing import Any, Union

import yaml

from lfl_ray.errors import ConfigError


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _describe(tp) -> str:
    origin = typing.get_origin(tp)
    if tp is Any:
        return "any value"
    if tp is type(None):
        return "null"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(args[0])}"
        return f"a list of {len(args)} values"
    if origin is dict or tp is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return f"a mapping of {tp.__name__} fields {sorted(_init_fields(tp))}"
    return getattr(tp, "__name__", str(tp))


def _plural(tp) -> str:
    text = _describe(tp)
    for article in ("an ", "a "):
        if text.startswith(article):
            return text[len(article):] + "s"
    return text


def _init_fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def closest(name: str, choices) -> str:
    """' (did you mean `x`?)' for the nearest valid name, or ''."""
    match = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean `{match[0]}`?" if match else ""


def unknown_key_error(path: str, key, value, allowed) -> ConfigError:
    hint = closest(key, allowed)
    return ConfigError(_join(path, str(key)), value, f"is not a field here; fields: {sorted(allowed)}",
                       hint=hint or None)


def from_dict(cls, data: Any, path: str = ""):
    """An instance of dataclass ``cls`` from plain data (a mapping), checked field by field."""
    return _convert(cls, data, path)


def _convert(tp, value, path: str):
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(path, value, "must be null")
    if origin in (Union, types.UnionType):
        return _convert_union(tp, value, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(path, value, "must be true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(path, value, "must be an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(path, value, "must be a number (write 2e-3 or 0.002; quotes make it a string)")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(path, value, "must be a string")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(path, value, f"must be {_describe(tp)}, e.g. [{_example(args[0])}]")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(path, value, f"must be a list of {len(args)} values")
        return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(path, value, "must be a mapping")
        args = typing.get_args(tp)
        if not args:
            return dict(value)
        return {_convert(args[0], k, f"{path}.<key>"): _convert(args[1], v, _join(path, str(k)))
                for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, path)
    raise TypeError(f"config_io cannot read {tp!r} (field {path})")


def _example(tp) -> str:
    return {int: "8", float: "1e-3", str: "'all'", bool: "true"}.get(tp, "...")


def _tag(cls) -> str | None:
    """The value of a dataclass's ``name`` field when it is fixed (init=False): its union tag."""
    for f in dataclasses.fields(cls):
        if f.name == "name" and not f.init:
            return f.default
    return None


def _convert_union(tp, value, path: str):
    args = typing.get_args(tp)
    if value is None and type(None) in args:
        return None
    arms = [a for a in args if a is not type(None)]
    tagged = {_tag(a): a for a in arms if dataclasses.is_dataclass(a) and _tag(a)}
    if tagged and isinstance(value, dict):
        if len(tagged) == len(arms) or "name" in value:
            name = value.get("name")
            if name not in tagged:
                raise ConfigError(_join(path, "name"), name, f"must be one of {sorted(tagged)}",
                                  hint=closest(name, tagged) or None)
            return _convert(tagged[name], value, path)
    errors = []
    for arm in arms:
        try:
            return _convert(arm, value, path)
        except ConfigError as exc:
            errors.append(exc)
    # One arm of the right shape failed inside: that error is the useful one.
    for exc in errors:
        if exc.field != path:
            raise exc
    raise ConfigError(path, value, f"must be {_describe(tp)}")


def _convert_dataclass(cls, value, path: str):
    if not isinstance(value, dict):
        raise ConfigError(path or cls.__name__, value, f"must be {_describe(cls)}")
    fields = _init_fields(cls)
    fixed = {f.name: f for f in dataclasses.fields(cls) if not f.init}
    hints = _hints(cls)
    kwargs = {}
    for key, item in value.items():
        if key in fixed:
            if item != fixed[key].default:
                raise ConfigError(_join(path, key), item, f"must be {fixed[key].default!r} here")
            continue
        if key not in fields:
            raise unknown_key_error(path, key, item, fields)
        kwargs[key] = _convert(hints[key], item, _join(path, key))
    missing = [name for name, f in fields.items() if name not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(_join(path, missing[0]), None, f"is required ({_describe(hints[missing[0]])})")
    return cls(**kwargs)


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def to_dict(obj, *, drop_defaults: bool = False) -> Any:
    """Plain JSON-able data for a config value (dataclasses, tuples, dicts, scalars); with
    ``drop_defaults`` the init fields that equal their defaults are left out."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name), drop_defaults=drop_defaults)
                for f in dataclasses.fields(obj)
                if not (drop_defaults and f.init and getattr(obj, f.name) == _default(f))}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v, drop_defaults=drop_defaults) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v, drop_defaults=drop_defaults) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


def canonical_json(obj, *, drop_defaults: bool = False) -> str:
    """A stable text of a config value (sorted keys, full float precision): for hashing."""
    return json.dumps(to_dict(obj, drop_defaults=drop_defaults), sort_keys=True, separators=(",", ":"),
                      default=str)


# --- YAML 1.2 numbers and booleans, no duplicate keys ---------------------------------

_FLOAT_12 = re.compile(r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
                          |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""", re.X)
_INT_12 = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_BOOL_12 = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars and duplicate keys refused."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise ConfigError(str(key), None, f"is given twice in one mapping (lines {seen[key] + 1} and "
                                  f"{key_node.start_mark.line + 1}); YAML keys must be unique")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:float", "tag:yaml.org,2002:int")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _tag_name, _regexp, _first in (("tag:yaml.org,2002:bool", _BOOL_12, "tTfF"),
                                   ("tag:yaml.org,2002:int", _INT_12, "-+0123456789"),
                                   ("tag:yaml.org,2002:float", _FLOAT_12, "-+0123456789.")):
    _Yaml12Loader.add_implicit_resolver(_tag_name, _regexp, list(_first))


def _int_12(loader, node):
    text = loader.construct_scalar(node)
    if text.startswith("0o"):
        return int(text[2:], 8)
    return int(text, 16) if text.startswith("0x") else int(text)


_Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _int_12)


def load_yaml(text: str, source: str = "YAML"):
    """Parse YAML text with YAML 1.2 numbers; ConfigError (naming ``source``) when malformed."""
    try:
        return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(source, text if len(text) < 80 else text[:77] + "...",
                          f"must be valid YAML: {' '.join(str(exc).split())[:300]}") from exc


def load_json(text: str, source: str = "JSON"):
    """Parse JSON, refusing duplicate keys (ConfigError naming ``source``)."""
    def pairs(items):
        out: dict = {}
        for key, value in items:
            if key in out:
                raise ConfigError(key, value, "is given twice in one JSON object; keys must be unique")
            out[key] = value
        return out

    try:
        return json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise ConfigError(source, text if len(text) < 80 else text[:77] + "...",
                          f"must be valid JSON: {exc}") from exc
