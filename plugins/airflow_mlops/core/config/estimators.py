"""A candidate's estimator: a scikit-learn class of the kind the task needs (classifier or regressor)."""

from __future__ import annotations

import importlib
from typing import Any

from airflow_mlops.core.config.sections import ALLOWED_ESTIMATOR_PREFIX


def check_estimator(path: str, task: str, fail: Any) -> None:
    if not path.startswith(ALLOWED_ESTIMATOR_PREFIX) or path.count(".") < 2:
        fail(
            f"unknown estimator {path!r}: give a scikit-learn class path such as sklearn.linear_model.LogisticRegression"
        )
    module_name, _, class_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        fail(f"unknown estimator {path!r}: module {module_name!r} does not exist in scikit-learn")
    cls = getattr(module, class_name, None)
    if cls is None or not hasattr(cls, "fit"):
        fail(f"unknown estimator {path!r}: {module_name} has no estimator class {class_name!r}")
        return
    wants = "regressor" if task == "regression" else "classifier"
    kind = getattr(cls, "_estimator_type", None)
    if kind is None:
        from sklearn.base import is_classifier, is_regressor

        try:
            est = cls()
            kind = "classifier" if is_classifier(est) else "regressor" if is_regressor(est) else None
        except Exception:
            kind = None
    if kind is not None and kind != wants:
        fail(f"estimator {path!r} is a {kind}, but the target task {task!r} needs a {wants}")
