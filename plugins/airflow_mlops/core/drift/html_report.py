"""The drift report as an HTML page with PNG charts of the worst features."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from airflow_mlops.core.drift.report import DriftReport, FeatureDrift

TOP_PLOTS = 4  # features charted in the HTML report


def drift_report_html(report: DriftReport, out_dir: str | Path) -> Path:
    """``<out_dir>/drift_report.html``: the verdict, the table and charts of the worst features (PNG files)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    worst = report.worst_first()[:TOP_PLOTS]
    extras = [f for f in (report.prediction, report.target) if f is not None]
    images = []
    for i, f in enumerate([*worst, *extras]):
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f.name)[:60]
        images.append((f, distribution_plot(f, out / f"drift_{i:02d}_{safe}.png")))

    def cell(v: Any) -> str:
        return html.escape(str(v))

    rows = []
    for f in report.worst_first():
        rows.append(
            f"<tr class='{'drift' if f.drifted else ''}'><td>{cell(f.name)}</td><td>{f.kind}</td>"
            f"<td>{f.statistic_name} = {f.statistic:.4g}</td><td>{f.p_value:.3g}</td><td>{f.p_adjusted:.3g}</td>"
            f"<td>{f.effect_name} = {f.effect:.4f}</td><td>{f.threshold:g}</td><td>{f.weight:g}</td>"
            f"<td>{f.null_share_reference:.3f} / {f.null_share_current:.3f}</td>"
            f"<td>{'DRIFT' if f.drifted else '-'}</td></tr>"
        )
    for extra, label in ((report.prediction, "prediction"), (report.target, "target")):
        if extra:
            f = extra
            rows.append(
                f"<tr class='extra {'drift' if f.drifted else ''}'><td>[{label}] {cell(f.name)}</td><td>{f.kind}</td>"
                f"<td>{f.statistic_name} = {f.statistic:.4g}</td><td>{f.p_value:.3g}</td><td>-</td>"
                f"<td>{f.effect_name} = {f.effect:.4f}</td><td>{f.threshold:g}</td><td>-</td>"
                f"<td>{f.null_share_reference:.3f} / {f.null_share_current:.3f}</td>"
                f"<td>{'DRIFT' if f.drifted else '-'}</td></tr>"
            )
    skipped = "".join(f"<li>{cell(k)}: {cell(v)}</li>" for k, v in report.skipped.items())
    figures = "".join(
        f"<figure><img src='{cell(p.name)}' alt='{cell(f.name)}'><figcaption>{cell(f.name)}</figcaption></figure>"
        for f, p in images
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Drift report</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}} tr.drift td{{background:#fde2e2}}
tr.extra td{{font-style:italic}} figure{{display:inline-block;margin:0 1em 1em 0}} img{{max-width:560px}}</style>
</head><body>
<h1>Drift report: {"DRIFT" if report.drift else "no drift"}</h1>
<p>{cell(report.summary())}</p>
<p>A feature drifts when its Benjamini-Hochberg adjusted p-value is at most {report.alpha:g} and its effect size
(PSI for numeric, Jensen-Shannon distance for categorical features) reaches its threshold; the dataset drifts when
the weighted share of drifted features reaches {report.share_threshold:g}.</p>
<table><tr><th>feature</th><th>kind</th><th>statistic</th><th>p-value</th><th>adjusted</th><th>effect</th>
<th>threshold</th><th>weight</th><th>null share ref / cur</th><th>verdict</th></tr>
{"".join(rows)}</table>
{f"<h2>Skipped columns</h2><ul>{skipped}</ul>" if skipped else ""}
<h2>Distributions (worst features)</h2>
{figures}
</body></html>
"""
    path = out / "drift_report.html"
    path.write_text(page, encoding="utf-8")
    return path


def distribution_plot(feature: FeatureDrift, path: str | Path) -> Path:
    """Reference vs current shares per bin (PSI bins or categories) as grouped bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(feature.bins)
    fig: Figure = Figure(figsize=(max(6.4, 0.45 * n + 2), 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = np.arange(n)
    ax.bar(x - 0.2, feature.reference_share, width=0.4, label="reference")
    ax.bar(x + 0.2, feature.current_share, width=0.4, label="current")
    ax.set_xticks(x)
    ax.set_xticklabels(feature.bins, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("share of rows")
    verdict = "DRIFT" if feature.drifted else "stable"
    ax.set_title(
        f"{feature.name}: {feature.effect_name}={feature.effect:.3f}, {feature.statistic_name}="
        f"{feature.statistic:.3g}, p_adj={feature.p_adjusted:.2g} ({verdict})",
        fontsize=9,
    )
    ax.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path
