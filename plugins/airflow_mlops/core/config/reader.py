"""A strict reader of one YAML mapping: unknown keys and wrong types are errors naming the file and the key."""

from __future__ import annotations

from typing import Any

from airflow_mlops.core.errors import ConfigError


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


def string_list(reader: Reader, key: str) -> list[str]:
    values = reader.get(key, list, [])
    if not all(isinstance(v, str) for v in values):
        reader.fail(f"expected a list of strings, got {values!r}", key)
    return values
