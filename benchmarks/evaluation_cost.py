"""What the validation panels (issue 24) cost the evaluation task, side by side in one run.

    .venv/bin/python benchmarks/evaluation_cost.py [--rounds 3] [--challenger random_forest]

On the demo's data (include/churn_stream.py: 28-day windows of 400 rows a day, the data drift of
the demo, churn.yaml's 3 test days), one champion (hist_gradient_boosting, window ending day 28)
and one challenger (window ending day 40) are trained and registered once, in a real MLflow store
(SQLite in a temporary folder), by the training task's own code. Then the evaluation task's work --
`core.evaluation.evaluate` (load both versions, exclude the champion's rows, score, bootstrap, the
panels) and `log_evaluation` (the run, its artifacts and plots, the version tags) -- is timed under
two configs, alternating, `--rounds` times each:

- before: every panel off (no slices, robustness.enabled false, explain.importance false): the gate
  as it was before issue 24;
- after: churn.yaml's panels as shipped, with slices on region and contract, monthly_charges declared
  monotonic increasing, robustness and importance at their defaults.

Goal (issue 24, item 7): after / before <= 1.5 (medians).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "include"), str(ROOT / "plugins")]

import decision_quality as dq  # noqa: E402 - the benchmark's shared real-path helpers (store, train, register)

START = dt.date(2026, 2, 1)
DRIFT = dt.date(2026, 3, 1)


def configs(source: Path, folder: Path):
    """(before, after): churn.yaml with every panel off, and with the panels on."""
    import yaml

    from airflow_mlops.core.config import load_config

    data = yaml.safe_load((ROOT / "include" / "pipelines" / "churn.yaml").read_text())
    data.pop("alerts", None)
    data["pipeline"] = "cost"
    data["model"]["name"] = "cost_model"
    data["source"]["path"] = str(source)
    data["validation"]["suite"] = str(ROOT / "include" / "expectations" / "churn.json")
    after = copy.deepcopy(data)
    after["evaluation"].setdefault("slices", {"columns": ["region", "contract"]})
    for feature in after["features"]:
        if feature["name"] == "monthly_charges":
            feature.setdefault("monotonic", "increasing")
    before = copy.deepcopy(after)
    before["evaluation"]["slices"] = {}
    before["evaluation"]["fairness"] = {}
    before["evaluation"]["robustness"] = {"enabled": False}
    before["evaluation"]["explain"] = {"importance": False}
    out = []
    for name, raw in (("before", before), ("after", after)):
        path = folder / "include" / "pipelines" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        out.append(load_config(path))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--champion", default="hist_gradient_boosting")
    parser.add_argument("--challenger", default="random_forest")
    args = parser.parse_args(argv)

    client, home = dq.store()
    from churn_stream import daily_batch

    from airflow_mlops.core.evaluation import evaluate, log_evaluation

    work = Path(tempfile.mkdtemp(prefix="eval-cost-", dir=home))
    source = work / "churn"
    source.mkdir()
    for i in range(40):
        day = START + dt.timedelta(days=i)
        daily_batch(day, drift_from=DRIFT).to_csv(source / f"churn_{day.isoformat()}.csv", index=False)
    before, after = configs(source, work)

    champion_end, challenger_end = START + dt.timedelta(days=27), START + dt.timedelta(days=39)
    snap, split = dq.snapshot_split(after, source, champion_end, home)
    champion = dq.train_register(client, after, snap, split, args.champion, "champion", "cost")
    snap, split = dq.snapshot_split(after, source, challenger_end, home)
    challenger = dq.train_register(client, after, snap, split, args.challenger, "challenger", "cost")
    print(
        f"champion {args.champion} v{champion['version']}, challenger {args.challenger} v{challenger['version']}, "
        f"{len(split.test):,} test rows"
    )

    seconds: dict[str, list[float]] = {"before": [], "after": []}
    for round_ in range(args.rounds):
        for name, config in (("before", before), ("after", after)):
            started = time.perf_counter()
            result = evaluate(
                client,
                config,
                split.test,
                challenger_uri=challenger["uri"],
                champion_uri=champion["uri"],
                window_end=challenger_end.isoformat(),
                champion_window_end=champion_end.isoformat(),
            )
            log_evaluation(
                client,
                result,
                experiment=config.name,
                run_name=f"cost-{name}-{round_}",
                tags={},
                model_name=config.model_name,
                challenger_version=challenger["version"],
                champion_version=champion["version"],
            )
            seconds[name].append(time.perf_counter() - started)
            panels = ", ".join(f"{p.name}: {p.summary}" for p in result.panels) or "no panels"
            print(f"round {round_ + 1} {name:6s} {seconds[name][-1]:6.2f} s  {result.verdict.decision}  ({panels})")
    b, a = statistics.median(seconds["before"]), statistics.median(seconds["after"])
    print(f"\nmedian before {b:.2f} s, after {a:.2f} s: ratio {a / b:.2f} (goal <= 1.5)")
    return 0 if a / b <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
