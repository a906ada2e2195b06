"""The pipeline config as YAML text, every choice commented with its reason."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import yaml

from airflow_mlops.core.onboarding.profile import number_text

if TYPE_CHECKING:
    from airflow_mlops.core.onboarding.plan import Plan

_PLAIN = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./\-]*")  # a string YAML may read unquoted
CANDIDATES = {
    "classification": [
        ("logistic_regression", "sklearn.linear_model.LogisticRegression", "{max_iter: 1000}"),
        (
            "hist_gradient_boosting",
            "sklearn.ensemble.HistGradientBoostingClassifier",
            "{max_iter: 200, learning_rate: 0.05}",
        ),
    ],
    "regression": [
        ("ridge", "sklearn.linear_model.Ridge", "{alpha: 1.0}"),
        (
            "hist_gradient_boosting",
            "sklearn.ensemble.HistGradientBoostingRegressor",
            "{max_iter: 200, learning_rate: 0.05}",
        ),
    ],
}


def render_config(plan: Plan) -> str:
    """The pipeline config as YAML text, every choice commented with its reason."""
    n, name, s = plan.sample.rows, plan.name, plan.sample
    lines = [
        f"# The {name} pipeline: a starter written by `airflow-mlops init` from {plan.source_path} ({n} rows, "
        f"{len(s.columns)} columns).",
        "# The comments say why each choice was made: review them (and `REVIEW` lines first) before the first run.",
        f"pipeline: {name}",
        _c(f"description: {_q(f'Predict {plan.target} from {s.path.name}.')}", "REVIEW: say what the model is for"),
        "",
        _c("schedule:", "the DAGs dags/pipelines.py builds from this file (times in `timezone`)"),
        _c(
            '  retrain: "0 2 * * *"', f"{name}_retrain: nightly, and whenever mlops://{name}/retrain-request is emitted"
        ),
        _c('  drift_monitor: "0 6 * * *"', f"{name}_drift_monitor: daily"),
        "  timezone: UTC",
        "",
        "source:",
        _c(
            f"  path: {_q(plan.source_path)}",
            "REVIEW: the sample; point it at the real export (a file, or a "
            f"folder of daily files {name}_YYYY-MM-DD.{s.format})",
        ),
        f"  format: {s.format}",
    ]
    if plan.date_column:
        lines.append(_c(f"  date_column: {_q(plan.date_column)}", f"REVIEW: {plan.date_note}"))
        lines.append(_c("  # window_days: 28", "train on the last 28 days before the run's date (default: all rows)"))
    lines += [
        _c("  max_file_mb: 512", "a bigger file is refused unread"),
        _c(
            f"  allowed_roots: [{_q(plan.allowed_root)}]",
            "sources must live under these folders (relative to the project root),",
        ),
        _c("", "or $AIRFLOW_MLOPS_DATA_ROOTS; any other path (and the state folder) is refused"),
    ]
    if plan.id_columns:
        ids = ", ".join(_q(c) for c in plan.id_columns)
        why = "; ".join(f"{c}: {w}" for c, w in plan.id_columns.items())
        lines.append(_c(f"  id_columns: [{ids}]", f"REVIEW: kept for joins, never a feature ({why})"))
    else:
        lines.append(_c("  # id_columns: []", "none recognised (unique text, *_id names, row numbers)"))
    if plan.na_values:
        blanks = {c.name: c.nulls for c in s.columns.values() if c.blanks}
        where = ", ".join(f"{c} ({k})" for c, k in blanks.items())
        lines.append(
            _c(
                f"  na_values: [{', '.join(_q(v) for v in plan.na_values)}]",
                f"REVIEW: blank cells in otherwise numeric columns: {where}",
            )
        )
        dtypes = ", ".join(f"{_q(c)}: {t}" for c, t in plan.dtypes.items())
        lines.append(_c(f"  dtypes: {{{dtypes}}}", "numbers once the blanks are read as missing"))
    lines += ["", "target:", f"  column: {_q(plan.target)}", _c(f"  task: {plan.task}", f"REVIEW: {plan.task_note}")]
    if plan.positive_class is not None:
        lines.append(_c(f"  positive_class: {_q(plan.positive_class)}", f"REVIEW: {plan.positive_note}"))
    elif plan.task == "binary_classification":
        lines.append(_c("  # positive_class: 1", plan.positive_note))
    lines += ["", "features:"]
    entries = [(f"  - {{name: {_q(f)}, type: {t}}}", why) for f, t, why in plan.features]
    width = max(len(code) for code, _ in entries)
    lines += [f"{code.ljust(width)}  # {why}" for code, why in entries]
    for column, why in plan.left_out.items():
        lines.append(f"  # left out: {column}: {why}")
    lines += [
        "",
        "validation:",
        f"  suite: include/expectations/{name}.json",
        "",
        "model:",
        f"  name: {name}_model",
        "  candidates:",
    ]
    for cname, estimator, params in CANDIDATES["regression" if plan.task == "regression" else "classification"]:
        lines += [f"    - name: {cname}", f"      estimator: {estimator}", f"      params: {params}"]
    lines += [
        "",
        "metrics:",
        _c(f"  primary: {plan.primary}", _primary_note(plan)),
        f"  others: [{', '.join(plan.others)}]",
        "",
    ]
    lines += _evaluation_lines(plan)
    lines += [
        "",
        "deployment:",
        _c("  smoke_rows: 100", f"rows of the snapshot scored through models:/{name}_model@champion"),
        _c("  serve: false", "true: also smoke-test `mlflow models serve` over HTTP on loopback"),
        "",
        _c("monitoring:", f"the drift monitor ({name}_drift_monitor); the defaults"),
        _c("  window_days: 7", "compare the last 7 days with the champion's own training snapshot"),
        _c("  alpha: 0.01", "per-feature significance after Benjamini-Hochberg correction"),
        _c("  psi_threshold: 0.2", "and the effect size a numeric feature needs (PSI) ..."),
        _c("  js_threshold: 0.1", "... or a categorical one (Jensen-Shannon distance)"),
        _c("  drift_share: 0.3", "drift when 30% of the features (by weight) drifted"),
        _c("  confirm_checks: 2", "ask for a retrain when drift holds in 2 ..."),
        _c("  of_last_checks: 3", "... of the last 3 checks,"),
        _c("  cooldown_hours: 24", "and not again within 24 hours"),
        "",
        _c("alerts:", "who hears about what; every alert is also written to the task log"),
        _c("  channels: {}", "none yet, e.g.:"),
        "  #   ml_team:",
        _c("  #     type: email", "through Airflow's SMTP connection"),
        "  #     conn_id: smtp_default",
        "  #     to: [ml-team@example.com]",
        _c("  events: {}", "e.g. run_failed: [ml_team], promoted: [ml_team], drift_confirmed: [ml_team]"),
        "",
        "security:",
        _c("  allow_pickle_models: false", "never load a pickled model file (it can run code)"),
        "",
        _c("split:", "which rows train, which rank the candidates, which judge them"),
    ]
    for i, (key, value) in enumerate(plan.split.items()):
        code = f"  {key}: {_q(value)}"
        lines.append(_c(code, f"REVIEW: {plan.split_note}") if i == 0 else code)
    lines += ["", "seed: 42", ""]
    return "\n".join(lines)


def _primary_note(plan: Plan) -> str:
    if plan.task == "binary_classification":
        return "ranks the candidates and decides promotion"
    if plan.task == "multiclass_classification":
        return "roc_auc (one-vs-rest) fails when a class is absent from a holdout; f1 is the macro average"
    return "in target units: lower is better"


def _evaluation_lines(plan: Plan) -> list[str]:
    p = plan.primary
    if plan.task == "regression":
        rails = [f"  #   mae: {number_text(2 * plan.margin or 0.01)}"]
        floors = ["  #   r2: 0.1"]
        leakage = _c(
            "  leakage_threshold: null", "rmse has no best score to smell leakage by (only bounded metrics do)"
        )
    else:
        rails = ["  #   accuracy: 0.02", "  #   log_loss: 0.03"]
        floors = [f"  #   {p}: {0.65 if p == 'roc_auc' else 0.5}", "  #   log_loss: 0.70"]
        leakage = _c("  leakage_threshold: 0.999", f"a test-set {p} this good smells of target leakage: reject")
    return [
        _c("evaluation:", "the champion/challenger gate"),
        _c(f"  margin: {number_text(plan.margin)}", plan.margin_note),
        _c("  confidence: 0.95", "... and the paired-bootstrap 95% interval of the gain must exclude zero"),
        "  bootstrap_samples: 1000",
        _c("  # guard_rails:", "largest tolerated regression of other metrics; set them once a baseline is known"),
        *rails,
        _c("  # floors:", f"worst acceptable values (a maximum for {'rmse/mae' if p == 'rmse' else 'log_loss'}), e.g."),
        *floors,
        leakage,
        _c(
            f"  min_test_rows: {plan.min_test_rows}",
            f"REVIEW: 60% of the {plan.test_rows} test rows of the sample's split; fewer clean test rows: reject",
        ),
        *(
            [
                _c(
                    f"  min_test_events: {plan.min_test_events}",
                    "REVIEW: of each class in the clean test rows; fewer: reject",
                )
            ]
            if plan.min_test_events
            else []
        ),
        _c("  approval: never", "never | borderline | always: when a person must approve a promotion first"),
    ]


def _c(code: str, comment: str) -> str:
    """`code` with a `# comment` aligned at column 30, as in include/pipelines/churn.yaml."""
    return f"{code:<29} # {comment}" if len(code) < 29 else f"{code}  # {comment}"


def _q(value: Any) -> str:
    """A YAML scalar: plain when it reads back as the same string, else JSON-quoted (JSON strings are YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return number_text(value)
    text = str(value)
    if _PLAIN.fullmatch(text) and yaml.safe_load(text) == text:
        return text
    return json.dumps(text, ensure_ascii=False)
