"""A verdict's panels as HTML, the same on the Models page (ui/render.py) and in the evaluation's report.html: the
slice table (worst slice first, regressions highlighted, slices too small to judge marked), the importance of both
models side by side (numbers and bars), and, more briefly, the robustness and fairness findings.

Every value is escaped text; bars are inline SVG drawn by attributes (no inline style: the Models page's CSP allows
none; the look is in ui/static/models.css and report.html's own style). A verdict without panels shows nothing
(core.evaluation.panel_view.shown_panels)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.evaluation import panel_view as view

if TYPE_CHECKING:
    from collections.abc import Sequence

#: Width (px) of an importance bar at the largest importance of either model.
BAR_WIDTH = 180
#: Panels shown more briefly: their summary and failing checks, the table folded.
BRIEF = ("robustness", "fairness")


def section(panels: Any, *, title: str = "Beyond one number", charts: dict[str, list[str]] | None = None) -> str:
    """A verdict's panels as one <section>; "" when it has none. `charts`: panel name -> image URLs shown in it."""
    shown = view.shown_panels(panels)
    if not shown:
        return ""
    body = "".join(_panel(p, (charts or {}).get(p["name"], ())) for p in shown)
    return f'<section class="panels" id="panels"><h2>{_t(title)}</h2>{body}</section>'


def folded(panels: Any) -> str:
    """The panels of a verdict waiting for a person: each one's summary, the tables under "details"; "" if none."""
    shown = view.shown_panels(panels)
    if not shown:
        return ""
    lines = "".join(
        f'<li class="{"fail" if p.get("blocked") else ""}"><b>{_t(p["name"])}</b>: {_t(p.get("summary") or view.NOT_MEASURED)}</li>'
        for p in shown
    )
    return (
        f'<ul class="panel-summaries">{lines}</ul><details class="panels"><summary>Slices, importance, robustness'
        f" and fairness of this verdict</summary>{''.join(_panel(p) for p in shown)}</details>"
    )


# --------------------------------------------------------------------------- one panel


def _panel(panel: dict[str, Any], charts: Sequence[str] = ()) -> str:
    name = panel["name"]
    render = {"slices": _slices, "importance": _importance, "robustness": _robustness, "fairness": _fairness}
    table = render.get(name, _generic)(panel)
    state = (
        '<span class="badge bad">blocks</span>'
        if panel.get("blocked")
        else '<span class="badge ok">holds</span>'
        if panel.get("checks")
        else ""
    )
    brief = name in BRIEF  # more briefly: the summary and what fails; the table and what passes folded
    checks = _checks(panel, passed=False if brief else None)
    if brief and (table or _checks(panel, passed=True)):
        passing = _checks(panel, passed=True)
        what = f"the table ({len(view.rows_of(panel))} rows)" + (" and the checks that pass" if passing else "")
        table = f'<details class="brief"><summary>Details: {_t(what)}</summary>{passing}{table}</details>'
    images = "".join(f'<img class="chart" src="{_t(src)}" alt="{_t(name)} chart">' for src in charts)
    return (
        f'<article class="panel {_css(name)}{" blocked" if panel.get("blocked") else ""}" data-panel="{_t(name)}">'
        f"<h3>{_t(_TITLES.get(name, name))} {state}</h3>"
        f'<p class="summary">{_t(panel.get("summary") or view.NOT_MEASURED)}</p>'
        f"{checks}{table}{_notes(panel.get('notes'))}{images}</article>"
    )


def _checks(panel: dict[str, Any], *, passed: bool | None = None) -> str:
    """The panel's checks as a list (only those that passed / failed when `passed` says so); "" if none."""
    items = "".join(
        f'<li class="{"pass" if c.get("passed") else "fail"}">{"PASS" if c.get("passed") else "FAIL"}: '
        f"{_t(c.get('text'))}</li>"
        for c in panel.get("checks") or []
        if isinstance(c, dict) and (passed is None or bool(c.get("passed")) == passed)
    )
    return f'<ul class="checks">{items}</ul>' if items else ""


_TITLES = {
    "slices": "Slices: the primary metric per segment",
    "importance": "Importance: what each model leans on",
    "robustness": "Robustness",
    "fairness": "Fairness gaps between groups",
}


def _slices(panel: dict[str, Any]) -> str:
    rows = view.slices_worst_first(view.rows_of(panel))
    if not rows:
        return ""
    d = panel.get("detail") or {}
    metric = next((r.get("metric") for r in rows if r.get("metric")), None) or "primary metric"
    basis = [f"{_count(d.get('judged'))} slices judged" if d.get("judged") is not None else ""]
    if d.get("insufficient"):
        basis.append(f"{_count(d.get('insufficient'))} too small to judge")
    if d.get("correction"):
        basis.append(f"{d['correction']} correction at alpha {d.get('alpha')}")
    if d.get("tolerance") is not None:
        basis.append(f"a regression beyond {d['tolerance']} that stays significant blocks")
    head = ("Slice", "Rows", "Rows per class", f"{metric}: challenger", "champion", "gain (interval)", "p (adjusted)",
            "Verdict")  # fmt: skip
    body = []
    for r in rows:
        status = str(r.get("status") or "")
        adjusted = f" ({view.p_value(r.get('p_adjusted'))})" if r.get("p_adjusted") is not None else ""
        # why a slice could not be judged is shown; a judged slice's check words repeat its numbers: a tooltip
        why = r.get("reason") if status == "insufficient evidence" else None
        reason = f"<br><small>{_t(why)}</small>" if why else ""
        tip = f' title="{_t(r["reason"])}"' if r.get("reason") and not why else ""
        body.append(
            f'<tr class="slice {_css(status)}"><th scope="row">{_t(r.get("slice"))}</th>'
            f'<td class="num">{view.count(r.get("rows"))}</td><td>{_t(view.events(r.get("events")))}</td>'
            f'<td class="num">{view.number(r.get("challenger"))}</td><td class="num">{view.number(r.get("champion"))}</td>'
            f'<td class="num gain">{view.signed(r.get("gain"))} {_interval(r)}</td>'
            f'<td class="num">{view.p_value(r.get("p"))}{adjusted}</td>'
            f'<td><span class="status {_css(status)}"{tip}>{_t(status or "-")}</span>{reason}</td></tr>'
        )
    facts = "; ".join(b for b in basis if b)
    legend = f'<p class="basis">{_t(facts)}. Worst slice first; gain = challenger - champion, positive is better.</p>'
    return legend + _table(head, body, "slices")


def _importance(panel: dict[str, Any]) -> str:
    rows = view.importance_ranked(view.rows_of(panel))
    if not rows:
        return ""
    d = panel.get("detail") or {}
    has_champion = any(r.get("champion") is not None for r in rows)
    facts = []
    if d.get("metric"):
        sample = f" on {_count(d.get('rows'))} test rows" if d.get("rows") else ""
        repeats = f", {d['repeats']} shuffles each" if d.get("repeats") else ""
        facts.append(f"permutation importance: the drop in {d['metric']} when a feature is shuffled{sample}{repeats}")
    if d.get("ndcg") is not None or d.get("spearman") is not None:
        facts.append(
            f"rankings agree: nDCG {view.number(d.get('ndcg'), 2)}, Spearman {view.number(d.get('spearman'), 2)}"
        )
    if d.get("moved"):
        facts.append("moved most: " + ", ".join(str(f) for f in d["moved"]))
    leaning = d.get("leaning")
    if isinstance(leaning, dict) and leaning.get("feature"):
        facts.append(
            f"the challenger leans on {leaning['feature']}: {view.share(leaning.get('challenger_share'))} of its "
            f"importance (champion {view.share(leaning.get('champion_share'))})"
        )
    scale = view.importance_scale(rows)
    head = ("#", "Feature", "Challenger", "Champion", "Side by side", "Rank (challenger / champion)")
    body = []
    for i, r in enumerate(rows, 1):
        moved = " moved" if r.get("feature") in (d.get("moved") or []) else ""
        body.append(
            f'<tr class="feature{moved}"><td class="num">{i}</td><th scope="row">{_t(r.get("feature"))}</th>'
            f'<td class="num">{_with_std(r, "challenger")}</td><td class="num">{_with_std(r, "champion")}</td>'
            f"<td>{_bars(r, scale, has_champion)}</td>"
            f'<td class="num">{_t(r.get("challenger_rank"))} / {_t(r.get("champion_rank"))}</td></tr>'
        )
    legend = (
        '<p class="legend"><svg width="12" height="10" aria-hidden="true"><rect class="bar-challenger" width="12" '
        'height="10"/></svg> challenger'
        + (
            ' <svg width="12" height="10" aria-hidden="true"><rect class="bar-champion" width="12" height="10"/></svg> '
            "champion"
            if has_champion
            else " (no champion to compare)"
        )
        + " · the whisker is one standard deviation over the shuffles</p>"
    )
    return f'<ul class="facts">{"".join(f"<li>{_t(f)}</li>" for f in facts)}</ul>{legend}' + _table(
        head, body, "importance"
    )


def _robustness(panel: dict[str, Any]) -> str:
    rows = view.rows_of(panel)
    if not rows:
        return ""
    head = ("Check", "Challenger", "Champion", "Difference (interval)", "Limit", "Result")
    body = []
    for r in rows:
        check = str(r.get("check") or "")
        is_share = check == "flip_rate" or check.startswith("monotonic:")
        fmt = view.share if is_share else view.number
        diff = view.signed_points if is_share else view.signed
        passed = r.get("passed")
        result = "-" if passed is None else "passes" if passed else "fails"
        css = "" if passed is None else "holds" if passed else "regresses"
        body.append(
            f'<tr class="check {css}"><th scope="row">{_t(r.get("label") or check)}</th>'
            f'<td class="num">{fmt(r.get("challenger"))}</td><td class="num">{fmt(r.get("champion"))}</td>'
            f'<td class="num">{diff(r.get("difference"))} {_interval(r, view.points_interval if is_share else None)}</td>'
            f'<td class="num">{fmt(r.get("limit")) if r.get("limit") is not None else "-"}</td>'
            f'<td><span class="status {css}">{result}</span></td></tr>'
        )
    return _table(head, body, "robustness")


def _fairness(panel: dict[str, Any]) -> str:
    rows = view.fairness_worst_first(view.rows_of(panel))
    if not rows:
        return ""
    head = ("Group column", "Gap", "Challenger", "Champion", "Worsening (interval)", "Limit", "Verdict", "Groups")
    body = []
    for r in rows:
        status = str(r.get("status") or "")
        groups = r["groups"] if isinstance(r.get("groups"), dict) else {}
        per_group = " · ".join(
            f"{g} {view.number(v.get('challenger'))} / {view.number(v.get('champion'))} ({view.count(v.get('rows'))} rows)"
            for g, v in groups.items()
            if isinstance(v, dict)
        )
        body.append(
            f'<tr class="gap {_css(status)}"><th scope="row">{_t(r.get("group_column"))}</th><td>{_t(r.get("metric"))}</td>'
            f'<td class="num">{view.number(r.get("challenger"))}</td><td class="num">{view.number(r.get("champion"))}</td>'
            f'<td class="num">{view.signed(r.get("worsening"))} {_interval(r)}</td>'
            f'<td class="num">{view.number(r.get("limit")) if r.get("limit") is not None else "-"}</td>'
            f'<td><span class="status {_css(status)}">{_t(status or "-")}</span></td><td><small>{_t(per_group)}</small></td></tr>'
        )
    return (
        '<p class="basis">Groups: challenger / champion per group. Fairlearn\'s definitions; a fixed threshold '
        "has no validity of its own outside the law it came from.</p>" + _table(head, body, "fairness")
    )


def _generic(panel: dict[str, Any]) -> str:
    """A panel this page does not know: its rows as they are."""
    rows = view.rows_of(panel)
    if not rows:
        return ""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    body = ["<tr>" + "".join(f"<td>{_t(r.get(k))}</td>" for k in keys) + "</tr>" for r in rows]
    return _table(tuple(keys), body, "generic")


# --------------------------------------------------------------------------- pieces


def _bars(row: dict[str, Any], scale: float, has_champion: bool) -> str:
    """Two horizontal bars on one scale (challenger above, champion below), each with a one-std whisker."""
    height = 22 if has_champion else 11
    parts = []
    for i, who in enumerate(("challenger", "champion") if has_champion else ("challenger",)):
        value, std = row.get(who), row.get(f"{who}_std")
        if not isinstance(value, int | float) or isinstance(value, bool) or scale <= 0:
            continue
        y = 1 + 11 * i
        width = max(0.0, min(1.0, value / scale)) * BAR_WIDTH
        parts.append(f'<rect class="bar-{who}" x="0" y="{y}" width="{width:.1f}" height="9"/>')
        if isinstance(std, int | float) and not isinstance(std, bool) and std > 0:
            lo = max(0.0, (value - std) / scale) * BAR_WIDTH
            hi = min(1.0, (value + std) / scale) * BAR_WIDTH
            parts.append(f'<line class="whisker" x1="{lo:.1f}" x2="{hi:.1f}" y1="{y + 4.5}" y2="{y + 4.5}"/>')
    label = _t(
        f"{row.get('feature')}: challenger {view.number(row.get('challenger'))}, champion {view.number(row.get('champion'))}"
    )
    return (
        f'<svg class="bars" width="{BAR_WIDTH}" height="{height}" viewBox="0 0 {BAR_WIDTH} {height}" role="img" '
        f'aria-label="{label}"><line class="axis" x1="0" x2="0" y1="0" y2="{height}"/>{"".join(parts)}</svg>'
    )


def _interval(row: dict[str, Any], fmt: Any = None) -> str:
    """The row's interval (low … high) in small text; "" without one."""
    text = view.interval(row.get("low"), row.get("high")) if fmt is None else fmt(row.get("low"), row.get("high"))
    return f"<small>{html.escape(text)}</small>" if text else ""


def _with_std(row: dict[str, Any], who: str) -> str:
    value, std = row.get(who), row.get(f"{who}_std")
    if value is None:
        return "-"
    spread = (
        f" <small>± {view.number(std)}</small>" if isinstance(std, int | float) and not isinstance(std, bool) else ""
    )
    return f"{view.number(value)}{spread}"


def _notes(notes: Any) -> str:
    items = [str(n) for n in notes or [] if n]
    if not items:
        return ""
    shown, more = items[:3], items[3:]
    text = "".join(f"<li>{_t(n)}</li>" for n in shown)
    rest = (
        f"<details><summary>{len(more)} more note(s)</summary><ul>{''.join(f'<li>{_t(n)}</li>' for n in more)}</ul></details>"
        if more
        else ""
    )
    return f'<ul class="notes">{text}</ul>{rest}'


def _table(head: tuple[str, ...], rows: list[str], css: str) -> str:
    """A table of the first SHOWN_ROWS rows; the rest under "more" (the same columns)."""
    th = "<thead><tr>" + "".join(f"<th>{_t(h)}</th>" for h in head) + "</tr></thead>"
    first, rest = rows[: view.SHOWN_ROWS], rows[view.SHOWN_ROWS :]
    table = f'<table class="panel-table {css}">{th}<tbody>{"".join(first)}</tbody></table>'
    if rest:
        table += (
            f'<details class="more"><summary>{len(rest)} more</summary>'
            f'<table class="panel-table {css}">{th}<tbody>{"".join(rest)}</tbody></table></details>'
        )
    return table


def _count(value: Any) -> str:
    return view.count(value)


def _t(value: Any) -> str:
    """`value` as HTML text ('-' when empty)."""
    return "-" if value is None or value == "" else html.escape(str(value), quote=True)


def _css(value: Any) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in str(value or "").lower()).strip("-")
