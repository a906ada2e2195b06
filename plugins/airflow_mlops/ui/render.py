"""The Models pages as HTML. Every value from MLflow (names, tags, reasons, users) goes through `esc`:
it is shown as text, never interpreted as HTML; the pages load no inline script (see the CSP in app.py)."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import quote, urlencode

from airflow_mlops import links
from airflow_mlops.core import approval
from airflow_mlops.core.evaluation import panel_html as panels

ALIASES = ("champion", "challenger", "previous_champion")


def esc(value: Any) -> str:
    """`value` as HTML text ('-' when empty)."""
    return "-" if value is None or value == "" else html.escape(str(value), quote=True)


def link(href: str, text: Any, *, top: bool = False, external: bool = False) -> str:
    """An <a>: `top` opens in the Airflow window (not the plugin frame), `external` in a new tab."""
    target = ' target="_top"' if top else ' target="_blank" rel="noopener noreferrer"' if external else ""
    return f'<a href="{html.escape(href, quote=True)}"{target}>{esc(text)}</a>'


class Urls:
    """The page's own URLs (under the app's mount point) and Airflow's (under its base path)."""

    def __init__(self, mount: str, airflow_base: str) -> None:
        self.mount = mount.rstrip("/")
        self.airflow = airflow_base.rstrip("/")

    def models(self) -> str:
        return f"{self.mount}/models"

    def model(self, name: str, **query: Any) -> str:
        qs = urlencode({k: v for k, v in query.items() if v not in (None, 1)})
        return f"{self.mount}/models/{quote(name, safe='')}" + (f"?{qs}" if qs else "")

    def static(self, path: str) -> str:
        return f"{self.mount}/static/{path}"

    def dag_run(self, dag_id: str, run_id: str) -> str:
        return f"{self.airflow}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"

    def dag(self, dag_id: str) -> str:
        return f"{self.airflow}/dags/{quote(dag_id, safe='')}"

    def required_action(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
        """The task's request in Airflow's UI (its Required Actions tab)."""
        mapped = f"/mapped/{map_index}" if map_index not in (None, -1) else ""
        return f"{self.dag_run(dag_id, run_id)}/tasks/{quote(task_id, safe='')}{mapped}/required_actions"


def page(title: str, body: str, urls: Urls, *, user: str, csrf: str | None = None) -> str:
    meta = f'<meta name="csrf-token" content="{esc(csrf)}">' if csrf else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">{meta}'
        f'<title>{esc(title)}</title><link rel="stylesheet" href="{esc(urls.static("models.css"))}">'
        f'<script src="{esc(urls.static("models.js"))}" defer></script></head><body>'
        f'<header><nav>{link(urls.models(), "Models")}</nav><span class="user">signed in as {esc(user)}</span></header>'
        f"<main>{body}</main></body></html>"
    )


def models_index(rows: list[dict], urls: Urls, pending: dict[str, int] | None = None) -> str:
    """Every model the user may see: its aliases, latest verdict with its reasons, and how many promotions of it
    wait for a person (`pending`: model -> count)."""
    pending = pending or {}
    if not rows:
        return '<h1>Models</h1><p class="empty">No registered models yet (or none you may see).</p>'
    head = (
        "Model",
        "Pipeline",
        "Champion",
        "Challenger",
        "Previous champion",
        "Latest verdict",
        "Reasons",
        "In production",
    )
    body = []
    for r in rows:
        verdict = (
            f'<span class="decision {esc(_css(r.get("decision")))}">{esc(r.get("decision"))}</span> '
            f"v{esc(r.get('evaluated_version'))}<br><small>{esc(r.get('decided_at'))}"
            f"{' · trigger ' + esc(r.get('trigger')) if r.get('trigger') else ''}</small>"
            if r.get("decision")
            else "-"
        )
        body.append(
            "<tr>"
            f"<td>{link(urls.model(r['name']), r['name'])}{_waiting_badge(urls, r['name'], pending.get(r['name']))}</td>"
            f"<td>{esc(r.get('pipeline'))}</td>"
            + "".join(f'<td class="alias">{_version_cell(r["name"], r.get(a))}</td>' for a in ALIASES)
            + f"<td>{verdict}</td><td>{_reasons(r.get('reasons'))}</td>"
            f"<td>{esc(_performance(r.get('performance')))}</td></tr>"
        )
    return "<h1>Models</h1>" + _table(head, body, css="models")


def model_detail(d: dict, urls: Urls, *, can_edit: bool) -> str:
    """One model: aliases, pending approvals, actions, latest verdict and its panels (slices, importance, robustness,
    fairness), evidence plots, versions and the ledger.

    `d["pending_approvals"]`: approval_requests.pending_approvals() rows, each with `can_respond` (and `panels`,
    its verdict's)."""
    s = d["status"]
    name = s["name"]
    parts = [
        f"<h1>{esc(name)} <small>{link(links.model_url(name), 'open in MLflow', external=True)}</small></h1>",
        '<section class="aliases">' + "".join(_alias_card(name, a, s.get(a)) for a in ALIASES) + "</section>",
        _pending(name, d.get("pending_approvals") or [], urls, (d.get("status") or {}).get("champion")),
        _actions(s, can_edit),
        _verdict(s),
        panels.section(d.get("panels"), title=f"Beyond one number: version {s.get('evaluated_version')}'s verdict"),
        _evidence(d["evidence"], urls, name),
        _versions(d, urls),
        _ledger(d, urls),
    ]
    return "".join(parts)


def dag_run_versions(dag_id: str, run_id: str, versions: list[dict], urls: Urls) -> str:
    """The DAG run's tab: the model versions it registered, each linking to its model's page."""
    title = f"<h1>Models of this DAG run</h1><p>{esc(dag_id)} / {esc(run_id)}</p>"
    if not versions:
        return (
            title
            + f'<p class="empty">This DAG run registered no model version. {link(urls.models(), "All models")}</p>'
        )
    head = ("Model", "Version", "Aliases", "Decision", "Reasons", "MLflow")
    body = [
        f"<tr><td>{link(urls.model(v['name']), v['name'])}</td><td>{esc(v['version'])}</td>"
        f"<td>{esc(', '.join(v['aliases']))}</td><td>{esc(v.get('decision'))}</td><td>{_reasons(v.get('reasons'))}</td>"
        f"<td>{link(links.model_version_url(v['name'], v['version']), 'version', external=True)}</td></tr>"
        for v in versions
    ]
    return title + _table(head, body)


def error_page(status_code: int, message: str, login_url: str | None = None) -> str:
    login = f" {link(login_url, 'Sign in to Airflow', top=True)}" if login_url else ""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{status_code}</title></head>'
        f"<body><h1>{status_code}</h1><p>{esc(message)}{login}</p></body></html>"
    )


# --------------------------------------------------------------------------- parts


def _alias_card(name: str, alias: str, version: str | None) -> str:
    value = link(links.model_version_url(name, version), f"version {version}", external=True) if version else "none"
    return f'<div class="card {esc(alias)}" data-alias="{esc(alias)}"><h2>{esc(alias.replace("_", " "))}</h2><p>{value}</p></div>'


def _actions(s: dict, can_edit: bool) -> str:
    """Roll back for those who may edit the pipeline's DAGs; read-only otherwise. (HITL approvals go here too.)"""
    if not can_edit:
        return (
            '<section class="actions readonly"><p>Read-only: acting on this model needs edit access to its '
            "pipeline's DAGs.</p></section>"
        )
    if not s.get("champion"):
        return '<section class="actions"><p>No champion: nothing to roll back.</p></section>'
    target = s.get("previous_champion")
    return (
        '<section class="actions"><h2>Roll back</h2>'
        f'<form id="rollback" data-model="{esc(s["name"])}" data-champion="{esc(s["champion"])}">'
        f'<label>To version <input name="to_version" inputmode="numeric" size="6" '
        f'placeholder="{esc(target or "version")}" value="{esc(target) if target else ""}"></label>'
        '<label class="reason">Reason (required, recorded in the ledger) '
        '<input name="reason" required maxlength="2000" placeholder="e.g. complaints since 9:00"></label>'
        '<button type="submit" id="rollback-button">Roll back</button>'
        '<output id="rollback-result" role="status"></output></form></section>'
    )


def _waiting_badge(urls: Urls, name: str, count: int | None) -> str:
    if not count:
        return ""
    text = f"{count} waiting for approval"
    return f' <a class="waiting" href="{esc(urls.model(name))}#pending">{esc(text)}</a>'


def _pending(name: str, requests: list[dict], urls: Urls, champion: str | None = None) -> str:
    """The promotions of this model waiting for a person: the request, its evidence, Approve / Reject."""
    if not requests:
        return ""
    items = "".join(_pending_item(name, p, urls, champion) for p in requests)
    return f'<section id="pending" class="pending"><h2>Pending approval ({len(requests)})</h2>{items}</section>'


def _pending_item(name: str, p: dict, urls: Urls, current: str | None = None) -> str:
    ev = p.get("evidence") or {}
    stale = ""
    if str(current or "") != str(p.get("champion_version") or ""):
        stale = (
            f'<p class="stale">The champion changed since this evaluation (judged against '
            f"{esc(_v(p.get('champion_version')))}, now {esc(_v(current))}): an approval is refused as stale. "
            f"Reject it, or let it time out; a new retrain run judges it against the current champion.</p>"
        )
    primary = ev.get("primary_metric") or "primary metric"
    champion = f"v{p['champion_version']}" if p.get("champion_version") else "none"
    rows = [
        f'<tr><th scope="row">{esc(primary)} (primary)</th><td>{esc(approval.number(ev.get("challenger")))}</td>'
        f"<td>{esc(approval.number(ev.get('champion')))}</td><td></td></tr>"
    ]
    for rail in ev.get("guard_rails") or []:
        rows.append(
            f'<tr><th scope="row">{esc(rail.get("metric"))} (guard rail)</th>'
            f"<td>{esc(approval.number(rail.get('challenger')))}</td><td>{esc(approval.number(rail.get('champion')))}</td>"
            f"<td>tolerance {esc(rail.get('tolerance'))}</td></tr>"
        )
    numbers = (
        f'<table class="numbers"><thead><tr><th></th><th>challenger v{esc(p.get("version"))}</th>'
        f"<th>champion {esc(champion)}</th><th></th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    facts = approval.evidence_facts(ev)
    facts.append(f"the gate said {ev.get('decision') or '-'}")
    reasons = [*(ev.get("why") or []), *(f"failed: {f}" for f in ev.get("failed") or [])]
    where = [
        link(urls.dag_run(p["dag_id"], p["run_id"]), f"Airflow run {p['dag_id']} / {p['run_id']}", top=True),
        link(
            urls.required_action(p["dag_id"], p["run_id"], p.get("task_id") or "branch", p.get("map_index", -1)),
            "Required Actions in Airflow",
            top=True,
        ),
    ]
    if ev.get("evaluation_run_id"):
        where.append(link(links.run_url(ev["evaluation_run_id"]), "MLflow evaluation run", external=True))
    if p.get("version"):
        where.append(link(links.model_version_url(name, p["version"]), f"version {p['version']}", external=True))
    return (
        f'<article class="request" data-version="{esc(p.get("version"))}">'
        f"<h3>{esc(p.get('subject'))}</h3>"
        f'<p class="when">Waiting since {esc(p.get("waiting_since"))} · times out at {esc(p.get("timeout_at"))} '
        f"(no answer by then rejects)</p>{stale}"
        f'{numbers}<ul class="facts">{"".join(f"<li>{esc(f)}</li>" for f in facts)}</ul>{panels.folded(p.get("panels"))}'
        f'<p class="label">Why a person decides:</p>{_reasons(reasons, css="reasons")}'
        f'<p class="links">{" · ".join(where)}</p>{_approval_form(name, p)}</article>'
    )


def _v(version: object) -> str:
    return f"v{version}" if version else "no champion"


def _approval_form(name: str, p: dict) -> str:
    if not p.get("can_respond"):
        return (
            '<p class="readonly">Read-only: answering needs permission to respond to this DAG\'s required actions.</p>'
        )
    return (
        f'<form class="approval" data-model="{esc(name)}" data-dag-id="{esc(p["dag_id"])}" '
        f'data-run-id="{esc(p["run_id"])}" data-version="{esc(p.get("version"))}">'
        '<label class="comment">Comment (recorded on the version and in the ledger; required to reject) '
        '<textarea name="comment" rows="2" maxlength="2000" '
        'placeholder="e.g. gain is flat but the data is newer"></textarea></label>'
        '<div class="buttons"><button type="submit" name="decision" value="approve" class="approve">'
        f"Approve v{esc(p.get('version'))}</button>"
        '<button type="submit" name="decision" value="reject" class="reject">Reject</button></div>'
        '<output role="status"></output></form>'
    )


def _verdict(s: dict) -> str:
    if not s.get("decision"):
        return '<section><h2>Latest verdict</h2><p class="empty">No verdict yet.</p></section>'
    started = (
        f"<p>Started by {esc(s.get('trigger'))}: {esc(s.get('trigger_summary'))}</p>"
        if s.get("trigger_summary")
        else ""
    )
    perf = f"<p>In production: {esc(_performance(s.get('performance')))}</p>" if s.get("performance") else ""
    return (
        f'<section class="verdict"><h2>Latest verdict: <span class="decision {esc(_css(s["decision"]))}">'
        f"{esc(s['decision'])}</span> for version {esc(s.get('evaluated_version'))}</h2>"
        f"<p>Decided at {esc(s.get('decided_at'))}, trigger {esc(s.get('trigger'))}, data {esc(s.get('data_digest'))}</p>"
        f"{_reasons(s.get('reasons'), css='reasons')}{started}{perf}</section>"
    )


def _evidence(items: list[dict], urls: Urls, name: str) -> str:
    if not items:
        return '<section><h2>Evidence</h2><p class="empty">No plots logged yet.</p></section>'
    figures = "".join(
        f'<figure><img src="{esc(e["src"])}" alt="{esc(e["path"])}" loading="lazy"><figcaption>{esc(e["title"])}: '
        f"{esc(e['path'].rsplit('/', 1)[-1])} · {link(links.run_url(e['run_id'], e['experiment_id']), 'MLflow run', external=True)}"
        "</figcaption></figure>"
        for e in items
    )
    return f'<section class="evidence"><h2>Evidence</h2><div class="plots">{figures}</div></section>'


def _versions(d: dict, urls: Urls) -> str:
    name = d["status"]["name"]
    head = ("Version", "Aliases", "Status", "Created", "Decision", "Trigger", "Data", "Made by", "MLflow")
    body = []
    for v in d["versions"]:
        made_by = (
            link(urls.dag_run(v["dag_id"], v["dag_run_id"]), f"{v['dag_id']} / {v['dag_run_id']}", top=True)
            if v.get("dag_id") and v.get("dag_run_id")
            else "-"
        )
        mlflow = link(links.model_version_url(name, v["version"]), "version", external=True)
        if v.get("run_id"):
            mlflow += " · " + link(links.run_url(v["run_id"]), "training run", external=True)
        body.append(
            f"<tr><td>{esc(v['version'])}</td><td>{esc(', '.join(v['aliases']))}</td><td>{esc(v['status'])}</td>"
            f"<td>{esc(v['created_at'])}</td><td>{esc(v.get('decision'))}</td><td>{esc(v.get('trigger'))}</td>"
            f"<td>{esc(_short(v.get('data_digest')))}</td><td>{made_by}</td><td>{mlflow}</td></tr>"
        )
    newest = d["status"].get("latest_version")
    title = f"Versions (newest: {esc(newest)}, newest first)" if newest else "Versions"
    return f"<section><h2>{title}</h2>{_table(head, body)}{_versions_pager(urls, name, d)}</section>"


def _ledger(d: dict, urls: Urls) -> str:
    name = d["status"]["name"]
    head = ("When", "Action", "Alias", "From", "To", "Who", "Why", "Trigger")
    body = []
    for e in d["ledger"]:
        actor = e.get("actor") or {}
        who = esc(e.get("by"))
        if actor.get("airflow.dag_id") and actor.get("airflow.run_id"):
            who = link(urls.dag_run(actor["airflow.dag_id"], actor["airflow.run_id"]), e.get("by"), top=True)
        body.append(
            f'<tr class="ledger-entry"><td>{esc(e.get("at"))}</td><td>{esc(e.get("action"))}</td><td>{esc(e.get("alias"))}</td>'
            f'<td>{esc(e.get("from"))}</td><td>{esc(e.get("to"))}</td><td class="who">{who}</td>'
            f'<td class="why">{_why(e.get("reason"))}</td><td>{esc(e.get("trigger"))}</td></tr>'
        )
    pager = _ledger_pager(urls, name, d)
    return (
        f'<section class="ledger"><h2>Ledger of alias moves ({esc(d["ledger_total"])}, newest first)</h2>'
        f"{_table(head, body, css='ledger')}{pager}</section>"
    )


def _why(reason: Any) -> str:
    """A ledger reason: a person's words (or the verdict's first check) shown, the gate's checks folded under "more"."""
    text = str(reason or "-")
    first, sep, rest = text.partition("; the gate said ")
    if sep:
        rest = "the gate said " + rest
    else:
        first, sep, rest = text.partition("; ")
    if not sep:
        return esc(first)
    return f"{esc(first)}<details><summary>more</summary>{esc(rest)}</details>"


def _versions_pager(urls: Urls, name: str, d: dict) -> str:
    """Pages of versions by number (`versions_before`): newest, newer, older; the ledger page is kept."""
    if d["versions_before"] is None and d["versions_older"] is None:
        return ""
    keep = {"ledger_page": d["ledger_page"]}
    parts = []
    if d["versions_before"] is not None:
        parts.append(link(urls.model(name, **keep), "« newest"))
        if d["versions_newer"] is not None:
            parts.append(link(urls.model(name, versions_before=d["versions_newer"], **keep), "‹ newer"))
    if d["versions"]:
        parts.append(f"versions {esc(d['versions'][0]['version'])} to {esc(d['versions'][-1]['version'])}")
    if d["versions_older"] is not None:
        parts.append(link(urls.model(name, versions_before=d["versions_older"], **keep), "older »"))
    return f'<p class="pager">{" ".join(parts)}</p>'


def _ledger_pager(urls: Urls, name: str, d: dict) -> str:
    current, pages = d["ledger_page"], max(1, -(-d["ledger_total"] // d["page_size"]))
    if pages == 1:
        return ""
    keep = {"versions_before": d["versions_before"]}
    prev = link(urls.model(name, **keep, ledger_page=current - 1), "« newer") if current > 1 else ""
    nxt = link(urls.model(name, **keep, ledger_page=current + 1), "older »") if current < pages else ""
    return f'<p class="pager">{prev} page {current} of {pages} {nxt}</p>'


def _table(head: tuple[str, ...], rows: list[str], css: str = "") -> str:
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    empty = f'<tr><td colspan="{len(head)}" class="empty">none</td></tr>' if not rows else ""
    return f'<table class="{esc(css)}"><thead><tr>{th}</tr></thead><tbody>{"".join(rows)}{empty}</tbody></table>'


def _reasons(reasons: list[str] | None, css: str = "") -> str:
    if not reasons:
        return "-"
    return f'<ul class="{esc(css)}">' + "".join(f"<li>{esc(r)}</li>" for r in reasons) + "</ul>"


def _version_cell(name: str, version: str | None) -> str:
    return link(links.model_version_url(name, version), version, external=True) if version else "-"


def _performance(summary: dict | None) -> str | None:
    if not summary:
        return None
    from airflow_mlops.core.performance.evidence import describe_summary

    return describe_summary(summary)


def _css(decision: Any) -> str:
    return "".join(ch for ch in str(decision or "").lower() if ch.isalnum() or ch == "_")


def _short(digest: str | None) -> str | None:
    if not digest:
        return digest
    algo, _, hexdigest = digest.rpartition(":")
    return f"{algo}:{hexdigest[:12]}" if algo else hexdigest[:12]
