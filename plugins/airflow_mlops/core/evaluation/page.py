"""The evaluation page (report.html): the verdict, every reason, the metric table, the panels (slices, importance,
robustness, fairness: their tables and charts, as the Models page shows them) and the plots."""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.evaluation import panel_html

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
    """A small self-contained page: the verdict, every reason, the metric table, the panels and the plots.

    `images` are PNG file names relative to the page (they are logged next to it); a panel's charts (slices.png,
    importance.png, ...: names starting with the panel's) are shown in its section.
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
    charts = {p.name: [i for i in images if i.startswith(p.name)] for p in result.panels}
    charted = {i for names in charts.values() for i in names}
    panels = panel_html.section(
        {p.name: p.to_dict() for p in result.panels},
        title="Beyond one number: slices, importance, robustness, fairness",
        charts=charts,
    )
    pictures = "".join(
        f'<img src="{html.escape(name)}" alt="{html.escape(name)}">' for name in images if name not in charted
    )
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
{PANEL_STYLE}
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
{panels}
<h2>Plots</h2>{pictures}
</body></html>
"""


#: The look of the panels (core/evaluation/panel_html.py) in this self-contained page (the Models page has its own).
PANEL_STYLE = """
article.panel { margin: 1em 0; padding: 0.3em 1em; border: 1px solid #ccc; border-radius: 6px; }
article.panel.blocked { border-left: 5px solid #c0392b; }
article.panel p.summary { font-weight: bold; }
article.panel p.basis, article.panel p.legend, ul.notes, td small { color: #666; font-size: 0.9em; }
th[scope=row] { text-align: left; font-weight: 600; }
.badge { font-size: 0.75em; padding: 0 0.5em; border: 1px solid; border-radius: 1em; }
.badge.bad, .status.regresses, .status.worsens, .status.over-limit { color: #c0392b; }
.badge.ok, .status.holds { color: #1e8449; }
.status { font-weight: bold; } .status.insufficient-evidence { color: #a15c00; font-style: italic; }
tr.regresses td, tr.regresses th, tr.worsens td, tr.over-limit td { background: #fbe9e7; }
tr.insufficient-evidence td, tr.insufficient-evidence th { color: #888; font-style: italic; }
rect.bar-challenger { fill: #017cee; } rect.bar-champion { fill: #9aa5b1; }
line.whisker { stroke: #222; } line.axis { stroke: #ccc; }
img.chart { max-width: 70%; display: block; }
table.panel-table td.num { white-space: nowrap; }
table.panel-table td:last-child, table.panel-table th { text-align: left; }
"""
