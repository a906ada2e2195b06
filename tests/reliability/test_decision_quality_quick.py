"""The decision-quality benchmark's quick mode: the cases the old gate got grossly wrong (a random split
with forests on both sides; a test window holding 1 to 5 positives, where the gate at 74029ab promoted a
forest champion's logistic challenger on 3 and 4 positives), through the real path (snapshots, the
training task's functions, a real MLflow store, `core.evaluation.evaluate`). Marked slow: `make soak`.
About a minute on 2 cores (54 s here).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_quick_cases_never_promote_wrongly(tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "decision_quality.py"), "--quick", "--jobs", "2"],
        capture_output=True,
        text=True,
        timeout=540,
        cwd=tmp_path,
    )
    tail = "\n".join(run.stdout.splitlines()[-20:]) + "\n" + run.stderr[-3000:]
    assert run.returncode == 0, f"the quick cases promoted wrongly or failed (exit {run.returncode}):\n{tail}"
    assert "wrong promotion(s)" in run.stdout and ": ok" in run.stdout.splitlines()[-1], tail
