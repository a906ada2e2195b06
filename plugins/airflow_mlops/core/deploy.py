"""Smoke test of a registered model as it will be served: load by alias, predict a sample, check the signature.

The model is loaded with ``training.load_model`` (skops, this package's TRUSTED_TYPES, never the
types listed in the model file). Optionally the same files are served by ``mlflow models serve``
on loopback and the HTTP predictions must equal the in-process ones.

Serving with MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false: MLflow's sklearn flavor refuses to load
ANY serialization format (skops included) unless that flag is true, because its skops loader
trusts the ``skops_trusted_types`` written in the MLmodel file. So the scoring server cannot load
the model with the flag off. We therefore (1) download the version once into a private temp
folder, (2) load those very files with our own loader and TRUSTED_TYPES, (3) rewrite the local
copy's MLmodel so its ``skops_trusted_types`` is exactly TRUSTED_TYPES, and only then (4) start
the server with the flag set to true in the server subprocess's environment alone. The server
thus loads files we have already verified, with our trust list; this process keeps the flag off.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import labels as class_labels
from airflow_mlops.core import registry, tracking, training
from airflow_mlops.core.errors import ConfigError, MlopsError, unreachable_cause
from airflow_mlops.core.skops_types import TRUSTED_TYPES, UntrustedModelError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.models import ModelSignature

    from airflow_mlops.core.config import PipelineConfig

log = logging.getLogger(__name__)

PICKLE_ENV = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
_STOP_GRACE_S = 10.0


class SmokeTestFailed(MlopsError):
    """The model as served is unusable (does not load, wrong signature, bad predictions): roll back."""

    def __init__(self, message: str, *, name: str = "", version: str | None = None, alias: str = "") -> None:
        super().__init__(message)
        self.name, self.version, self.alias = name, version, alias


def smoke_test(
    client: MlflowClient,
    name: str,
    sample: pd.DataFrame,
    config: PipelineConfig,
    *,
    alias: str = registry.CHAMPION,
    serve: bool = False,
    timeout_s: float = 120,
) -> dict:
    """Load `models:/name@alias`, predict `sample`'s feature columns and check the result against the signature.

    With `serve`, also POST the sample to `mlflow models serve` on loopback and compare.
    Returns {name, alias, version, rows, columns, output_dtype, classes, checks, served}; raises
    SmokeTestFailed saying which check failed.
    """
    mv = registry.get_alias_version(client, name, alias)
    if mv is None:
        raise SmokeTestFailed(f"{name}@{alias} does not exist: there is no model to smoke-test", name=name, alias=alias)
    version = str(mv.version)
    where = f"{name}@{alias} (version {version})"

    def fail(message: str) -> SmokeTestFailed:
        return SmokeTestFailed(f"smoke test of {where} failed: {message}", name=name, version=version, alias=alias)

    if sample is None or len(sample) == 0:
        raise fail("the sample has no rows; give the smoke test some data (deployment.smoke_rows)")
    tracking.configure(client)
    checks: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mlops-smoke-") as tmp:
        import mlflow.artifacts
        from mlflow.models import Model

        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=tmp)
        except Exception as exc:
            if unreachable_cause(exc) is not None:
                raise  # the server, not the model: the task's retry will smoke-test again
            raise fail(f"cannot download the model files: {type(exc).__name__}: {exc}") from exc
        try:
            model = training.load_model(local, allow_pickle=config.security.allow_pickle_models)
        except UntrustedModelError as exc:
            raise fail(str(exc)) from exc
        except Exception as exc:
            raise fail(f"the model does not load: {type(exc).__name__}: {exc}") from exc
        checks.append("loads with airflow-mlops' trusted types")

        signature = Model.load(os.path.join(local, "MLmodel")).signature
        x = _check_inputs(signature, sample, config, fail)
        checks.append(f"inputs match the signature ({len(x.columns)} columns)")

        try:
            y = _as_vector(model.predict(x), len(x), fail)
        except SmokeTestFailed:
            raise
        except Exception as exc:
            raise fail(f"predict raised {type(exc).__name__}: {exc}") from exc
        classes = _check_outputs(model, y, signature, sample, config, fail)
        checks.append(f"{len(y)} predictions, dtype {y.dtype}, no missing values")
        if classes is not None:
            checks.append(f"predictions within the model's classes {classes}")
            try:
                positive = class_labels.describe(config, classes)
            except ConfigError as exc:
                raise fail(str(exc)) from None
            if positive:
                checks.append(f"binary metrics treat {positive} as the positive class")
            if _check_proba(model, x, fail):
                checks.append("class probabilities are finite and sum to 1")

        served = None
        if serve:
            served = _serve_and_compare(local, x, y, timeout_s=timeout_s, fail=fail)
            checks.append(f"served predictions equal in-process ones (HTTP, {served['seconds']:.1f} s)")

    log.info("smoke test of %s passed: %s", where, "; ".join(checks))
    return {
        "name": name,
        "alias": alias,
        "version": version,
        "rows": len(x),
        "columns": list(x.columns),
        "output_dtype": str(y.dtype),
        "classes": classes,
        "checks": checks,
        "served": served,
    }


# --------------------------------------------------------------------------- checks


def _check_inputs(
    signature: ModelSignature | None, sample: pd.DataFrame, config: PipelineConfig, fail: Any
) -> pd.DataFrame:
    """The sample's feature columns, in signature order, after checking names and types against the signature."""
    from pandas.api.types import is_bool_dtype, is_float_dtype, is_integer_dtype, is_numeric_dtype

    if signature is None or signature.inputs is None or not signature.inputs.has_input_names():
        raise fail("the model has no input signature with column names; it cannot be checked or served safely")
    specs = {c.name: c for c in signature.inputs.inputs}
    expected = list(specs)
    features = config.feature_names
    problems = []
    not_features = [c for c in expected if c not in features]
    if not_features:
        problems.append(f"the model expects column(s) {not_features} that are not among the pipeline's features")
    ignored = [f for f in features if f not in specs]
    if ignored:
        problems.append(f"the pipeline's feature(s) {ignored} are not in the model's signature")
    absent = [c for c in expected if c not in sample.columns]
    if absent:
        problems.append(f"the sample lacks the model's input column(s) {absent}")
    if problems:
        raise fail(
            "; ".join(problems) + f". Signature inputs: {expected}; pipeline features: {features}. "
            f"The model was trained for other columns: do not serve it"
        )
    bad = []
    for col, spec in specs.items():
        dtype = sample[col].dtype
        kind = str(getattr(spec.type, "name", spec.type))
        if kind in ("long", "integer"):
            ok = is_integer_dtype(dtype) and not is_bool_dtype(dtype)
        elif kind in ("double", "float"):
            ok = is_numeric_dtype(dtype) and not is_bool_dtype(dtype)  # MLflow converts int -> double safely
        elif kind == "boolean":
            ok = is_bool_dtype(dtype)
        elif kind == "string":
            ok = not is_numeric_dtype(dtype) and not is_float_dtype(dtype)
        else:
            ok = True
        if not ok:
            bad.append(f"{col!r}: signature {kind}, sample {dtype}")
    if bad:
        raise fail(f"the sample's column types do not match the signature: {'; '.join(bad)}")
    return sample[expected]


def _as_vector(pred: Any, n_rows: int, fail: Any) -> np.ndarray:
    import numpy as np

    y = np.asarray(pred)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1:
        raise fail(f"predict returned shape {y.shape}; expected one value per row ({n_rows},)")
    if len(y) != n_rows:
        raise fail(f"predict returned {len(y)} values for {n_rows} rows")
    return y


def _check_outputs(
    model: Any, y: np.ndarray, signature: ModelSignature, sample: pd.DataFrame, config: PipelineConfig, fail: Any
) -> list | None:
    """Missing values, dtype against the output signature, class membership. Returns the classes (or None)."""
    import numpy as np
    import pandas as pd

    missing = int(pd.isna(pd.Series(y)).sum())
    if missing:
        raise fail(f"{missing} of {len(y)} predictions are missing (NaN/None)")
    out_specs = signature.outputs.inputs if signature.outputs is not None else []
    if out_specs:
        kind = str(getattr(out_specs[0].type, "name", out_specs[0].type))
        allowed = {"long": "iu", "integer": "iu", "double": "fiu", "float": "fiu", "boolean": "b", "string": "OUS"}
        if kind in allowed and y.dtype.kind not in allowed[kind]:
            raise fail(f"predictions have dtype {y.dtype}, but the output signature says {kind}")
    if not config.is_classification:
        if y.dtype.kind not in "fiu":
            raise fail(f"a regression model returned non-numeric predictions (dtype {y.dtype})")
        if not np.isfinite(y.astype(float)).all():
            raise fail("some predictions are infinite")
        return None
    classes_attr = getattr(model, "classes_", None)
    if classes_attr is None:
        raise fail("a classifier without classes_; the model is not fitted or not a classifier")
    classes = [_plain(c) for c in classes_attr]
    known = set(classes)
    if any(isinstance(c, float) and math.isnan(c) for c in classes):
        raise fail(f"the model's classes {classes} include NaN")
    unknown = sorted({_plain(v) for v in y} - known, key=str)
    if unknown:
        raise fail(f"predictions {unknown[:10]} are not among the model's classes {classes}")
    if config.target in sample.columns:
        labels = {_plain(v) for v in sample[config.target].dropna()}
        unseen = sorted(labels - known, key=str)
        if unseen:
            raise fail(
                f"the data has label(s) {unseen[:10]} that the model never learned (its classes: {classes}); "
                f"it was trained for another target"
            )
    return classes


def _check_proba(model: Any, x: pd.DataFrame, fail: Any) -> bool:
    import numpy as np

    if not hasattr(model, "predict_proba"):
        return False
    try:
        p = np.asarray(model.predict_proba(x), dtype=float)
    except Exception as exc:
        raise fail(f"predict_proba raised {type(exc).__name__}: {exc}") from exc
    if p.shape != (len(x), len(model.classes_)):
        raise fail(f"predict_proba returned shape {p.shape}, expected {(len(x), len(model.classes_))}")
    if not np.isfinite(p).all() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
        raise fail("class probabilities are not finite or do not sum to 1")
    return True


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


# --------------------------------------------------------------------------- serving


def _serve_and_compare(model_dir: str, x: pd.DataFrame, expected: np.ndarray, *, timeout_s: float, fail: Any) -> dict:
    """Serve the verified local copy on loopback, POST `x` to /invocations, compare with `expected`; always stop."""
    import numpy as np

    _pin_trusted_types(model_dir)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        model_dir,
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-w",
        "1",
    ]
    # Only the server process may deserialize, and only the files verified above (see the module docstring).
    env = {**os.environ, PICKLE_ENV: "true"}
    # The CLI execs `uvicorn` by name: put this interpreter's bin folder (the venv's) first on PATH.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    log_path = Path(model_dir).parent / "serve.log"
    started = time.monotonic()
    deadline = started + timeout_s
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        _wait_for_ping(proc, base, deadline, log_path, fail)
        body = json.dumps({"dataframe_split": json.loads(x.to_json(orient="split", index=False))}).encode()
        request = urllib.request.Request(
            f"{base}/invocations", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=max(1.0, deadline - time.monotonic())) as resp:
                payload = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:1000]
            raise fail(f"the scoring server answered HTTP {exc.code} to /invocations: {detail}") from None
        except (OSError, ValueError) as exc:
            raise fail(f"POST /invocations failed: {type(exc).__name__}: {exc}") from None
    finally:
        _stop(proc)
    seconds = time.monotonic() - started
    predictions = payload.get("predictions") if isinstance(payload, dict) else None
    if not isinstance(predictions, list):
        raise fail(f"the scoring server's answer has no 'predictions' list: {str(payload)[:300]}")
    served = np.asarray(predictions)
    if served.ndim == 2 and served.shape[1] == 1:
        served = served.ravel()
    if served.shape != expected.shape:
        raise fail(f"the server returned {served.shape} predictions, in-process {expected.shape}")
    if expected.dtype.kind == "f":
        same = np.allclose(served.astype(float), expected, rtol=1e-6, atol=1e-9)
    else:
        same = [_plain(a) for a in served] == [_plain(b) for b in expected]
    if not same:
        raise fail("the served predictions differ from the in-process predictions of the same files")
    log.info("served %s on %s: %d predictions equal in %.1f s", model_dir, base, len(served), seconds)
    return {"url": base, "rows": len(served), "seconds": seconds}


def _pin_trusted_types(model_dir: str) -> None:
    """Make the local copy's MLmodel trust exactly TRUSTED_TYPES (what our loader just verified), nothing it declared."""
    from mlflow.models import Model

    path = os.path.join(model_dir, "MLmodel")
    mlmodel = Model.load(path)
    mlmodel.flavors["sklearn"]["skops_trusted_types"] = list(TRUSTED_TYPES)
    mlmodel.save(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_ping(proc: subprocess.Popen, base: str, deadline: float, log_path: Path, fail: Any) -> None:
    while True:
        if proc.poll() is not None:
            raise fail(f"`mlflow models serve` exited with code {proc.returncode} before answering: {_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{base}/ping", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (OSError, ValueError):
            pass
        if time.monotonic() >= deadline:
            raise fail(f"the scoring server did not answer GET /ping in time: {_tail(log_path)}")
        time.sleep(0.25)


def _stop(proc: subprocess.Popen) -> None:
    """Terminate the server's process group (the CLI starts a uvicorn child), then kill what lingers."""
    group = proc.pid  # start_new_session: the group id is the server's pid, and the group is ours alone
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=_STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        log.warning("scoring server (pid %s) ignored SIGTERM for %.0f s; killing it", proc.pid, _STOP_GRACE_S)
    try:
        os.killpg(group, signal.SIGKILL)  # the leader or any child still alive
    except ProcessLookupError:
        pass
    proc.wait(timeout=_STOP_GRACE_S)


def _tail(path: Path, chars: int = 1500) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no server log)"
    return text[-chars:].strip() or "(empty server log)"
