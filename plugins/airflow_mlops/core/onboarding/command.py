"""The command: profile, decide, render, check, then write both files (never overwriting)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from airflow_mlops.core.config import PIPELINE_NAME, load_config
from airflow_mlops.core.errors import ConfigError, MlopsError, SplitError
from airflow_mlops.core.onboarding.plan import Plan, check_task, decide
from airflow_mlops.core.onboarding.profile import profile_sample
from airflow_mlops.core.onboarding.render import render_config
from airflow_mlops.core.onboarding.suite import build_suite, render_suite


@dataclass
class InitResult:
    """What `airflow-mlops init` wrote, and what a person should review."""

    config_path: Path
    suite_path: Path
    plan: Plan
    expectations: int

    def summary(self, project_root: Path) -> str:
        p = self.plan
        numeric = sum(t == "numeric" for _, t, _ in p.features)
        lines = [
            f"Wrote {_shown(self.config_path, project_root)} (pipeline {p.name}: {p.task} on {p.target!r}, "
            f"{len(p.features)} features: {numeric} numeric, {len(p.features) - numeric} categorical)",
            f"Wrote {_shown(self.suite_path, project_root)} ({self.expectations} expectations)",
            f"Both were checked: the config loads, and the {p.sample.rows}-row sample passes the suite.",
            "",
            "Review these before your first run:",
            *(f"  - {item}" for item in p.review),
        ]
        return "\n".join(lines)


def init_pipeline(
    name: str,
    source: str | Path,
    target: str,
    *,
    project_root: Path,
    task: str | None = None,
    date_column: str | None = None,
) -> InitResult:
    """Profile `source`, write include/pipelines/NAME.yaml and include/expectations/NAME.json (never overwriting)."""
    if not PIPELINE_NAME.fullmatch(name):
        raise ConfigError(
            f"{name!r} cannot name a pipeline (it names DAGs and Assets): use lower-case letters, "
            "digits and '_', starting with a letter, at most 64 characters (e.g. churn, house_prices)"
        )
    if task is not None:
        check_task(task)
    config_path = project_root / "include" / "pipelines" / f"{name}.yaml"
    suite_path = project_root / "include" / "expectations" / f"{name}.json"
    _refuse_existing(config_path, suite_path)
    sample = profile_sample(Path(source))
    plan = decide(sample, name, target, project_root=project_root, task=task, date_column=date_column)
    groups = build_suite(plan)
    _write_checked(plan, render_config(plan), render_suite(plan, groups), config_path, suite_path)
    return InitResult(config_path, suite_path, plan, sum(len(g) for g in groups))


def _refuse_existing(*paths: Path) -> None:
    existing = [p for p in paths if p.exists()]
    if existing:
        raise ConfigError(
            f"{', '.join(map(str, existing))}: already exists; init never overwrites: delete or rename "
            f"{'it' if len(existing) == 1 else 'them'}, or choose another NAME. Nothing was written"
        )


def _write_checked(plan: Plan, config_text: str, suite_text: str, config_path: Path, suite_path: Path) -> None:
    """Write both files to temp files, check them, then rename them into place (nothing is left on failure)."""
    temps: list[Path] = []
    try:
        for final, text in ((config_path, config_text), (suite_path, suite_text)):
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
            temps.append(Path(name))
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(name, 0o644)
        _check(plan, temps[0], temps[1], config_path, suite_path)
        _refuse_existing(config_path, suite_path)
        os.replace(temps[0], config_path)
        try:
            os.replace(temps[1], suite_path)
        except OSError:
            config_path.unlink(missing_ok=True)  # both files or neither
            raise
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


def _check(plan: Plan, config_tmp: Path, suite_tmp: Path, config_path: Path, suite_path: Path) -> None:
    """The written config loads and says what the plan says; the suite loads and the sample passes it."""
    from airflow_mlops.core import rows, validation

    bug = "airflow-mlops init wrote a {} that fails its own check (a bug: please report it); nothing was written: {}"
    try:
        config = load_config(config_tmp, check_estimators=True)
    except ConfigError as exc:
        raise MlopsError(bug.format("config", str(exc).replace(str(config_tmp), str(config_path)))) from None
    expected = (
        [(f, t) for f, t, _ in plan.features],
        plan.target,
        plan.task,
        plan.date_column,
        list(plan.id_columns),
        plan.positive_class,
    )
    got = (
        [(f.name, f.type) for f in config.features],
        config.target,
        config.task,
        config.source.date_column,
        list(config.source.id_columns),
        config.positive_class,
    )
    if got != expected:
        raise MlopsError(bug.format("config", f"it reads back as {got!r}, not {expected!r}"))
    try:
        report = validation.validate_frame(plan.sample.frame, suite_tmp, data_name=plan.sample.path.name)
    except ConfigError as exc:
        raise MlopsError(bug.format("suite", str(exc).replace(str(suite_tmp), str(suite_path)))) from None
    if not report.success:
        raise MlopsError(bug.format("suite", report.describe_failures().replace(str(suite_tmp), str(suite_path))))
    try:
        rows.split_roles(plan.sample.frame, config)
    except SplitError as exc:
        plan.review.append(
            f"the sample itself cannot be split into train, validation and test rows ({exc}); "
            f"fine if the real source is larger"
        )


def _shown(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
