"""docs/architecture.md stays true: it names every module and package, and nothing it names is gone."""

from __future__ import annotations

import re

from conftest import ROOT

DOC = ROOT / "docs" / "architecture.md"
PACKAGE = ROOT / "plugins" / "airflow_mlops"
CORE = PACKAGE / "core"


def _entries(folder):
    """The modules (x.py) and packages (x/) directly in `folder`, as the doc writes them."""
    found = {p.name for p in folder.glob("*.py") if p.name != "__init__.py"}
    found |= {f"{p.name}/" for p in folder.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    return found


def test_every_module_and_package_is_named():
    text = DOC.read_text(encoding="utf-8")
    named = set(re.findall(r"[\w.]+\.py|\w+/", text))
    missing = {
        f"{where}{entry}"
        for where, folder in (("airflow_mlops/", PACKAGE), ("core/", CORE), ("tools/", ROOT / "tools"))
        for entry in _entries(folder)
        if entry not in named
    }
    assert not missing, f"docs/architecture.md does not say where these live: {sorted(missing)}"


def test_nothing_named_is_gone():
    text = DOC.read_text(encoding="utf-8")
    homes = [PACKAGE, *(p for p in PACKAGE.rglob("*") if p.is_dir()), ROOT / "tools", ROOT / "dags"]
    homes += [ROOT / "benchmarks", ROOT / "tests" / "unit"]
    gone = sorted(
        name for name in set(re.findall(r"\b[a-z_]+\.py\b", text)) if not any((home / name).exists() for home in homes)
    )
    assert not gone, f"docs/architecture.md names modules that do not exist: {gone}"
