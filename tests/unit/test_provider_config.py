"""Every `[mlops]` option the code reads is declared in get_provider_info()["config"], and Airflow's configuration
loads the declarations (what `airflow config list` shows; the defaults are the fallbacks of `conf.get`).

The options read are found in the source with `ast`: any `<x>.get*("mlops", "<option>", ...)` or
`<x>.has_option("mlops", "<option>")` under plugins/, dags/ and tools/, so a new option is checked without
editing this test.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

from airflow_mlops.provider import get_provider_info

ROOT = Path(__file__).resolve().parents[2]
SECTION = "mlops"


def options_read_in_code() -> dict[str, list[str]]:
    """option -> the places (file:line) that read it."""
    found: dict[str, list[str]] = {}
    for folder in ("plugins", "dags", "tools"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and (node.func.attr.startswith("get") or node.func.attr == "has_option")
                    and len(node.args) >= 2
                    and all(isinstance(a, ast.Constant) for a in node.args[:2])
                    and node.args[0].value == SECTION
                ):
                    continue
                found.setdefault(str(node.args[1].value), []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def declared() -> dict[str, dict]:
    return get_provider_info()["config"][SECTION]["options"]


def test_every_option_read_in_the_code_is_declared_and_every_declared_one_is_read():
    read = options_read_in_code()
    assert "mlflow_ui_url" in read, read  # the scan finds what links.py reads (it cannot pass by finding nothing)
    missing = {name: where for name, where in read.items() if name not in declared()}
    assert not missing, f"[mlops] options read but not declared in provider.py CONFIG: {missing}"
    stale = set(declared()) - set(read)
    assert not stale, f"[mlops] options declared in provider.py CONFIG that no code reads: {sorted(stale)}"


def test_the_declarations_follow_airflows_provider_schema():
    import jsonschema
    from airflow import providers_manager

    schema = json.loads((Path(providers_manager.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)
    for name, option in declared().items():
        assert option["description"].strip() and option["type"] == "string", name
        assert option["example"], f"{name}: give an example value"


def test_airflow_loads_them_as_the_mlops_section_with_their_defaults(monkeypatch):
    from airflow.configuration import conf

    for name in declared():
        monkeypatch.delenv(f"AIRFLOW__{SECTION.upper()}__{name.upper()}", raising=False)

    description = conf.configuration_description[SECTION]  # what `airflow config list` prints
    assert set(description["options"]) == set(declared())
    for name, option in declared().items():
        if option["default"] is not None:
            assert conf.get(SECTION, name) == option["default"], name  # no fallback given: the declared default
        else:
            assert conf.get(SECTION, name, fallback="unset") == "unset", name
