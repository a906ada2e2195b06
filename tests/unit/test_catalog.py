"""One pipeline catalog (core/catalog.py): a pipeline refused there is refused by the DAGs, the CLI, the alerts and
the Models page alike, for the same reason; the catalog is read again when a file changes; `[mlops]
pipelines_folder` moves the folder every reader uses."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from airflow_mlops import cli

DIABETES = ROOT / "include" / "pipelines" / "diabetes.yaml"


def pipeline(name: str, model: str | None = None) -> dict:
    config = yaml.safe_load(DIABETES.read_text())
    config["pipeline"] = name
    config["model"]["name"] = model or f"{name}_model"
    config["model"]["candidates"] = config["model"]["candidates"][:1]
    return config


def project(root: Path, files: dict[str, dict]) -> Path:
    """`root`/include/pipelines/<name>.yaml for each of `files`, with the project's suites; the pipelines folder."""
    folder = root / "include" / "pipelines"
    folder.mkdir(parents=True)
    shutil.copytree(ROOT / "include" / "expectations", root / "include" / "expectations")
    for name, config in files.items():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


@pytest.fixture
def clash(tmp_path, monkeypatch) -> Path:
    """A project whose `first` and `second` both claim the model first_model, and `fine`; it is the project root."""
    folder = project(
        tmp_path / "project",
        {
            "first": pipeline("first"),
            "second": pipeline("second", model="first_model"),
            "fine": pipeline("fine"),
        },
    )
    monkeypatch.setenv("AIRFLOW_MLOPS_PROJECT_ROOT", str(tmp_path / "project"))
    monkeypatch.delenv("AIRFLOW__MLOPS__PIPELINES_FOLDER", raising=False)
    return folder


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.text = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.text += record.getMessage() + "\n"


def test_a_clash_is_refused_by_the_catalog_the_dags_the_cli_the_alerts_and_the_models_page(
    clash, mlflow_client, capsys
):
    from airflow_mlops.core.catalog import read_catalog
    from airflow_mlops.core.overview import config_for, configs_or_none
    from airflow_mlops.dag_builders import pipeline_dags

    catalog = read_catalog(clash)
    why = catalog.errors[str(clash / "first.yaml")]
    assert "model.name: 'first_model' is also claimed by" in why and str(clash / "second.yaml") in why
    assert [c.name for c in catalog.configs] == ["fine"]
    assert catalog.refused["first"] == why and catalog.refused_models["first_model"] == why

    assert sorted(pipeline_dags()) == sorted(d for d in pipeline_dags(clash) if d.startswith("fine_"))
    assert not any(d.startswith(("first_", "second_")) for d in pipeline_dags())

    code = cli.main(["performance", "first"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_REFUSED and f"pipeline 'first' is refused: {why}" in err
    code = cli.main(["performance", str(clash / "first.yaml")])
    assert code == cli.EXIT_REFUSED and why in capsys.readouterr().err

    mlflow_client.create_registered_model("first_model")
    assert cli.main(["status", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["name"] == "first_model" and row["pipeline"] is None  # no pipeline's routes, grants or monitors

    configs = configs_or_none(clash)
    assert config_for("first_model", configs) is None and [c.name for c in configs] == ["fine"]

    from airflow_mlops.alerting import send_rollback_alert

    warnings = _Collect()
    alerts_log = logging.getLogger("airflow_mlops.alerts")  # heard directly: Airflow's logging config varies by test
    was = alerts_log.disabled, alerts_log.level
    alerts_log.disabled, alerts_log.level = False, logging.WARNING  # another test's dictConfig may have turned it off
    alerts_log.addHandler(warnings)
    try:
        assert send_rollback_alert("first_model", {"champion": "1"}, who="me", reason="test") is None
    finally:
        alerts_log.removeHandler(warnings)
        alerts_log.disabled, alerts_log.level = was
    assert f"no rolled_back alert sent for first_model: {why}" in warnings.text


def test_an_unknown_pipeline_names_the_folder_and_the_known_ones(clash, capsys):
    assert cli.main(["performance", "nope"]) == cli.EXIT_REFUSED
    assert f"no pipeline named 'nope' in {clash} (pipelines: fine)" in capsys.readouterr().err


def test_the_catalog_is_read_again_when_a_file_changes_size_or_time(tmp_path, monkeypatch):
    from airflow_mlops.core import catalog

    folder = project(tmp_path, {"one": pipeline("one"), "two": pipeline("two")})
    reads = []
    real_read = catalog._read
    monkeypatch.setattr(catalog, "_read", lambda f: reads.append(f) or real_read(f))

    assert [c.name for c in catalog.read_catalog(folder).configs] == ["one", "two"]
    assert [c.name for c in catalog.read_catalog(folder).configs] == ["one", "two"]
    assert len(reads) == 1  # unchanged files: kept

    (folder / "two.yaml").write_text(yaml.safe_dump(pipeline("two", model="one_model")))  # size changes
    found = catalog.read_catalog(folder)
    assert len(reads) == 2 and found.configs == [] and "also claimed by" in found.errors[str(folder / "two.yaml")]

    same_size = yaml.safe_dump(pipeline("two", model="two_model")).replace("two_model", "two_mode_")
    (folder / "two.yaml").write_text(same_size)  # same size as before the clash, other text: the time tells
    stat = (folder / "two.yaml").stat()
    os.utime(folder / "two.yaml", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert [c.model_name for c in catalog.read_catalog(folder).configs] == ["one_model", "two_mode_"]
    assert len(reads) == 3

    (folder / "one.yaml").unlink()
    assert [c.name for c in catalog.read_catalog(folder).configs] == ["two"]
    suite = tmp_path / "include" / "expectations" / "diabetes.json"
    suite.rename(suite.with_suffix(".gone"))  # a suite that goes: refused again although no YAML changed
    found = catalog.read_catalog(folder)
    assert found.configs == [] and "validation.suite" in found.errors[str(folder / "two.yaml")]


def test_the_setting_moves_the_folder_every_reader_uses(tmp_path, monkeypatch):
    from airflow_mlops import settings
    from airflow_mlops.core.overview import configs_or_none
    from airflow_mlops.dag_builders import pipeline_dags, read_pipelines

    monkeypatch.setenv("AIRFLOW_MLOPS_PROJECT_ROOT", str(tmp_path / "root"))
    monkeypatch.delenv("AIRFLOW__MLOPS__PIPELINES_FOLDER", raising=False)
    assert settings.pipelines_folder() == tmp_path / "root" / "include" / "pipelines"  # the default

    elsewhere = project(tmp_path / "elsewhere", {"moved": pipeline("moved")})
    monkeypatch.setenv("AIRFLOW__MLOPS__PIPELINES_FOLDER", str(elsewhere))
    assert settings.pipelines_folder() == elsewhere
    assert [c.name for c in read_pipelines().configs] == ["moved"]
    assert "moved_retrain" in pipeline_dags()
    assert [c.name for c in configs_or_none(settings.pipelines_folder())] == ["moved"]
    assert cli._pipeline_config("moved").name == "moved"
