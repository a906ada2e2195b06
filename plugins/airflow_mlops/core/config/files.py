"""Pipeline config files: reading their YAML (through a JSON copy), parsing them (core/catalog.py finds them)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.config.parse import parse_config
from airflow_mlops.core.errors import ConfigError

if TYPE_CHECKING:
    from airflow_mlops.core.config.sections import PipelineConfig


def load_config(path: str | Path, *, check_estimators: bool = True) -> PipelineConfig:
    """Read and validate a pipeline config file."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: config file not found; pipeline configs live in include/pipelines/") from None
    return parse_config(read_yaml(Path(path), text), file=file, check_estimators=check_estimators)


#: Every DAG parse reads every pipeline YAML. PyYAML costs ~1 ms a file, and ~8 ms to import; so, like Python's
#: own __pycache__ (or dbt's partial parsing), the data of each YAML is kept as JSON in `__pycache__/` beside it,
#: named by a digest of the file's text: an edited YAML is read afresh, never served stale.
YAML_COPIES = "__pycache__"


def read_yaml(path: Path, text: str) -> Any:
    """The data of the YAML `text` read from `path`: from its JSON copy when there is one, else parsed (and copied)."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()
    copy = path.parent / YAML_COPIES / f"{path.name}.{digest}.json"
    try:
        return json.loads(copy.read_bytes())
    except (OSError, ValueError):
        pass
    import yaml

    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    _keep_json_copy(copy, data, older=f"{path.name}.*.json")
    return data


def _keep_json_copy(copy: Path, data: Any, *, older: str) -> None:
    """Write `copy` (atomically) when JSON holds `data` exactly (no dates, sets or number keys), and remove the
    copies of the file's older texts (the files matching `older`). A folder that cannot be written is skipped:
    the YAML is read each time."""
    try:
        text = json.dumps(data)
        if json.loads(text) != data:
            return
        copy.parent.mkdir(exist_ok=True)
        for stale in copy.parent.glob(older):
            stale.unlink(missing_ok=True)
        partial = copy.with_name(f".{copy.name}.{os.getpid()}.tmp")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, copy)
    except (OSError, TypeError, ValueError):
        return
