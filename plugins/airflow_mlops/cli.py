"""`airflow-mlops`: the registry from a terminal: status, champion history, manual rollback, verdict audit;
drift between two data windows; a pipeline's realized performance per labelled day; `init`, a starter
pipeline config and suite from a sample file.

MLflow is reached through `MlflowHook` (connection `mlflow_default`, else the project-local
SQLite store under $AIRFLOW_MLOPS_HOME). Exit codes: 0 done, 2 refused (unknown model or
version, nothing to roll back, champion moved) or bad arguments, 1 unexpected error.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import socket
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mlflow import MlflowClient

    from airflow_mlops.core.config import PipelineConfig
    from airflow_mlops.core.payloads import PromotionResult

EXIT_OK, EXIT_ERROR, EXIT_REFUSED = 0, 1, 2
EXIT_UNVERIFIED, EXIT_LEAK = 3, 4  # audit


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad arguments (2)
        return int(exc.code or 0)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_REFUSED
    from airflow_mlops.core.errors import MlopsError

    # stdout carries only the answer (a table or JSON): logs (Airflow's logger prints to stdout) go to stderr.
    args.out = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return int(args.func(args))
    except MlopsError as exc:
        print(f"airflow-mlops: error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except Exception as exc:
        print(f"airflow-mlops: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR


def cli_actor() -> dict[str, str]:
    """Who ran the CLI, for the ledger: {"actor": "cli:<user>@<host>"}, with the user's id (uid) and name (login)."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    uid = str(os.getuid()) if hasattr(os, "getuid") else ""
    return {
        "actor": f"cli:{user}@{socket.gethostname()}",
        "user": user,
        "user.id": uid,
        "user.name": user,
        "host": socket.gethostname(),
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="airflow-mlops", description="Inspect and operate the airflow-mlops model registry (MLflow)."
    )
    parser.add_argument(
        "--conn-id",
        default=None,
        help="Airflow connection to MLflow (default: mlflow_default; for rollback mlflow_promoter, the "
        "identity allowed to move the champion, else mlflow_default)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("status", help="champion, challenger and latest decision of every registered model")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--days",
        type=int,
        default=7,
        metavar="N",
        help="the champion's realized performance over its last N labelled days (default: %(default)s)",
    )
    p.set_defaults(func=_status)

    p = sub.add_parser(
        "performance",
        help="PIPELINE's realized performance per labelled day: join rate, realized metric with interval, promise, decay",
        description="The per-day table of the performance monitor's checks (the latest check of each day), read from "
        "MLflow (experiment <pipeline>-monitoring). Exit codes: 0 shown, 2 unknown pipeline.",
    )
    p.add_argument(
        "pipeline",
        help="the pipeline's name (<name>.yaml in [mlops] pipelines_folder, default "
        "include/pipelines/) or the path of its YAML",
    )
    p.add_argument("--days", type=int, default=30, metavar="N", help="the last N days checked (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_performance)

    p = sub.add_parser("history", help="every move of MODEL's champion/previous_champion aliases, oldest first")
    p.add_argument("model")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_history)

    p = sub.add_parser("rollback", help="make the previous champion (or --to VERSION) the champion again")
    p.add_argument("model")
    p.add_argument("--to", dest="to_version", metavar="VERSION", help="version to restore (default: previous_champion)")
    p.add_argument(
        "--expect",
        dest="expected_champion",
        metavar="VERSION",
        help="the champion you decided against: refused (nothing changed) if the champion is another one "
        "by the time the registry's promotion lock is held",
    )
    p.add_argument("--reason", required=True, help="why; recorded in the ledger and sent in the rolled_back alert")
    p.add_argument(
        "--config",
        metavar="PIPELINE",
        help="the pipeline config whose alert routes to use (default: the "
        "pipeline of [mlops] pipelines_folder whose model.name is MODEL)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_rollback)

    p = sub.add_parser(
        "audit",
        help="re-check from MLflow alone that VERSION's verdict was judged on rows neither model saw",
        description="Reads the evaluation run's test_rows.parquet and the champion's and challenger's "
        "training_rows.parquet, and counts the scored test rows either model was trained or selected on. "
        "Exit codes: 0 clean, 4 leak (a scored row was seen; the rows are named), 3 unverified (a record is "
        "missing or unreadable: the audit cannot tell, and says why), 2 nothing to audit.",
    )
    p.add_argument("model")
    p.add_argument("version")
    p.add_argument("--json", action="store_true", help="print JSON instead of a summary")
    p.set_defaults(func=_audit)

    p = sub.add_parser(
        "drift",
        help="per-feature drift between two data windows (CSV/Parquet files or folders); exit 3 on drift",
        description="Compare a current data window with a reference window: KS/PSI for numeric, chi-square/"
        "Jensen-Shannon for categorical features, Benjamini-Hochberg across features. Exit codes: 0 no drift, "
        "3 drift, 2 bad input.",
    )
    p.add_argument("--reference", required=True, metavar="REF", help="reference window: a CSV/Parquet file or folder")
    p.add_argument("--current", required=True, metavar="CUR", help="current window: a CSV/Parquet file or folder")
    p.add_argument(
        "--config",
        metavar="PIPELINE",
        help="pipeline config: its features, types, target and "
        "monitoring thresholds (default: every column, types inferred, default thresholds)",
    )
    p.add_argument("--html", metavar="DIR", help="also write the HTML/PNG drift report into DIR")
    p.add_argument("--chunk-rows", type=int, default=250_000, help="rows read at a time (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_drift)

    p = sub.add_parser(
        "init",
        help="profile a sample CSV/Parquet file and write a starter pipeline config and expectation suite",
        description="Profile a sample of the data and write include/pipelines/NAME.yaml and "
        "include/expectations/NAME.json: features typed from the data, id and date columns recognised, the task, "
        "split, metrics and gate chosen for it, every choice commented. Both files are checked (the config loads, "
        "the sample passes the suite) before either is written; existing files are never overwritten. "
        "Exit codes: 0 written, 2 bad input or a file exists.",
    )
    p.add_argument("name", help="the pipeline's name: lower-case letters, digits and '_' (it names DAGs and Assets)")
    p.add_argument("--source", required=True, metavar="FILE", help="a sample of the data: a .csv or .parquet file")
    p.add_argument("--target", required=True, metavar="COLUMN", help="the column the model predicts")
    p.add_argument(
        "--task",
        metavar="TASK",
        help="binary_classification, multiclass_classification or regression "
        "(default: inferred from the target's values)",
    )
    p.add_argument(
        "--date-column", metavar="COLUMN", help="the column dating each row (default: a column of ISO dates, if any)"
    )
    p.add_argument(
        "--project-root",
        metavar="DIR",
        help="the project holding include/ (default: $AIRFLOW_MLOPS_PROJECT_ROOT, else this checkout)",
    )
    p.set_defaults(func=_init)
    return parser


def _client(args: argparse.Namespace, *, moves_aliases: bool = False) -> MlflowClient:
    """The MLflow client of `--conn-id`; by default the promoter's for a command that moves aliases (the trainer's
    `mlflow_default` is refused on the champion on a server with separated duties), else `mlflow_default`."""
    from airflow_mlops.hooks.mlflow import MlflowHook
    from airflow_mlops.operators.base import DEFAULT_MLFLOW_CONN_ID, PROMOTER_CONN_ID

    if args.conn_id:
        return MlflowHook(mlflow_conn_id=args.conn_id).get_conn()
    if moves_aliases:
        return MlflowHook(mlflow_conn_id=PROMOTER_CONN_ID, fallback_conn_id=DEFAULT_MLFLOW_CONN_ID).get_conn()
    return MlflowHook(mlflow_conn_id=DEFAULT_MLFLOW_CONN_ID).get_conn()


def _status(args: argparse.Namespace) -> int:
    from airflow_mlops import settings
    from airflow_mlops.core.overview import configs_or_none, model_status

    configs = configs_or_none(settings.pipelines_folder())  # the catalog the DAGs are built from
    rows = model_status(_client(args), configs=configs, days=args.days)  # the Models page shows the same rows
    if args.json:
        print(json.dumps(rows, indent=2), file=args.out)
        return EXIT_OK
    if not rows:
        print("No registered models yet.", file=args.out)
        return EXIT_OK
    columns = [
        ("MODEL", "name"),
        ("CHAMPION", "champion"),
        ("CHALLENGER", "challenger"),
        ("PREVIOUS", "previous_champion"),
        ("EVALUATED", "evaluated_version"),
        ("DECISION", "decision"),
        ("TRIGGER", "trigger"),
        ("DECIDED AT", "decided_at"),
        ("DATA DIGEST", "data_digest"),
    ]
    print(_table(columns, [{**r, "data_digest": _short(r.get("data_digest"))} for r in rows]), file=args.out)
    from airflow_mlops.core.evaluation.panel_view import status_lines

    for r in rows:
        panels = status_lines(r.get("panel_summaries"))  # the worst slice, the robustness figure; none: not said
        if r.get("reasons") or panels:
            print(f"\n{r['name']} v{r['evaluated_version']} {r.get('decision') or ''}:", file=args.out)
            for reason in r.get("reasons") or []:
                print(f"  - {reason}", file=args.out)
            for line in panels:
                print(f"  {line}", file=args.out)
        if r.get("trigger_summary"):
            print(f"  started by {r.get('trigger')}: {r['trigger_summary']}", file=args.out)
    from airflow_mlops.core.performance.evidence import describe_summary

    for r in rows:
        if r.get("performance"):
            print(
                f"\n{r['name']} v{r['champion']} (champion) in production: {describe_summary(r['performance'])}",
                file=args.out,
            )
    return EXIT_OK


def _performance(args: argparse.Namespace) -> int:
    """The per-day performance table of PIPELINE (or JSON)."""
    from airflow_mlops.core.performance.evidence import format_table, performance_table

    config = _pipeline_config(args.pipeline)
    rows = performance_table(_client(args), config, days=args.days)
    if args.json:
        print(json.dumps(rows, indent=2), file=args.out)
        return EXIT_OK
    if not rows:
        print(
            f"{config.name}: no performance checks yet ({config.name}_performance_monitor logs them once labels "
            f"arrive).",
            file=args.out,
        )
        return EXIT_OK
    p = config.monitoring.performance
    print(
        f"{config.name} ({config.model_name}): realized {config.metrics.primary} per labelled day, "
        f"{config.evaluation.confidence:.0%} bootstrap intervals; decay = interval beyond promised -/+ "
        f"{p.tolerance:g}, retrain on {p.confirm_days} of the last {p.of_last_days} days",
        file=args.out,
    )
    print(format_table(rows), file=args.out)
    return EXIT_OK


def _pipeline_config(name: str) -> PipelineConfig:
    """A pipeline of the catalog by name (`[mlops] pipelines_folder`/<name>.yaml, not a variant; refused as the DAGs
    refuse it) or by the path of its YAML."""
    from pathlib import Path

    from airflow_mlops import settings
    from airflow_mlops.core.catalog import read_catalog
    from airflow_mlops.core.config import load_config
    from airflow_mlops.core.errors import ConfigError

    catalog = read_catalog(settings.pipelines_folder())
    if name.endswith((".yaml", ".yml")) or "/" in name:
        refused = {Path(file).resolve(): why for file, why in catalog.errors.items()}.get(Path(name).resolve())
        if refused:  # a file of the catalog: refused here as the DAGs refuse it
            raise ConfigError(refused)
        return load_config(Path(name), check_estimators=False)
    return catalog.pipeline(name)


def _history(args: argparse.Namespace) -> int:
    from airflow_mlops.core import registry

    entries = registry.history(_client(args), args.model)
    if args.json:
        print(json.dumps(entries, indent=2), file=args.out)
        return EXIT_OK
    if not entries:
        print(f"{args.model}: no alias moves recorded yet.", file=args.out)
        return EXIT_OK
    columns = [
        ("AT", "at"),
        ("ACTION", "action"),
        ("ALIAS", "alias"),
        ("FROM", "from"),
        ("TO", "to"),
        ("BY", "by"),
        ("REASON", "reason"),
    ]
    print(_table(columns, entries), file=args.out)
    return EXIT_OK


def _rollback(args: argparse.Namespace) -> int:
    from airflow_mlops.core import registry

    actor = cli_actor()
    result = registry.rollback(
        _client(args, moves_aliases=True),
        args.model,
        to_version=args.to_version,
        expected_champion=args.expected_champion,
        actor=actor,
        reason=args.reason,
    )
    _alert_rollback(args, result, actor)
    if args.json:
        print(json.dumps(result, indent=2), file=args.out)
    else:
        print(
            f"{args.model}: champion is now version {result['champion']} "
            f"(previous_champion: version {result['previous_champion']}), at {result['moved_at']}.",
            file=args.out,
        )
    return EXIT_OK


def _audit(args: argparse.Namespace) -> int:
    from airflow_mlops.core.audit import CLEAN, LEAK, audit_verdict

    result = audit_verdict(_client(args), args.model, args.version)
    if args.json:
        print(json.dumps(result, indent=2), file=args.out)
    else:
        print(
            f"{args.model} v{args.version} vs champion v{result['champion_version']} "
            f"(evaluation run {result['evaluation_run_id']}): {result['scored']:,} test rows scored, "
            f"{result['excluded']:,} excluded",
            file=args.out,
        )
        for role in ("champion", "challenger"):
            seen = result[f"seen_by_{role}"]
            if seen is not None:
                print(f"  scored rows the {role} was trained or selected on: {seen}", file=args.out)
        for row in result["leaked_rows"]:
            print(
                f"  leaked row {row['row_hash']}{' dated ' + row['date'] if row['date'] else ''} "
                f"(seen by the {row['seen_by']})",
                file=args.out,
            )
        for note in result["notes"]:
            print(f"  note: {note}", file=args.out)
        print(
            {
                CLEAN: "  clean: no model was judged on rows it saw",
                LEAK: "  LEAK: the verdict was judged on rows a model saw",
            }.get(
                result["outcome"],
                "  UNVERIFIED: a record could not be checked (see the notes); this is not a clean result",
            ),
            file=args.out,
        )
    return {CLEAN: EXIT_OK, LEAK: EXIT_LEAK}.get(result["outcome"], EXIT_UNVERIFIED)


def _alert_rollback(args: argparse.Namespace, result: PromotionResult, actor: dict[str, str]) -> None:
    """Send the rolled_back alert through the alert routes of the pipeline that serves MODEL."""
    from airflow_mlops.alerting import send_rollback_alert

    if send_rollback_alert(args.model, result, who=actor["actor"], reason=args.reason, config_path=args.config) is None:
        print(
            f"airflow-mlops: no pipeline in [mlops] pipelines_folder serves {args.model}: no alert sent "
            f"(give --config PIPELINE_YAML)",
            file=sys.stderr,
        )


def _drift(args: argparse.Namespace) -> int:
    """Drift between two windows: the table (or JSON) on stdout; 0 no drift, 3 drift (bad input: 2, via main)."""
    from airflow_mlops.core.config import MonitoringConfig, load_config
    from airflow_mlops.core.drift import compute_drift, drift_report_html

    config: PipelineConfig | MonitoringConfig = (
        load_config(args.config, check_estimators=False) if args.config else MonitoringConfig()
    )
    report = compute_drift(args.reference, args.current, config, chunk_rows=args.chunk_rows)
    page = drift_report_html(report, args.html) if args.html else None
    if args.json:
        print(json.dumps({**report.to_dict(), "html": str(page) if page else None}, indent=2), file=args.out)
    else:
        print(report.table(), file=args.out)
        print(f"\n{report.summary()}", file=args.out)
        if page:
            print(f"report: {page}", file=args.out)
    return 3 if report.drift else EXIT_OK


def _init(args: argparse.Namespace) -> int:
    """Write the starter config and suite for a sample file; print what was written and what to review."""
    from pathlib import Path

    from airflow_mlops import settings
    from airflow_mlops.core.onboarding import init_pipeline

    root = Path(args.project_root) if args.project_root else settings.project_root()
    result = init_pipeline(
        args.name, args.source, args.target, project_root=root, task=args.task, date_column=args.date_column
    )
    print(result.summary(root), file=args.out)
    return EXIT_OK


def _table(columns: list[tuple[str, str]], rows: list[dict[str, Any]]) -> str:
    cells = [[_cell(r.get(key)) for _, key in columns] for r in rows]
    widths = [max([len(head)] + [len(row[i]) for row in cells]) for i, (head, _) in enumerate(columns)]
    lines = ["  ".join(head.ljust(w) for (head, _), w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    return str(value).replace("\n", " ")


def _short(digest: str | None) -> str | None:
    if not digest:
        return digest
    algo, _, hexdigest = digest.rpartition(":")
    return f"{algo}:{hexdigest[:12]}" if algo else hexdigest[:12]


if __name__ == "__main__":
    sys.exit(main())
