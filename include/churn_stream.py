"""A deterministic, realistic customer-churn stream: one CSV file per day.

    python include/churn_stream.py --out data/churn --start 2026-01-01 --days 60 \
        --drift-from 2026-02-15 --bad-day 2026-02-20 \
        --batches data/churn_batches --labels data/churn_labels --concept-drift-from 2026-04-10

Numeric and categorical features; churn depends on contract, tenure, charges and support
calls. From `drift_from` on, the relationship shifts (price sensitivity rises, fibre users
leave) and the feature mix moves (data drift: the drift monitor sees it). From
`concept_drift_from` on, only the relationship shifts (concept drift): the very same customers
(every input drawn exactly as before), a new reason to leave: a competitor courts long-standing
customers and launches in the south, and month-to-month contracts matter less. No input
distribution moves, so only realized performance on the labels can see it. A `bad_day` produces
a broken batch: nulls, negative tenure, an unknown contract type and strings in a numeric column.
With `flipped_labels` (REGION, FIRST, LAST) the files are a faulty warehouse re-export of the same
records: on the days FIRST..LAST the churn flags of REGION's customers are inverted (an export bug),
every input and every other row exactly as the stream has them.

`--out` gets the full records (features and the label) for training. With `--batches` and
`--labels` the same days are also split the way production sees them: what is known at scoring
time (`<batches>/churn_YYYY-MM-DD.csv`, the records without `churned`) and the outcomes that arrive
later (`<labels>/churn_labels_YYYY-MM-DD.csv`: customer_id, event_date, churned; the file of day D
holds the labels OF day D, which count as arrived on D + the pipeline's label_delay_days).
Same seed, same arguments: byte-identical files.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

CONTRACTS = ["month-to-month", "one-year", "two-year"]
PAYMENTS = ["card", "bank-transfer", "electronic-check", "mailed-check"]
REGIONS = ["north", "south", "east", "west"]
TARGET = "churned"
#: A labels file: the ids to join on, the day the records are of, and the outcome.
LABEL_COLUMNS = ["customer_id", "event_date", TARGET]


def daily_batch(
    day: dt.date,
    *,
    rows: int = 400,
    seed: int = 7,
    drift_from: dt.date | None = None,
    bad: bool = False,
    concept_drift_from: dt.date | None = None,
    churn_offset: float = 0.0,
    flip_region: str | None = None,
) -> pd.DataFrame:
    """One day of customer records with the churn label observed 30 days later.

    `churn_offset` is added to every customer's churn log-odds: 0 keeps the stream's rate (about a third
    before the drift); a negative offset makes churn rare with the same relationship (-4.0: about 1.5%,
    the rare-positives benchmark rows). Every random draw stays the same, so the features do not move.
    `flip_region`: the churn flags of that region's customers come out inverted (a faulty export; the draws,
    and so every other value, stay the same).
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng([seed, day.toordinal()])
    drifted = drift_from is not None and day >= drift_from
    contract = rng.choice(CONTRACTS, size=rows, p=[0.7, 0.2, 0.1] if drifted else [0.5, 0.3, 0.2])
    payment = rng.choice(PAYMENTS, size=rows, p=[0.35, 0.25, 0.3, 0.1])
    region = rng.choice(REGIONS, size=rows)
    tenure = np.clip(rng.gamma(2.0, 12.0, size=rows), 0, 72).round(0)
    base_charge = rng.normal(85 if drifted else 65, 20, size=rows)
    charges = np.clip(base_charge + (contract == "two-year") * -10, 18, 150).round(2)
    calls = rng.poisson(2.5 if drifted else 1.2, size=rows)
    usage = np.clip(rng.lognormal(2.5, 0.6, size=rows), 0, 500).round(2)

    logit = (
        -1.2
        + 1.4 * (contract == "month-to-month")
        - 1.0 * (contract == "two-year")
        - 0.04 * tenure
        + 0.45 * calls
        + 0.6 * (payment == "electronic-check")
    )
    if drifted:
        logit = logit + 0.035 * (charges - 65) + 0.8 * (region == "south") - 0.3 * calls
    else:
        logit = logit + 0.012 * (charges - 65)
    if concept_drift_from is not None and day >= concept_drift_from:
        logit = concept_logit(contract, tenure, charges, calls, payment, region)
    logit = logit + churn_offset
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    if flip_region is not None:
        if flip_region not in REGIONS:
            raise ValueError(f"flip_region {flip_region!r} is not a region; choose one of {', '.join(REGIONS)}")
        churned = np.where(region == flip_region, 1 - churned, churned)

    frame = pd.DataFrame(
        {
            "customer_id": [f"C{day:%Y%m%d}-{i:05d}" for i in range(rows)],
            "event_date": [day.isoformat()] * rows,
            "tenure_months": tenure,
            "monthly_charges": charges,
            "support_calls": calls,
            "data_usage_gb": usage,
            "contract": contract,
            "payment_method": payment,
            "region": region,
            "churned": churned,
        }
    )
    if bad:
        frame = frame.astype({"tenure_months": object, "monthly_charges": object, "contract": object})
        frame.loc[frame.index[::3], "monthly_charges"] = None
        frame.loc[frame.index[1::7], "tenure_months"] = -5
        frame.loc[frame.index[2::11], "contract"] = "lifetime"
        frame.loc[frame.index[5::13], "tenure_months"] = "unknown"
    return frame


def concept_logit(contract: Any, tenure: Any, charges: Any, calls: Any, payment: Any, region: Any) -> Any:
    """The churn log-odds after the concept drift: the same inputs, a new reason to leave.

    Tenure's effect flips (a competitor's loyalty offer courts long-standing customers), the south
    region leaves more (the competitor launched there) and month-to-month contracts matter less;
    the churn rate stays about the same (35%), so neither inputs nor the label rate give it away.
    A champion trained before loses 0.12 to 0.16 of ROC AUC (seeds 7-11, logistic regression and gradient
    boosting alike); a model retrained on the new days recovers most of it.
    From `concept_drift_from` on this replaces the relationship, whatever `drift_from` says.
    """
    logit = (
        -2.1
        + 1.0 * (contract == "month-to-month")
        - 0.6 * (contract == "two-year")
        + 0.015 * (tenure - 24)
        + 0.45 * calls
        + 0.6 * (payment == "electronic-check")
        + 0.012 * (charges - 65)
        + 1.0 * (region == "south")
    )
    return logit


def write_stream(
    out: Path,
    start: dt.date,
    days: int,
    *,
    rows: int = 400,
    seed: int = 7,
    drift_from: dt.date | None = None,
    bad_days: tuple[dt.date, ...] = (),
    concept_drift_from: dt.date | None = None,
    batches: Path | None = None,
    labels: Path | None = None,
    churn_offset: float = 0.0,
    flipped_labels: tuple[str, dt.date, dt.date] | None = None,
) -> list[Path]:
    """Write `days` daily files churn_YYYY-MM-DD.csv into `out`; existing files are rewritten identically.

    With `batches`, also the day's records without the label (churn_YYYY-MM-DD.csv, what is known at
    scoring time); with `labels`, the day's outcomes (churn_labels_YYYY-MM-DD.csv: customer_id,
    event_date, churned). `flipped_labels` (region, first, last): the region's churn flags are inverted on
    the days first..last (a faulty re-export, see the module docstring). Returns the paths written into `out`.
    """
    out.mkdir(parents=True, exist_ok=True)
    for folder in (batches, labels):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(days):
        day = start + dt.timedelta(days=i)
        frame = daily_batch(
            day,
            rows=rows,
            seed=seed,
            drift_from=drift_from,
            bad=day in bad_days,
            concept_drift_from=concept_drift_from,
            churn_offset=churn_offset,
            flip_region=_flipped_on(day, flipped_labels),
        )
        path = out / f"churn_{day.isoformat()}.csv"
        frame.to_csv(path, index=False)
        paths.append(path)
        if batches is not None:
            frame.drop(columns=[TARGET]).to_csv(batches / f"churn_{day.isoformat()}.csv", index=False)
        if labels is not None:
            frame[LABEL_COLUMNS].to_csv(labels / f"churn_labels_{day.isoformat()}.csv", index=False)
    return paths


def _flipped_on(day: dt.date, flipped_labels: tuple[str, dt.date, dt.date] | None) -> str | None:
    """The region whose churn flags come out inverted on `day`, or None."""
    if flipped_labels is None:
        return None
    region, first, last = flipped_labels
    return region if first <= day <= last else None


def _flipped_labels(value: str) -> tuple[str, dt.date, dt.date]:
    """REGION:FIRST:LAST (dates YYYY-MM-DD) for --flipped-labels."""
    region, _, days = value.partition(":")
    first, _, last = days.partition(":")
    try:
        span = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected REGION:FIRST:LAST, e.g. north:2026-03-11:2026-03-20"
        ) from None
    if region not in REGIONS:
        raise argparse.ArgumentTypeError(f"{value!r}: region {region!r} is not one of {', '.join(REGIONS)}")
    if span[1] < span[0]:
        raise argparse.ArgumentTypeError(f"{value!r}: the last day {last} is before the first {first}")
    return region, span[0], span[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/churn"))
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2026, 1, 1))
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--rows", type=int, default=400, help="rows per day")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--drift-from", type=dt.date.fromisoformat, default=None)
    parser.add_argument("--bad-day", type=dt.date.fromisoformat, action="append", default=[])
    parser.add_argument(
        "--concept-drift-from",
        type=dt.date.fromisoformat,
        default=None,
        help="from this day the label relationship shifts while the inputs do not move",
    )
    parser.add_argument(
        "--batches",
        type=Path,
        default=None,
        help="also write each day's records without the label here (what scoring sees)",
    )
    parser.add_argument(
        "--labels", type=Path, default=None, help="also write each day's outcomes here: churn_labels_YYYY-MM-DD.csv"
    )
    parser.add_argument(
        "--churn-offset",
        type=float,
        default=0.0,
        help="added to the churn log-odds: negative makes churn rare (-4.0: about 1.5%%)",
    )
    parser.add_argument(
        "--flipped-labels",
        type=_flipped_labels,
        default=None,
        metavar="REGION:FIRST:LAST",
        help="a faulty re-export: the churn flags of REGION's customers inverted on the days FIRST..LAST",
    )
    args = parser.parse_args(argv)
    paths = write_stream(
        args.out,
        args.start,
        args.days,
        rows=args.rows,
        seed=args.seed,
        drift_from=args.drift_from,
        bad_days=tuple(args.bad_day),
        concept_drift_from=args.concept_drift_from,
        batches=args.batches,
        labels=args.labels,
        churn_offset=args.churn_offset,
        flipped_labels=args.flipped_labels,
    )
    print(
        f"wrote {len(paths)} daily files ({args.rows} rows each) to {args.out}/ [{paths[0].name} .. {paths[-1].name}]"
    )
    for what, folder in (("unlabelled batches", args.batches), ("label files", args.labels)):
        if folder is not None:
            print(f"wrote {len(paths)} {what} to {folder}/")


if __name__ == "__main__":
    main()
