"""The evaluation page (report.html): the verdict, every reason, the metric table and the plots."""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_mlops.core.evaluation.gate import EvaluationResult


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "&ndash;"
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def evaluation_html(result: EvaluationResult, images: Sequence[str] = ()) -> str:
    """A small self-contained page: the verdict, every reason, the metric table and the plots.

    `images` are PNG file names relative to the page (they are logged next to it).
    """
    verdict = result.verdict
    colour = "#1e8449" if verdict.promote else "#c0392b"
    rows = []
    for row in result.metric_table():
        ci = ""
        if row.get("ci_low") is not None:
            ci = f"{_number(row['ci_low'])}..{_number(row['ci_high'])}"
        rows.append(
            "<tr>"
            f"<td>{html.escape(row['metric'])}{' (primary)' if row['primary'] else ''}</td>"
            f"<td>{html.escape(row['better'])}</td>"
            f"<td>{_number(row['challenger'])}</td><td>{_number(row['champion'])}</td>"
            f"<td>{_number(row['difference'])}</td><td>{_number(row['gain'])}</td><td>{ci}</td>"
            "</tr>"
        )
    reasons = "".join(
        f'<li class="{"fail" if r.startswith("FAIL") else "pass" if r.startswith("PASS") else ""}">{html.escape(r)}</li>'
        for r in verdict.reasons
    )
    pictures = "".join(f'<img src="{html.escape(name)}" alt="{html.escape(name)}">' for name in images)
    champion = html.escape(result.champion_uri or "none (first model)")
    judged = html.escape(result.test_rows.describe()) if result.test_rows is not None else f"{result.n_rows} test rows"
    if result.class_counts is not None:
        judged += f"<br>{html.escape(result.class_counts.describe())}"
    ev = result.config.evaluation
    rule = (
        "the interval's lower bound must clear the margin"
        if ev.require == "lower_bound"
        else "the gain must reach the margin and its interval lie above zero"
    )
    judged += (
        f"<br>evaluation.require: {html.escape(ev.require)} ({rule}); guard rails by the upper bound of "
        f"their regression's interval"
    )
    if result.baseline is not None and result.baseline.version is not None:
        judged += f"; baseline guard against the first champion, version {html.escape(result.baseline.version)}"
    confidence = result.config.evaluation.confidence
    positive = (
        "" if result.positive_class is None else f" &middot; positive class {html.escape(repr(result.positive_class))}"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(result.config.name)}: champion vs challenger</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
.verdict {{ font-size: 1.6em; font-weight: bold; color: {colour}; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
li.fail {{ color: #c0392b; }} li.pass {{ color: #1e8449; }}
img {{ max-width: 48%; margin: 0.5em; border: 1px solid #eee; }}
</style></head><body>
<h1>{html.escape(result.config.name)}: champion vs challenger</h1>
<p class="verdict">{html.escape(verdict.decision)}</p>
<p>challenger {html.escape(result.challenger_uri)} &middot; champion {champion} &middot;
primary metric {html.escape(result.config.metrics.primary)}{positive}</p>
<p>{judged}</p>
<h2>Reasons</h2><ul>{reasons}</ul>
<h2>Metrics</h2>
<table><tr><th>metric</th><th>better</th><th>challenger</th><th>champion</th>
<th>difference</th><th>gain</th><th>{confidence:.0%} CI of the gain</th></tr>
{"".join(rows)}</table>
<p>difference = challenger - champion; gain = the difference oriented so positive is better.</p>
<h2>Plots</h2>{pictures}
</body></html>
"""
