"""How often the champion/challenger gate decides right, measured through the real path, row by row.

    .venv/bin/python benchmarks/decision_quality.py [--reps 200] [--jobs 2] [--bootstrap 1000]
        [--families ...] [--splits time random] [--positives balanced rare] [--scenarios ...]
    .venv/bin/python benchmarks/decision_quality.py --quick      # exits 1 if a quick case promotes wrongly
    .venv/bin/python benchmarks/decision_quality.py --code /tmp/before ...   # judge another checkout's gate
    .venv/bin/python benchmarks/decision_quality.py --nightly [--reps 50]      # 30 nightly gates per replay
    .venv/bin/python benchmarks/decision_quality.py --curve curve.png [--reps 50]  # require point vs lower_bound

Each replication (seed = 10,000 + replication) goes through what a retraining run does: the window's
daily CSV files are written (include/churn_stream.py), snapshotted by ``core.data.take_snapshot`` and
read back with ``read_snapshot``; ``core.rows.split_roles`` gives the roles; champion and challenger
are trained, logged and recorded (training_rows.parquet) by the training task's own
``core.training.train_candidate`` into a real MLflow store (SQLite and an artifact folder in a
temporary folder, one per worker process), registered with ``core.registry.register_challenger``,
and judged by ``core.evaluation.evaluate``, which loads both versions and reads the champion's rows
record from MLflow itself. Truth is measured, not assumed: both models score >= 10,000 fresh rows
(the 25 days after the challenger's window) that neither saw; fresh gain = challenger - champion.

Scenarios (one champion per replication, trained on the 28 days ending day 28, serves all three):

- null: the challenger's window ends one day later, same distribution;
- small_improvement: the process changes after day 28 (the stream's drift) but only 60% of each
  new day's rows follow it; the challenger's window is half after the change (a true gain of about
  2x the margin for the same family);
- harmful: as null, with 20% of the challenger's train and validation labels flipped after the
  split (its test rows, the gate's, stay clean);
- improvement (not run by default): as small_improvement with every new row changed.

Rows of the matrix, each judged on its own: family (both logistic_regression, both random_forest,
both hist_gradient_boosting, mixed_rf_to_lr: a forest champion against a logistic challenger,
mixed_lr_to_rf: the reverse) x split (time: churn.yaml's; random: a copy with split.strategy random,
where the champion was trained under the previous revision of the split, test_size 0.15, so rows it
saw move into the challenger's test role and the gate must exclude them; a random row with no
excluded rows on average is invalid: it did not exercise the exclusion) x positives (balanced:
the stream's rate, 400 rows a day; rare: churn_offset -4.0, about 1.5%, 2,000 rows a day so the 3
test days hold ~85 positives against the gate's 50 of each class).

Figures per row, with their goals: false promotion (null replications with fresh gain <= 0 that
were promoted) <= 5%; power (small_improvement replications with fresh gain >= 2x margin that were
promoted) >= 80%; harmful (promoted harmful replications whose fresh gain is <= 0:
the flipped labels made the challenger truly worse) 0%; bias (mean of the gate's point gain -
the fresh gain, per scenario; the row keeps its worst scenario) within +-0.1x margin. The last line
reads ``false_promotion=.. power=.. harmful=.. bias=..`` and holds the worst row for each figure.

``--quick``: a few replications of the cases the old gate got grossly wrong: a random split with
forests on both sides, and a test window holding 1 to 5 positives (churn_offset -5.5: about 0.3%,
where any promotion is wrong: so few events cannot show a gain). Exit status 1 when any quick case
promotes wrongly (`tests/reliability/test_decision_quality_quick.py`, `make soak`).

``--nightly``: 30 consecutive nightly retrains on a stable stream, each gated against the serving
champion (a promotion replaces it); the share of replays with any promotion (goal <= 5%).
``--curve PNG``: promotion rate at true gains of about 0.5x and 1x the margin (scenarios gain_0.5x,
gain_1x: 32% and 45% of the changed days' rows follow the new process), for ``evaluation.require``
point and lower_bound (point only against a gate that lacks the key), as a table and a PNG.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

ROOT = Path(__file__).resolve().parents[1]
#: The checkout whose plugins/ (the gate under test) is imported: --code, else this one.
CODE_ENV = "DECISION_QUALITY_CODE"
#: --test-days: the time rows' split.test_days (set in the environment so the worker processes see it).
TEST_DAYS_ENV = "DECISION_QUALITY_TEST_DAYS"

FAMILIES = {  # row name -> (champion candidate, challenger candidate)
    "logistic_regression": ("logistic_regression", "logistic_regression"),
    "random_forest": ("random_forest", "random_forest"),
    "hist_gradient_boosting": ("hist_gradient_boosting", "hist_gradient_boosting"),
    "mixed_rf_to_lr": ("random_forest", "logistic_regression"),
    "mixed_lr_to_rf": ("logistic_regression", "random_forest"),
}
#: Used when churn.yaml has no such candidate.
HGB_CANDIDATE = {
    "name": "hist_gradient_boosting",
    "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
    "params": {"max_iter": 200, "learning_rate": 0.05},
}
SPLITS = ("time", "random")
POSITIVES = {  # name -> (churn_offset, rows per day)
    "balanced": (0.0, 400),
    "rare": (-4.0, 2000),
    "few": (-5.5, 400),  # --quick only: 1 to 5 positives in the 3 test days
}
SCENARIOS = ("null", "small_improvement", "harmful", "improvement", "gain_0.5x", "gain_1x")
DEFAULT_SCENARIOS = ("null", "small_improvement", "harmful")
#: After the change, the share of each day's rows that follow the new process: a logistic challenger's
#: true gain grows about as 0.032 x share^2 (0.6: ~2x the margin 0.005; 0.32: ~0.5x; 0.45: ~1x; the
#: curve reports the gain measured on fresh rows, not this target).
SHARES = {"improvement": 1.0, "small_improvement": 0.6, "gain_0.5x": 0.32, "gain_1x": 0.45}
CURVE_SCENARIOS = ("gain_0.5x", "gain_1x")
REQUIRE_MODES = ("point", "lower_bound")
NIGHTS = 30  # --nightly: consecutive nightly gates on a stable stream
START = dt.date(2026, 1, 1)
WINDOW = 28  # days in a training window (churn.yaml source.window_days)
FRESH_DAYS = 25  # >= 10,000 fresh rows (400 a day)
FLIP_SHARE = 0.2
RANDOM_SPLIT = {"strategy": "random", "test_size": 0.2, "validation_size": 0.2}
#: The random rows' champion was trained under the split's previous revision (a config change): rows
#: it saw move into the challenger's test role, which the gate must find and exclude.
CHAMPION_RANDOM_SPLIT = {"strategy": "random", "test_size": 0.15, "validation_size": 0.2}
QUICK_CASES = (  # (family, split, positives, scenarios, replications)
    ("random_forest", "random", "balanced", ("null", "harmful"), 3),
    ("mixed_rf_to_lr", "time", "few", ("null",), 4),
    ("random_forest", "time", "few", ("null",), 2),
)
QUICK_FEW_POSITIVES = 10  # in the quick few-positives cases a promotion judged on fewer positives than this is wrong


def code_root() -> Path:
    return Path(os.environ.get(CODE_ENV) or ROOT)


def _use_code() -> None:
    for path in (str(ROOT / "include"), str(code_root() / "plugins")):
        if path not in sys.path:
            sys.path.insert(0, path)


# --------------------------------------------------------------------------- configs


def config_text(
    family: str, split: str, *, champion_revision: bool, bootstrap: int, require: str | None = None
) -> dict:
    """churn.yaml as the row needs it: both candidates, the row's split (keys every gate version reads)."""
    import yaml

    data = yaml.safe_load((ROOT / "include" / "pipelines" / "churn.yaml").read_text())
    data["pipeline"] = "dq"
    data.pop("alerts", None)
    data["validation"]["suite"] = str(ROOT / "include" / "expectations" / "churn.json")
    candidates = {c["name"]: c for c in data["model"]["candidates"]}
    candidates.setdefault(HGB_CANDIDATE["name"], HGB_CANDIDATE)
    wanted = dict.fromkeys(FAMILIES[family])
    data["model"]["candidates"] = [candidates[name] for name in wanted]
    data["model"]["name"] = f"dq_{family}_{split}"
    data["evaluation"]["bootstrap_samples"] = bootstrap
    for section, cls in (("evaluation", "EvaluationConfig"), ("split", "SplitConfig")):
        known = section_keys(cls)  # an older gate (--code) refuses keys it does not know: churn.yaml's defaults go
        for key in [k for k in data.get(section, {}) if known and k not in known]:
            del data[section][key]
    if require is not None:  # a key older gates do not know: written only when asked for
        data["evaluation"]["require"] = require
    if split == "random":
        data["split"] = dict(CHAMPION_RANDOM_SPLIT if champion_revision else RANDOM_SPLIT)
    elif os.environ.get(TEST_DAYS_ENV):
        data["split"]["test_days"] = int(os.environ[TEST_DAYS_ENV])
    return data


def load_row_config(
    folder: Path,
    family: str,
    split: str,
    *,
    champion_revision: bool,
    bootstrap: int,
    source: Path,
    require: str | None = None,
):
    import yaml

    from airflow_mlops.core.config import load_config

    data = config_text(family, split, champion_revision=champion_revision, bootstrap=bootstrap, require=require)
    data["source"]["path"] = str(source)
    name = f"{family}-{split}-{'champion' if champion_revision else 'challenger'}-{require or 'default'}.yaml"
    path = folder / "include" / "pipelines" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config(path)


# --------------------------------------------------------------------------- data


def day_frame(day: dt.date, seed: int, positives: str, drift_from: dt.date | None, share: float):
    """One day of the stream; from `drift_from` on, `share` of its rows follow the changed process."""
    import numpy as np
    import pandas as pd
    from churn_stream import daily_batch

    offset, rows = POSITIVES[positives]
    frame = daily_batch(day, rows=rows, seed=seed, drift_from=drift_from, churn_offset=offset)
    if drift_from is not None and day >= drift_from and share < 1.0:
        old = daily_batch(day, rows=rows, seed=seed + 1_000_000, churn_offset=offset)
        keep_new = np.random.default_rng([seed, day.toordinal(), 3]).random(len(frame)) < share
        frame = frame.where(pd.Series(keep_new, index=frame.index), old, axis=0)
    return frame


@dataclasses.dataclass(frozen=True)
class Stream:
    """One scenario's days: written as daily files up to the challenger's window end, fresh days in memory."""

    folder: Path
    challenger_end: dt.date
    fresh: object  # pandas DataFrame


def write_stream(folder: Path, scenario: str, seed: int, positives: str) -> Stream:
    import pandas as pd

    changed = scenario in SHARES
    drift_from = START + dt.timedelta(days=WINDOW) if changed else None
    share = SHARES.get(scenario, 1.0)
    challenger_end = START + dt.timedelta(days=WINDOW - 1 + (WINDOW // 2 if changed else 1))
    folder.mkdir(parents=True, exist_ok=True)
    day = START
    while day <= challenger_end:
        day_frame(day, seed, positives, drift_from, share).to_csv(folder / f"churn_{day.isoformat()}.csv", index=False)
        day += dt.timedelta(days=1)
    fresh = pd.concat(
        [
            day_frame(challenger_end + dt.timedelta(days=i), seed, positives, drift_from, share)
            for i in range(1, FRESH_DAYS + 1)
        ],
        ignore_index=True,
    )
    return Stream(folder, challenger_end, fresh)


def flip_labels(frame, target: str, seed: int):
    import numpy as np

    rng = np.random.default_rng([seed, 99])
    flipped = frame.copy()
    rows = rng.random(len(frame)) < FLIP_SHARE
    flipped.loc[rows, target] = 1 - flipped.loc[rows, target]
    return flipped


# --------------------------------------------------------------------------- one worker's MLflow store

_STORE: dict = {}


def store():
    """This process's MLflow client (SQLite + artifact folder in its own temporary folder) and folder."""
    if not _STORE:
        _use_code()
        home = Path(tempfile.mkdtemp(prefix="dq-worker-"))
        os.environ["AIRFLOW_MLOPS_HOME"] = str(home / "mlops")
        os.environ["AIRFLOW_MLOPS_DATA_ROOTS"] = str(home)
        import logging
        import warnings

        warnings.filterwarnings("ignore")
        logging.disable(logging.WARNING)
        from mlflow import MlflowClient

        uri = f"sqlite:///{home / 'mlflow.db'}"
        _STORE.update(client=MlflowClient(tracking_uri=uri, registry_uri=uri), home=home)
        import atexit
        import shutil
        from multiprocessing import util

        atexit.register(shutil.rmtree, home, ignore_errors=True)  # this process (--jobs 1)
        util.Finalize(None, shutil.rmtree, args=(home,), kwargs={"ignore_errors": True}, exitpriority=1)  # a worker
    return _STORE["client"], _STORE["home"]


def forget(home: Path, work: Path) -> None:
    """Drop a finished replication's files: its stream, snapshots and model artifacts (the next replication
    trains its own champion; only the small SQLite store keeps growing)."""
    import shutil

    for folder in (work, home / "snapshots", home / "mlops" / "mlartifacts"):
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- the real path


def snapshot_split(config, source: Path, window_end: dt.date, home: Path):
    """take_snapshot of the window ending `window_end`, read back, split as the training task does."""
    from airflow_mlops.core import training
    from airflow_mlops.core.data import read_snapshot, take_snapshot
    from airflow_mlops.core.rows import split_roles

    snap = take_snapshot(
        config, source=str(source), window_end=window_end, snapshot_root=home / "snapshots", allowed_roots=[home]
    )
    frame = read_snapshot(snap["uri"])
    training.check_training_data(frame, config)
    return snap, split_roles(frame, config)


def train_register(client, config, snap: dict, split, candidate: str, alias: str, run_tag: str) -> dict:
    """The training task's train_candidate (MLflow run, model, rows record), then registration as `alias`."""
    from airflow_mlops.core import registry, training

    result = training.train_candidate(
        split,
        config,
        candidate,
        client=client,
        experiment=config.name,
        data_digest=snap["digest"],
        data_uri=snap["uri"],
        tags={"benchmark.run": run_tag, "data.digest": snap["digest"]},
    )
    tags = {"data.digest": snap["digest"], registry.WINDOW_END_TAG: snap["window_end"], "benchmark.run": run_tag}
    version = registry.register_challenger(
        client, config.model_name, result["model_uri"], result["run_id"], tags=tags, alias=alias
    )
    return {**result, "version": version["version"], "uri": f"models:/{version['name']}/{version['version']}"}


def fresh_auc(model_uri: str, fresh, config) -> float:
    from airflow_mlops.core import training

    model = training.load_model(model_uri)
    return training.model_metrics(model, fresh, config, names=[config.metrics.primary])[config.metrics.primary]


def gate(client, config, split, challenger: dict, champion: dict, window_end: str, champion_end: dt.date) -> dict:
    """`core.evaluation.evaluate` as the evaluation task calls it: what it decided, on what."""
    from airflow_mlops.core.evaluation import evaluate
    from airflow_mlops.core.evaluation.power import power_at_twice_margin

    result = evaluate(
        client,
        config,
        split.test,
        challenger_uri=challenger["uri"],
        champion_uri=champion["uri"],
        window_end=window_end,
        champion_window_end=champion_end.isoformat(),
    )
    boot, test_rows = result.bootstrap, result.test_rows
    return {
        "promote": bool(result.verdict.promote),
        "decision": result.verdict.decision,
        "gate_gain": boot.diff if boot is not None else math.nan,
        "low": boot.low if boot is not None else math.nan,
        "high": boot.high if boot is not None else math.nan,
        "n_test": test_rows.n_rows if test_rows is not None else result.n_rows,
        "n_excluded": test_rows.excluded if test_rows is not None else 0,
        "test_positives": int(test_rows.frame[config.target].sum()) if test_rows is not None else 0,
        "reason": " | ".join(result.verdict.reasons)[:300],
        # what the verdict's power line said: the chance a true gain of 2x the margin is promoted on these rows
        "stated_power": power_at_twice_margin(boot, config.evaluation.margin, config.evaluation.require) or math.nan,
    }


def new_row(family: str, split: str, positives: str, scenario: str, rep: int, require: str | None) -> dict:
    return {
        "family": family,
        "split": split,
        "positives": positives,
        "scenario": scenario,
        "rep": rep,
        "require": require or "point",
        "promote": False,
        "gate_gain": math.nan,
        "low": math.nan,
        "high": math.nan,
        "fresh_gain": math.nan,
        "n_test": 0,
        "n_excluded": 0,
        "test_positives": 0,
        "decision": "",
        "error": "",
    }


def replicate(task: tuple) -> list[dict]:
    """One seed of one row: a champion, then a challenger per scenario, each judged by the real gate
    (once per `require` mode asked for; None: the config's own)."""
    family, split, positives, scenarios, rep, bootstrap, requires = task
    client, home = store()
    started = time.perf_counter()
    seed = 10_000 + rep
    work = home / f"{family}-{split}-{positives}-{rep}"
    champion_config = load_row_config(work, family, split, champion_revision=True, bootstrap=bootstrap, source=work)
    configs = {
        require: load_row_config(
            work, family, split, champion_revision=False, bootstrap=bootstrap, source=work, require=require
        )
        for require in requires
    }
    config = next(iter(configs.values()))
    champion_name, challenger_name = FAMILIES[family]
    from airflow_mlops.core.errors import MlopsError

    out = []
    champion = None
    champion_end = START + dt.timedelta(days=WINDOW - 1)
    for scenario in scenarios:
        rows = [new_row(family, split, positives, scenario, rep, require) for require in configs]
        try:
            stream = write_stream(work / scenario, scenario, seed, positives)
            if champion is None:  # the champion's window precedes every scenario's change: one champion serves all
                snap, champion_split = snapshot_split(champion_config, stream.folder, champion_end, home)
                champion = train_register(
                    client,
                    champion_config,
                    snap,
                    champion_split,
                    champion_name,
                    "champion",
                    f"{family}/{split}/{positives}/{rep}",
                )
            snap, challenger_split = snapshot_split(config, stream.folder, stream.challenger_end, home)
            if scenario == "harmful":  # the labels it learns from and is selected on; its test rows stay clean
                challenger_split = dataclasses.replace(
                    challenger_split,
                    train=flip_labels(challenger_split.train, config.target, seed),
                    validation=flip_labels(challenger_split.validation, config.target, seed + 1),
                )
            challenger = train_register(
                client,
                config,
                snap,
                challenger_split,
                challenger_name,
                "challenger",
                f"{family}/{split}/{positives}/{rep}/{scenario}",
            )
            fresh_gain = fresh_auc(challenger["uri"], stream.fresh, config) - fresh_auc(
                champion["uri"], stream.fresh, config
            )
            for row, each in zip(rows, configs.values(), strict=True):
                row["fresh_gain"] = fresh_gain
                try:
                    row.update(
                        gate(client, each, challenger_split, challenger, champion, snap["window_end"], champion_end)
                    )
                except MlopsError as exc:  # the gate refused to judge (e.g. one class in the test rows)
                    row.update(decision="refused", error=f"{type(exc).__name__}: {str(exc)[:200]}")
        except MlopsError as exc:  # training refused (e.g. a role without a class)
            for row in rows:
                row.update(decision="refused", error=f"{type(exc).__name__}: {str(exc)[:200]}")
        out.extend(rows)
    total = time.perf_counter() - started
    for r in out:
        r["rep_seconds"] = total
    forget(home, work)
    return out


def replay_nights(task: tuple) -> list[dict]:
    """--nightly: NIGHTS consecutive nightly retrains on a stable stream, each judged against the serving
    champion (a promotion makes the challenger the champion, as the deploy task does)."""
    family, split, positives, rep, bootstrap = task
    client, home = store()
    started = time.perf_counter()
    seed = 20_000 + rep
    work = home / f"nightly-{family}-{split}-{positives}-{rep}"
    champion_config = load_row_config(work, family, split, champion_revision=True, bootstrap=bootstrap, source=work)
    config = load_row_config(work, family, split, champion_revision=False, bootstrap=bootstrap, source=work)
    champion_name, challenger_name = FAMILIES[family]
    folder = work / "stream"
    folder.mkdir(parents=True)
    for i in range(WINDOW + NIGHTS):
        day = START + dt.timedelta(days=i)
        day_frame(day, seed, positives, None, 1.0).to_csv(folder / f"churn_{day.isoformat()}.csv", index=False)
    champion_end = START + dt.timedelta(days=WINDOW - 1)
    snap, first = snapshot_split(champion_config, folder, champion_end, home)
    champion = train_register(client, champion_config, snap, first, champion_name, "champion", f"nightly/{rep}")
    out = []
    for night in range(1, NIGHTS + 1):
        row = {**new_row(family, split, positives, "nightly", rep, None), "night": night}
        end = champion_end + dt.timedelta(days=night)
        try:
            snap, split_ = snapshot_split(config, folder, end, home)
            challenger = train_register(
                client, config, snap, split_, challenger_name, "challenger", f"nightly/{rep}/{night}"
            )
            row.update(gate(client, config, split_, challenger, champion, snap["window_end"], champion_end))
            if row["promote"]:
                champion, champion_end = challenger, end
        except Exception as exc:  # noqa: BLE001 - reported per night, the replay goes on
            row.update(decision="refused", error=f"{type(exc).__name__}: {str(exc)[:200]}")
        out.append(row)
    for r in out:
        r["rep_seconds"] = time.perf_counter() - started
    forget(home, work)
    return out


# --------------------------------------------------------------------------- report


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(rows: list[dict]) -> tuple[int, int]:
    return sum(r["promote"] for r in rows), len(rows)


def summarise_row(results: list[dict], margin: float) -> dict:
    """The four figures of one matrix row, each from its own scenario (never pooled across scenarios)."""
    import numpy as np

    by = {s: [r for r in results if r["scenario"] == s] for s in SCENARIOS}
    null = [r for r in by["null"] if r["fresh_gain"] <= 0]
    power = [r for r in by["small_improvement"] + by["improvement"] if r["fresh_gain"] >= 2 * margin]
    # harmful by the truth: a label-flipped challenger that is still better on fresh rows (a logistic challenger
    # against a forest champion can be) is not harmful, and promoting it is right
    harmful = [r for r in by["harmful"] if r["fresh_gain"] <= 0]
    stated = [r["stated_power"] for r in power if math.isfinite(r.get("stated_power", math.nan))]
    biases = {}
    for s, rows in by.items():
        gaps = [
            r["gate_gain"] - r["fresh_gain"]
            for r in rows
            if math.isfinite(r["gate_gain"]) and math.isfinite(r["fresh_gain"])
        ]
        if gaps:
            biases[s] = (
                float(np.mean(gaps)),
                float(np.std(gaps, ddof=1) / math.sqrt(len(gaps))) if len(gaps) > 1 else math.nan,
                len(gaps),
            )
    worst = max(biases.items(), key=lambda kv: abs(kv[1][0]), default=(None, (math.nan, math.nan, 0)))
    excluded = [r["n_excluded"] for r in results if r["decision"] != "refused"]
    return {
        "false_promotion": rate(null),
        "power": rate(power),
        "harmful": rate(harmful),
        "stated_power": float(np.mean(stated)) if stated else math.nan,
        "bias": worst[1][0],
        "bias_se": worst[1][1],
        "bias_scenario": worst[0],
        "biases": biases,
        "excluded": float(np.mean(excluded)) if excluded else math.nan,
        "refused": sum(r["decision"] == "refused" for r in results),
        "n_test": float(np.mean([r["n_test"] for r in results])) if results else math.nan,
        "test_positives": float(np.mean([r["test_positives"] for r in results])) if results else math.nan,
        "reps": len({r["rep"] for r in results}),
        "seconds_per_rep": float(np.mean([r["rep_seconds"] for r in {r["rep"]: r for r in results}.values()])),
    }


def fmt_rate(hits_n: tuple[int, int]) -> str:
    hits, n = hits_n
    if n == 0:
        return "- (0)"
    low, high = wilson(hits, n)
    return f"{hits / n:.3f} ({hits}/{n}; {low:.2f}..{high:.2f})"


def report(results: list[dict], margin: float, seconds: float) -> dict:
    """Print the scenario table and the matrix (one line per row, a column per figure); return the worst figures."""
    import numpy as np

    keys = list(dict.fromkeys((r["family"], r["split"], r["positives"]) for r in results))
    print(
        "\n| family | split | positives | scenario | replications | promoted | rate | gate gain, mean | fresh gain, "
        "mean (min..max) | bias: gate - fresh (SE) | test rows | test positives | excluded | refused |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for key in keys:
        for s in SCENARIOS:
            rows = [r for r in results if (r["family"], r["split"], r["positives"]) == key and r["scenario"] == s]
            if not rows:
                continue
            fresh = [r["fresh_gain"] for r in rows if math.isfinite(r["fresh_gain"])]
            gaps = [
                r["gate_gain"] - r["fresh_gain"]
                for r in rows
                if math.isfinite(r["gate_gain"]) and math.isfinite(r["fresh_gain"])
            ]
            gains = [r["gate_gain"] for r in rows if math.isfinite(r["gate_gain"])]
            print(
                f"| {' | '.join(key)} | {s} | {len(rows)} | {sum(r['promote'] for r in rows)} "
                f"| {sum(r['promote'] for r in rows) / len(rows):.3f} "
                f"| {np.mean(gains) if gains else math.nan:+.4f} "
                f"| {np.mean(fresh) if fresh else math.nan:+.4f} ({min(fresh, default=math.nan):+.4f}..{max(fresh, default=math.nan):+.4f}) "
                f"| {np.mean(gaps) if gaps else math.nan:+.4f} ({np.std(gaps, ddof=1) / math.sqrt(len(gaps)) if len(gaps) > 1 else math.nan:.4f}) "
                f"| {np.mean([r['n_test'] for r in rows]):.0f} | {np.mean([r['test_positives'] for r in rows]):.1f} "
                f"| {np.mean([r['n_excluded'] for r in rows]):.0f} | {sum(r['decision'] == 'refused' for r in rows)} |"
            )
    print(
        f"\nGoals: false promotion <= 0.05, power >= 0.80, harmful = 0, |bias| <= {0.1 * margin:.4f} (0.1x margin "
        f"{margin:g}). Rates: share (hits/n; 95% Wilson interval); n counts the scenario's replications that qualify "
        f"(null: fresh gain <= 0; power: fresh gain >= 2x margin).\n"
    )
    print(
        "| family | split | positives | replications | false promotion | power | stated power | harmful "
        "| bias (worst scenario) | excluded, mean | valid | s per replication | goals |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    worst = {"false_promotion": 0.0, "power": 1.0, "harmful": 0.0, "bias": 0.0}
    seen = {k: False for k in worst}
    for key in keys:
        t = summarise_row([r for r in results if (r["family"], r["split"], r["positives"]) == key], margin)
        valid = not (key[1] == "random" and not t["excluded"] > 0)
        missed = []
        for figure, ok in (
            ("false_promotion", lambda p: p <= 0.05),
            ("power", lambda p: p >= 0.8),
            ("harmful", lambda p: p == 0),
        ):
            hits, n = t[figure]
            if n:
                p = hits / n
                if not ok(p):
                    missed.append(figure)
                if valid:
                    seen[figure] = True
                    worst[figure] = max(worst[figure], p) if figure != "power" else min(worst[figure], p)
        if math.isfinite(t["bias"]):
            if abs(t["bias"]) > 0.1 * margin:
                missed.append("bias")
            if valid:
                seen["bias"] = True
                worst["bias"] = t["bias"] if abs(t["bias"]) > abs(worst["bias"]) else worst["bias"]
        print(
            f"| {' | '.join(key)} | {t['reps']} | {fmt_rate(t['false_promotion'])} | {fmt_rate(t['power'])} "
            f"| {t['stated_power']:.2f} | {fmt_rate(t['harmful'])} | {t['bias']:+.5f} ({t['bias_scenario']}, SE {t['bias_se']:.5f}) "
            f"| {t['excluded']:.0f} | {'yes' if valid else 'NO: nothing excluded'} | {t['seconds_per_rep']:.1f} "
            f"| {'met' if not missed else 'missed: ' + ', '.join(missed)} |"
        )
    for k in worst:
        if not seen[k]:
            worst[k] = math.nan
    n_reps = len({(r["family"], r["split"], r["positives"], r["rep"]) for r in results})
    print(f"\n{n_reps} replications ({len(results)} gate decisions) in {seconds:.0f} s")
    print(
        f"false_promotion={worst['false_promotion']:.3f} power={worst['power']:.3f} harmful={worst['harmful']:.3f} "
        f"bias={worst['bias']:+.5f}"
    )
    return worst


# --------------------------------------------------------------------------- main


def run(tasks: list[tuple], jobs: int, work=None, save: Path | None = None) -> list[dict]:
    """Every replication's decisions; with `save`, each replication is appended there as it finishes (a run cut
    short keeps what it did)."""
    import json

    results: list[dict] = []
    started = time.perf_counter()
    every = max(1, len(tasks) // 20)
    if jobs <= 1:
        mapped = map(work or replicate, tasks)
        pool = None
    else:
        pool = ProcessPoolExecutor(jobs)
        mapped = pool.map(work or replicate, tasks)
    try:
        for i, rows in enumerate(mapped, 1):
            results.extend(rows)
            if save is not None:
                with save.open("a") as fh:
                    fh.writelines(json.dumps(r) + "\n" for r in rows)
            if i % every == 0 or i == len(tasks):
                r = rows[0]
                print(
                    f"  {i}/{len(tasks)} replications, {time.perf_counter() - started:.0f} s "
                    f"(last: {r['family']}/{r['split']}/{r['positives']} {r['rep_seconds']:.1f} s)",
                    flush=True,
                )
    finally:
        if pool is not None:
            pool.shutdown()
    return results


def quick(args: argparse.Namespace) -> int:
    """The cases the old gate got grossly wrong; 1 when any of them promotes wrongly."""
    tasks = [
        (family, split, positives, scenarios, rep, args.bootstrap, (None,))
        for family, split, positives, scenarios, reps in QUICK_CASES
        for rep in range(args.reps or reps)
    ]
    started = time.perf_counter()
    results = run(tasks, args.jobs)
    report(results, margin(), time.perf_counter() - started)
    wrong = [
        r
        for r in results
        if r["promote"]
        and (
            r["fresh_gain"] <= 0
            or r["scenario"] == "harmful"
            or (r["positives"] == "few" and r["test_positives"] < QUICK_FEW_POSITIVES)
        )
    ]
    print()
    for r in results:
        print(
            f"quick {r['family']}/{r['split']}/{r['positives']}/{r['scenario']} rep {r['rep']}: {r['decision'] or '-'}"
            f" gain {r['gate_gain']:+.4f} [{r['low']:+.4f}, {r['high']:+.4f}] fresh {r['fresh_gain']:+.4f}, "
            f"{r['n_test']} test rows ({r['test_positives']} positive, {r['n_excluded']} excluded) {r['error']}"
        )
    print(
        f"quick: {len(wrong)} wrong promotion(s) in {len(results)} decisions, {time.perf_counter() - started:.0f} s: "
        f"{'FAIL' if wrong else 'ok'}"
    )
    return 1 if wrong else 0


def section_keys(cls_name: str) -> set[str]:
    """The keys a config section of the gate under test accepts (its typed section's fields)."""
    from airflow_mlops.core import config

    cls = getattr(config, cls_name)
    return set(getattr(cls, "__struct_fields__", getattr(cls, "_fields", ())))


def gate_knows_require() -> bool:
    return "require" in section_keys("EvaluationConfig")


def curve(args: argparse.Namespace, png: Path) -> int:
    """Promotion rate at true gains of about 0.5x and 1x the margin, for each `require` mode, as a table and a PNG."""
    requires = REQUIRE_MODES if gate_knows_require() else (None,)
    families = args.families if args.families != list(FAMILIES) else ["logistic_regression"]
    tasks = [
        (family, split, positives, CURVE_SCENARIOS, args.first_rep + rep, args.bootstrap, requires)
        for family in families
        for split in args.splits
        for positives in args.positives
        for rep in range(args.reps or 50)
    ]
    started = time.perf_counter()
    results = run(tasks, args.jobs)
    m = margin()
    import numpy as np

    print(
        "\n| family | split | positives | require | scenario | replications | fresh gain / margin, mean | promoted | rate |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    points: dict[tuple, list[tuple[float, float]]] = {}
    for key in dict.fromkeys((r["family"], r["split"], r["positives"], r["require"]) for r in results):
        for scenario in CURVE_SCENARIOS:
            rows = [
                r
                for r in results
                if (r["family"], r["split"], r["positives"], r["require"]) == key and r["scenario"] == scenario
            ]
            fresh = float(np.nanmean([r["fresh_gain"] for r in rows])) / m
            hits = sum(r["promote"] for r in rows)
            points.setdefault(key, []).append((fresh, hits / len(rows)))
            print(f"| {' | '.join(key)} | {scenario} | {len(rows)} | {fresh:.2f} | {hits} | {hits / len(rows):.3f} |")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key, pts in points.items():
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=" / ".join(key))
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("true gain on fresh rows / margin")
    ax.set_ylabel("promotion rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("The gate's operating curve (require: point vs lower_bound)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    print(f"\n{len(tasks)} replications in {time.perf_counter() - started:.0f} s; curve saved to {png}")
    return 0


def nightly(args: argparse.Namespace) -> int:
    """NIGHTS consecutive nightly gates on a stable stream: the share of replays with any promotion (goal <= 5%)."""
    tasks = [
        (family, split, positives, args.first_rep + rep, args.bootstrap)
        for family in args.families
        for split in args.splits
        for positives in args.positives
        for rep in range(args.reps or 50)
    ]
    started = time.perf_counter()
    results = run(tasks, args.jobs, work=replay_nights)
    print(
        "\n| family | split | positives | replays | with any promotion | share (95% CI) | promotions | refused nights |"
    )
    print("|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for key in dict.fromkeys((r["family"], r["split"], r["positives"]) for r in results):
        rows = [r for r in results if (r["family"], r["split"], r["positives"]) == key]
        reps = sorted({r["rep"] for r in rows})
        any_promotion = sum(any(r["promote"] for r in rows if r["rep"] == rep) for rep in reps)
        low, high = wilson(any_promotion, len(reps))
        worst = max(worst, any_promotion / len(reps))
        print(
            f"| {' | '.join(key)} | {len(reps)} | {any_promotion} | {any_promotion / len(reps):.3f} ({low:.2f}..{high:.2f}) "
            f"| {sum(r['promote'] for r in rows)} | {sum(r['decision'] == 'refused' for r in rows)} |"
        )
    print(f"\n{len(tasks)} replays of {NIGHTS} nights in {time.perf_counter() - started:.0f} s")
    print(f"nightly_any_promotion={worst:.3f}")
    return 0


def margin() -> float:
    import yaml

    return float(yaml.safe_load((ROOT / "include" / "pipelines" / "churn.yaml").read_text())["evaluation"]["margin"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=None, help="replications per row (default 200; --quick: its own)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (each with its own MLflow store)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples per gate decision")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    parser.add_argument("--positives", nargs="+", default=["balanced", "rare"], choices=list(POSITIVES))
    parser.add_argument("--scenarios", nargs="+", default=list(DEFAULT_SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--first-rep", type=int, default=0, help="first replication (seed 10,000 + it)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a few replications of the cases the old gate got grossly wrong; exit 1 if any promotes wrongly",
    )
    parser.add_argument(
        "--nightly",
        action="store_true",
        help=f"{NIGHTS} consecutive nightly gates on a stable stream; the share of replays (default 50) "
        "with any promotion",
    )
    parser.add_argument(
        "--curve",
        type=Path,
        nargs="?",
        const=Path("decision_quality_curve.png"),
        default=None,
        help="promotion rate at true gains of 0.5x and 1x the margin, for require point and "
        "lower_bound (default 50 replications, logistic_regression, time, balanced); a PNG here",
    )
    parser.add_argument("--save", type=Path, default=None, help="also write every gate decision here (JSON lines)")
    parser.add_argument(
        "--report",
        type=Path,
        nargs="+",
        default=None,
        help="print the matrix of saved decisions (--save files of runs in pieces) and run nothing",
    )
    parser.add_argument(
        "--code",
        type=Path,
        default=None,
        help="a checkout whose plugins/ is the gate under test (e.g. a worktree of an older commit)",
    )
    parser.add_argument(
        "--test-days",
        type=int,
        default=None,
        help="the time rows' split.test_days (churn.yaml: 3): how wide the gate's interval is",
    )
    args = parser.parse_args(argv)
    if args.code is not None:
        os.environ[CODE_ENV] = str(args.code.resolve())
    if args.test_days is not None:
        os.environ[TEST_DAYS_ENV] = str(args.test_days)
    if args.report:
        import json

        saved = [json.loads(line) for path in args.report for line in path.read_text().splitlines() if line.strip()]
        report(
            saved,
            margin(),
            sum({(r["family"], r["split"], r["positives"], r["rep"]): r["rep_seconds"] for r in saved}.values()),
        )
        return 0
    _use_code()
    import subprocess

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=code_root(), capture_output=True, text=True
    ).stdout.strip()
    print(
        f"# {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, gate code {code_root()} ({commit or '?'}), {args.jobs} "
        f"process(es), {args.bootstrap} bootstrap resamples, margin {margin():g}",
        flush=True,
    )
    if args.quick:
        return quick(args)
    if args.curve is not None:
        if args.splits == list(SPLITS):
            args.splits = ["time"]
        if args.positives == ["balanced", "rare"]:
            args.positives = ["balanced"]
        return curve(args, args.curve)
    if args.nightly:
        return nightly(args)
    reps = args.reps or 200
    tasks = [
        (family, split, positives, tuple(args.scenarios), args.first_rep + rep, args.bootstrap, (None,))
        for family in args.families
        for split in args.splits
        for positives in args.positives
        for rep in range(reps)
    ]
    # interleave rows so a cut-short run still covers every row
    tasks.sort(key=lambda t: (t[4], t[0], t[1], t[2]))
    started = time.perf_counter()
    results = run(tasks, args.jobs, save=args.save)
    report(results, margin(), time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
