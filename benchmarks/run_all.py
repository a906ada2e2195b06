"""Run every benchmark in one go (by hand, not in CI): python benchmarks/run_all.py"""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {platform.processor() or ''} "
        f"Python {platform.python_version()}"
    )
    for script in ("dag_parse.py", "pipelines_parse.py", "mlflow_fixed_cost.py"):
        print(f"\n## {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script)], check=True)
