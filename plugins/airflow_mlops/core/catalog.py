"""The pipelines of a folder of pipeline YAMLs: one reader for the DAG builders, the CLI, the alerts, the UI and the
stack, so a pipeline refused by one is refused by all, for the same reason.

`read_catalog(folder)` loads every *.yaml, checks what is cheap to check (the suite exists, each estimator's
module and class exist in scikit-learn's source), sets the variants (`variant_of:`) aside, and refuses both
pipelines of a clash (one pipeline name or one registered model claimed by two files). The result is kept in the
process and read again only when a YAML is added, removed or changed (name, size, modification time) or a suite
appears or goes. Light on purpose (it runs at every DAG parse): no heavy imports, no Airflow. The folder comes from
the caller (`settings.pipelines_folder()`: `[mlops] pipelines_folder`).
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from airflow_mlops.core.errors import ConfigError

if TYPE_CHECKING:
    from airflow_mlops.core.config import PipelineConfig


class Pipelines(msgspec.Struct):
    """What a folder of pipeline YAMLs holds: the pipelines, their variants, and the files that do not load.
    (A msgspec Struct, like the config sections: the cheapest record to define at every DAG parse.)"""

    folder: str  # where the YAMLs were read
    configs: list[PipelineConfig]
    variants: dict[str, list[str]]  # pipeline -> variant names (file stems)
    errors: dict[str, str]  # file -> what is wrong
    refused: dict[str, str] = {}  # pipeline name of a refused file -> why  # noqa: RUF012
    refused_models: dict[str, str] = {}  # model name of a refused file -> why  # noqa: RUF012

    def pipeline(self, name: str) -> PipelineConfig:
        """The pipeline `name` (not a variant); a ConfigError saying why when it was refused or does not exist."""
        found = next((c for c in self.configs if c.name == name), None)
        if found is not None:
            return found
        why = self.refused.get(name) or next((e for f, e in self.errors.items() if Path(f).stem == name), None)
        if why:
            raise ConfigError(f"pipeline {name!r} is refused: {why}")
        known = ", ".join(sorted(c.name for c in self.configs)) or "none"
        raise ConfigError(f"no pipeline named {name!r} in {self.folder} (pipelines: {known})")

    def serving(self, model: str) -> PipelineConfig | None:
        """The pipeline serving the registered model `model`, None when none does (or its pipeline was refused)."""
        return next((c for c in self.configs if c.model_name == model), None)


_Stamp = tuple[tuple[str, int, int], ...]
_cache: dict[str, tuple[_Stamp, tuple[tuple[str, bool], ...], Pipelines]] = {}
_cache_lock = threading.Lock()


def _stamp(folder: Path) -> _Stamp:
    files = []
    for path in sorted(folder.glob("*.yaml")):
        with contextlib.suppress(OSError):  # removed in between: the read below skips it too
            stat = path.stat()
            files.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(files)


def read_catalog(folder: str | Path) -> Pipelines:
    """Every pipeline in `folder` (a bad file is an error, never a crash); kept until a file there changes."""
    folder = Path(folder)
    stamp = _stamp(folder)
    with _cache_lock:
        cached = _cache.get(str(folder))
    if cached is not None and cached[0] == stamp and all(Path(s).is_file() == e for s, e in cached[1]):
        return _copy(cached[2])
    found, suites = _read(folder)
    with _cache_lock:
        _cache[str(folder)] = (stamp, suites, found)
    return _copy(found)


def _copy(found: Pipelines) -> Pipelines:
    return Pipelines(
        folder=found.folder,
        configs=list(found.configs),
        variants={k: list(v) for k, v in found.variants.items()},
        errors=dict(found.errors),
        refused=dict(found.refused),
        refused_models=dict(found.refused_models),
    )


def _read(folder: Path) -> tuple[Pipelines, tuple[tuple[str, bool], ...]]:
    from airflow_mlops.core.config import load_config

    found = Pipelines(folder=str(folder), configs=[], variants={}, errors={})
    suites = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            config = load_config(path, check_estimators=False)  # estimator classes are checked by the first task
            suite = config.resolve(config.expectation_suite)
            suites.append((str(suite), suite.is_file()))
            check_files(config)
        except ConfigError as exc:
            found.errors[str(path)] = str(exc)
            continue
        if config.variant_of:
            found.variants.setdefault(config.variant_of, []).append(path.stem)
        else:
            found.configs.append(config)
    _refuse_clashes(found)
    return found, tuple(suites)


def check_files(config: PipelineConfig) -> None:
    """What can be checked cheaply at parse time: the suite exists, each estimator's module exists in scikit-learn."""
    if not config.resolve(config.expectation_suite).is_file():
        raise ConfigError(
            f"{config.path}: validation.suite: {config.expectation_suite} does not exist (relative to "
            f"{config.resolve('.')}); write it, or run `airflow-mlops init` to draft one"
        )
    for i, candidate in enumerate(config.candidates):
        dotted, _, class_name = candidate.estimator.rpartition(".")
        names = _sklearn_module_names(dotted)
        where = f"{config.path}: model.candidates[{i}].estimator: unknown estimator {candidate.estimator!r}"
        if names is None:
            raise ConfigError(f"{where}: scikit-learn has no module {dotted}")
        if names and class_name not in names:
            raise ConfigError(
                f"{where}: {dotted} has no {class_name!r} (check the spelling against scikit-learn's API)"
            )


@functools.cache
def _sklearn_module_names(dotted: str) -> frozenset[str] | None:
    """The words in the source of scikit-learn's module `dotted` (read, not imported: cheap at parse time); None
    when scikit-learn has no such module, an empty set when scikit-learn is not installed here (not checked)."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    module = dotted.split(".")[1:]
    if not (spec and spec.origin and module):
        return frozenset()
    place = Path(spec.origin).parent.joinpath(*module)
    source = next((f for f in (place.with_suffix(".py"), place / "__init__.py") if f.is_file()), None)
    return None if source is None else frozenset(re.findall(r"\w+", source.read_text(encoding="utf-8")))


def _refuse_clashes(found: Pipelines) -> None:
    """Two pipelines may not share a name (their DAG ids and Assets) or a registered model: both are refused."""
    for key, what in ((lambda c: c.name, "pipeline"), (lambda c: c.model_name, "model.name")):
        claims: dict[str, list[PipelineConfig]] = {}
        for config in found.configs:
            claims.setdefault(key(config), []).append(config)
        for value, claimants in claims.items():
            if len(claimants) < 2:
                continue
            files = [c.path for c in claimants]
            for config in claimants:
                others = ", ".join(f for f in files if f != config.path)
                found.errors.setdefault(
                    config.path,
                    (
                        f"{config.path}: {what}: {value!r} is also claimed by {others}; each pipeline needs its own "
                        f"(a config that only tweaks another one declares `variant_of: {config.name}`)"
                    ),
                )
    for config in found.configs:
        if config.path in found.errors:
            found.refused.setdefault(config.name, found.errors[config.path])
            found.refused_models.setdefault(config.model_name, found.errors[config.path])
    found.configs[:] = [c for c in found.configs if c.path not in found.errors]
