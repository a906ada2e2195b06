"""A strict reader of one YAML mapping: unknown keys and wrong types are errors naming the file and the key.

`read_struct` and `read_field` read a section's keys by its Struct's fields (config.sections), so each key's
type and default is written once, in the Struct. A field typed ``X | None`` takes an explicit null only when
its default is something else (null turns that default off, e.g. a schedule); a field whose default is None
is left out instead.
"""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeVar, Union, get_args, get_origin

import msgspec

from airflow_mlops.core.errors import ConfigError

S = TypeVar("S", bound=msgspec.Struct)


class Reader:
    """Reads one mapping strictly: unknown keys and wrong types are errors naming file and key."""

    def __init__(self, file: str, data: Any, where: str) -> None:
        self.file, self.where = file, where
        if not isinstance(data, dict):
            self.fail(f"expected a mapping, got {type(data).__name__}")
        self.data: dict[str, Any] = data
        self.used: set[str] = set()

    def fail(self, msg: str, key: str | None = None) -> None:
        loc = f"{self.where}.{key}" if key and self.where else (key or self.where or "<top level>")
        raise ConfigError(f"{self.file}: {loc}: {msg}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ..., choices: tuple = ()) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                self.fail("required key is missing", key)
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            ok = False
        else:
            ok = isinstance(value, kinds) or (float in kinds and isinstance(value, int))
        if not ok:
            names = " or ".join(k.__name__ for k in kinds)
            self.fail(f"expected {names}, got {type(value).__name__} {value!r}", key)
        if choices and value not in choices:
            self.fail(f"{value!r} is not one of {', '.join(map(str, choices))}", key)
        return value

    def sub(self, key: str, default: Any = ...) -> Reader:
        value = self.get(key, dict, default)
        return Reader(self.file, value, f"{self.where}.{key}" if self.where else key)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            self.fail(f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(self.used))}")


class _Field(NamedTuple):
    """How one field is read: its YAML types (None: the caller gives them), conversion and default."""

    kinds: tuple[type, ...] | None
    convert: str  # "" (as read) | float | strings (a list of strings) | tuple | map | map_float
    default: Any  # ... when required
    factory: Callable[[], Any] | None  # a mutable default ({}) is made afresh


@functools.cache
def _field(cls: type[msgspec.Struct], name: str) -> _Field:
    """How `cls`'s field `name` is read, worked out once from its annotation and default.

    Read from the Struct's own ``__struct_fields__``/``__struct_defaults__`` and the one annotation, not with
    ``msgspec.structs.fields``: that resolves every annotation of the class (~1 ms for the sections), once in
    every process, and each DAG parse is a new process.
    """
    names = cls.__struct_fields__
    defaults = (msgspec.NODEFAULT,) * (len(names) - len(cls.__struct_defaults__)) + cls.__struct_defaults__
    raw = defaults[names.index(name)]
    factory = raw.factory if type(raw).__name__ == "Factory" else None  # msgspec's wrapper of a mutable default
    default = ... if raw is msgspec.NODEFAULT or factory else raw
    annotation = _annotation(cls, name)
    kinds = _kinds(annotation, factory() if factory else default)
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    origin, args = get_origin(annotation), get_args(annotation)
    convert = (
        "float"
        if annotation is float
        else ("strings" if args[0] is str else "tuple")
        if origin is tuple
        else ("map_float" if args[1] is float else "map")
        if origin is Mapping
        else ""
    )
    return _Field(kinds, convert, default, factory)


def _annotation(cls: type, name: str) -> Any:
    """The type of `cls`'s field `name`, its annotation evaluated in the class's module."""
    for klass in cls.__mro__:
        annotation = vars(klass).get("__annotations__", {}).get(name)
        if annotation is not None:
            return _evaluate(klass.__module__, annotation) if isinstance(annotation, str) else annotation
    raise TypeError(f"{cls.__name__}.{name} has no annotation")


@functools.cache
def _evaluate(module: str, annotation: str) -> Any:
    return eval(annotation, vars(sys.modules[module]))  # an annotation of our own sections, as get_type_hints does


def default_of(cls: type[msgspec.Struct], name: str) -> Any:
    """The default of the field `name` of `cls`; ``...`` when it is required."""
    f = _field(cls, name)
    return f.factory() if f.factory else f.default


def _kinds(annotation: Any, default: Any) -> tuple[type, ...] | None:
    """The YAML types a field of `annotation` accepts (a tuple is a YAML list, a Mapping a YAML mapping);
    None when they cannot be told from the type (Any, a Struct)."""
    union = get_origin(annotation) in (Union, types.UnionType)
    kinds: list[type] = []
    for arg in get_args(annotation) if union else (annotation,):
        if arg is type(None):
            if default is not None:
                kinds.append(arg)
            continue
        origin = get_origin(arg) or arg
        if origin is tuple:
            kinds.append(list)
        elif origin is Mapping:
            kinds.append(dict)
        elif isinstance(origin, type) and origin in (str, int, float, bool, list, dict):
            kinds.append(origin)
        else:
            return None
    return tuple(kinds)


def read_field(
    reader: Reader,
    cls: type[msgspec.Struct],
    name: str,
    *,
    key: str | None = None,
    kind: type | tuple[type, ...] | None = None,
    choices: tuple = (),
) -> Any:
    """The value of `cls`'s field `name` (YAML key `key`, default the field's name), as the field's type.

    A list of strings is checked item by item unless `kind` is given (the caller checks it then).
    """
    f = _field(cls, name)
    key = key or name
    kinds = kind or f.kinds
    if kinds is None:
        raise TypeError(f"{cls.__name__}.{name}: its type does not say how to read it; give kind= or read it custom")
    value = reader.get(key, kinds, f.factory() if f.factory else f.default, choices)
    if value is None or not f.convert:
        return value
    if f.convert == "float":
        return float(value)
    if f.convert == "strings" and kind is None and not all(isinstance(v, str) for v in value):
        reader.fail(f"expected a list of strings, got {value!r}", key)
    if f.convert in ("strings", "tuple"):
        return tuple(value)
    if f.convert == "map_float":
        return {str(k): float(v) for k, v in value.items()}
    return {str(k): v for k, v in value.items()}


def read_struct(
    reader: Reader,
    cls: type[S],
    /,
    *,
    choices: Mapping[str, tuple] | None = None,
    kinds: Mapping[str, type | tuple[type, ...]] | None = None,
    custom: Mapping[str, Callable[[Reader, str, Any], Any]] | None = None,
    **given: Any,
) -> S:
    """`cls` read from `reader`, field by field in the Struct's order: each key, type and default from the Struct.

    `choices` and `kinds` (field -> allowed values, YAML types) go to `read_field`; `custom` (field -> read(reader,
    key, default)) reads a field its own way; `given` fields are not read.
    """
    values = dict(given)
    for name in cls.__struct_fields__:
        if name in given:
            continue
        if custom and name in custom:
            values[name] = custom[name](reader, name, default_of(cls, name))
        else:
            values[name] = read_field(
                reader, cls, name, kind=(kinds or {}).get(name), choices=(choices or {}).get(name, ())
            )
    return cls(**values)
