"""Export scikit-learn's bundled diabetes data (442 patients, Efron et al. 2004) as a CSV source.

The data ships inside the scikit-learn wheel (sklearn/datasets/data/): nothing is generated here.
Ten baseline measurements (age, sex, body-mass index, blood pressure, six blood serum values) in
their original units, the target `progression` (disease progression one year later) and a
`patient_id` (the row number) kept for joins. A regression pipeline: include/pipelines/diabetes.yaml.

    python include/diabetes_data.py --out data/diabetes
"""

from __future__ import annotations

import argparse
from pathlib import Path


def frame():
    """The diabetes data as a DataFrame: patient_id, the ten measurements, progression."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
    data.insert(0, "patient_id", [f"P{i:04d}" for i in range(1, len(data) + 1)])
    return data


def write(out: str | Path) -> Path:
    """Write `<out>/diabetes.csv` (atomically); returns its path."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "diabetes.csv"
    partial = path.with_suffix(".csv.partial")
    frame().to_csv(partial, index=False)
    partial.replace(path)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/diabetes", help="folder to write diabetes.csv into")
    path = write(parser.parse_args(argv).out)
    print(f"wrote {path} ({sum(1 for _ in path.open()) - 1} rows)")


if __name__ == "__main__":
    main()
