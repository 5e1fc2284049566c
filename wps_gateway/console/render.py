"""The console's pages as HTML, from the documents ``admin.views`` builds (the same the REST control returns).

No template engine: small functions, and every value goes through
``html.escape``. Parts that change while one looks at them carry
``data-live`` and an id (the script swaps them in from a fresh copy of the
page); forms never do.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import urlencode

from ..control import PRIORITY_RANGE
from ..ogcapi.html import anchor
from ..scheduling import FIELDS
from ..store.models import JobStatus
from .assets import SCRIPT, STYLE
from .csrf import FIELD

OUTBOX_NAMES = {"callbacks": "callbacks", "stac": "STAC descriptions", "catalogue": "catalogue pushes"}
NAV = (("Jobs", "/admin"), ("Cluster", "/admin/cluster"), ("Accounting", "/accounting?f=html"),
       ("Metrics", "/metrics"), ("API", "/api?f=html"))
STATUS_CHOICES = (JobStatus.ACCEPTED, JobStatus.RUNNING, JobStatus.SUCCESSFUL, JobStatus.FAILED,
                  JobStatus.DISMISSED)


def layout(base: str, title: str, body: str, *, here: str = "", user: str = "", refresh: float = 0) -> str:
    mark = ' class="here"'
    nav = "".join(f'<a href="{escape(base + href, quote=True)}"{mark if name == here else ""}>{escape(name)}</a>'
                  for name, href in NAV)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width"><style>{STYLE}</style></head>'
            f'<body data-refresh="{refresh:g}"><header><strong>WPS gateway</strong>{nav}'
            f'<span class="who">operator: {escape(user)}</span></header><main><h1>{escape(title)}</h1>\n{body}\n'
            f'<p class="note"><span id="updated"></span>'
            f'<noscript>This page does not refresh itself without JavaScript: reload it.</noscript></p>'
            f"</main><script>{SCRIPT}</script></body></html>\n")


def error_page(base: str, status: int, title: str, detail: str) -> str:
    return layout(base, f"{status} {title}", f'<p class="error">{escape(detail)}</p>'
                  f'<p>{anchor(base + "/admin", "Back to the jobs")}</p>')


def _cell(value: Any) -> str:
    return "" if value is None else escape(str(value))


def _status(value: str) -> str:
    return f'<span class="status status-{escape(value, quote=True)}">{escape(value)}</span>'


def _progress(value: int) -> str:
    return f'<progress max="100" value="{int(value)}">{int(value)}%</progress> {int(value)}%'


def _time(value: str | None) -> str:
    """An ISO instant, shorter: 2026-01-31 12:00:03 (UTC)."""
    return escape(value[:19].replace("T", " ")) if value else ""


def _table(headers: list[str], rows: list[list[str]], ident: str = "", live: bool = False) -> str:
    attributes = (f' id="{ident}"' if ident else "") + (" data-live" if live else "")
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    thead = f"<thead><tr>{head}</tr></thead>" if any(headers) else ""
    return f"<table{attributes}>{thead}<tbody>{body}</tbody></table>"


def _form(action: str, token: str, fields: str, button: str, css: str = "inline") -> str:
    return (f'<form class="{css}" method="post" action="{escape(action, quote=True)}">'
            f'<input type="hidden" name="{FIELD}" value="{escape(token, quote=True)}">{fields}'
            f"<button>{escape(button)}</button></form>")


# -- jobs ----------------------------------------------------------------------

def jobs_page(base: str, page: dict[str, Any], given: dict[str, str], processes: list[str], user: str,
              refresh: float) -> str:
    rows = [[anchor(f"{base}/admin/jobs/{job['jobID']}", job["jobID"][:8]) + f'<br><small>{_cell(job["jobID"])}'
             "</small>", _cell(job["process"]), _cell(job["user"]), _status(job["status"]),
             _progress(job["progress"]), f'<span class="num">{_cell(job["priority"])}</span>',
             _time(job["created"]), _time(job["finished"]), _cell(job["message"])] for job in page["jobs"]]
    table = _table(["job", "process", "user", "status", "progress", "priority", "created (UTC)", "finished",
                    "message"], rows, "jobs", live=True)
    return layout(base, "Jobs", _filters(given, processes) + _summary(base, page, given) + table,
                  here="Jobs", user=user, refresh=refresh)


def _filters(given: dict[str, str], processes: list[str]) -> str:
    chosen = set(given.get("status", "").split(","))
    statuses = "".join(f'<label><input type="checkbox" name="status" value="{s}"{" checked" if s in chosen else ""}>'
                       f"{s}</label>" for s in STATUS_CHOICES)
    options = '<option value="">any</option>' + "".join(
        f'<option{" selected" if given.get("process") == p else ""}>{escape(p)}</option>' for p in processes)

    def text(name: str, label: str, kind: str = "text") -> str:
        return (f'<label>{escape(label)} <input type="{kind}" name="{name}" '
                f'value="{escape(given.get(name, ""), quote=True)}" size="14"></label>')

    def select(name: str, label: str, choices: tuple[str, ...], default: str) -> str:
        current = given.get(name, default)
        items = "".join(f'<option{" selected" if c == current else ""}>{c}</option>' for c in choices)
        return f'<label>{escape(label)} <select name="{name}">{items}</select></label>'

    return ('<form class="filters" method="get"><div>' + statuses + "</div><div>"
            + f'<label>process <select name="process">{options}</select></label>'
            + text("user", "user") + text("from", "created from", "date") + text("to", "to", "date")
            + select("sort", "sort by", ("created", "status", "process", "user"), "created")
            + select("order", "order", ("desc", "asc"), "desc")
            + select("limit", "per page", ("20", "50", "100", "200"), "50")
            + "<button>Filter</button></div></form>")


def _summary(base: str, page: dict[str, Any], given: dict[str, str]) -> str:
    offset, limit, shown = page["offset"], page["limit"], len(page["jobs"])
    if page["total"] is not None:
        total = f"{page['total']:,} job{'s' if page['total'] != 1 else ''}"
        more = offset + shown < page["total"]
    else:
        total = f"{page['totalAtLeast']:,} jobs or more"
        more = shown == limit
    links = []
    if offset > 0:
        links.append(anchor(f"{base}/admin?" + urlencode({**given, "offset": max(0, offset - limit)}), "« newer"
                            if given.get("order", "desc") == "desc" else "« previous"))
    if more:
        links.append(anchor(f"{base}/admin?" + urlencode({**given, "offset": offset + limit}), "older »"
                            if given.get("order", "desc") == "desc" else "next »"))
    where = f"{offset + 1:,}–{offset + shown:,}" if shown else "none"
    return (f'<nav class="pages" id="summary" data-live><span>{escape(total)}; showing {where}</span>'
            + "".join(links) + "</nav>")


# -- one job -------------------------------------------------------------------

def job_page(base: str, job: dict[str, Any], token: str, user: str, refresh: float, flash: str = "") -> str:
    active = job["status"] in JobStatus.ACTIVE
    body = (f'<p class="flash">{escape(flash)}</p>' if flash else "") + _job_summary(job) + _actions(base, job, token)
    body += _requests(job) + _cost(base, job) + _inputs_outputs(job) + _workflow(base, job)
    return layout(base, f"Job {job['jobID']}", body, here="Jobs", user=user,
                  refresh=refresh if active or any(r["state"] == "pending" for r in job["requests"]) else 0)


def _job_summary(job: dict[str, Any]) -> str:
    rows = [["status", _status(job["status"]) + (" (dismissal requested)" if job["dismissRequested"] else "")],
            ["progress", _progress(job["progress"])], ["message", _cell(job["message"])],
            ["process", f"{_cell(job['process'])} {_cell(job['processVersion'])}"],
            ["user (group)", f"{_cell(job['user'])} ({_cell(job['group'])})"], ["priority", _cell(job["priority"])],
            ["created", _time(job["created"])], ["started", _time(job["started"])],
            ["finished", _time(job["finished"])], ["protocol", _cell(job["protocol"])],
            ["links", " · ".join(anchor(href, name) for name, href in job["links"].items())]]
    return _table(["", ""], [[escape(k), v] for k, v in rows], "job-summary", live=True)


def _actions(base: str, job: dict[str, Any], token: str) -> str:
    here = f"{base}/admin/jobs/{job['jobID']}"
    forms = []
    if job["status"] in JobStatus.ACTIVE and not job["dismissRequested"]:
        forms.append(_form(f"{here}/dismiss", token, "", "Dismiss"))
    if job["status"] == JobStatus.FAILED and not job["dismissRequested"]:
        forms.append(_form(f"{here}/retry", token, '<input type="hidden" name="tasks" value="failed">',
                           "Retry the failed tasks"))
        forms.append(_form(f"{here}/retry", token, '<input type="hidden" name="tasks" value="all">',
                           "Retry the whole job"))
    low, high = PRIORITY_RANGE
    forms.append(_form(f"{here}/priority", token, f'<label>priority <input type="number" name="priority" '
                                                  f'min="{low}" max="{high}" value="{job["priority"]}"></label> ',
                       "Set priority"))
    return "<h2>Actions</h2><div>" + "".join(forms) + "</div>"


def _requests(job: dict[str, Any]) -> str:
    if not job["requests"]:
        return ""
    rows = [[_cell(r["id"]), _cell(r["action"]) + (f" {_cell(r['value'])}" if r["value"] is not None else ""),
             _cell(r["requestedBy"]), _time(r["created"]), _status(r["state"]), _cell(r["outcome"])]
            for r in job["requests"]]
    return "<h2>Operators' requests</h2>" + _table(["#", "action", "by", "asked", "state", "outcome"], rows,
                                                  "job-requests", live=True)


def _cost(base: str, job: dict[str, Any]) -> str:
    usage = job.get("usage") or {}
    shown = ("billing", "cpu_hours_allocated", "cpu_hours_used", "wall_hours", "mem_gb_hours_allocated",
             "attempts", "attempts_retried", "attempts_failed", "unsuccessful_cpu_hours_allocated")
    rows = [[escape(name.replace("_", " ")), f'<span class="num">{usage[name]:,.4g}</span>'] for name in shown
            if name in usage]
    return ("<h2>Cost</h2>" + (_table(["figure", "value"], rows, "job-cost", live=True) if rows else
                               '<p class="note">Nothing ended yet.</p>')
            + f"<p>{anchor(base + '/accounting?f=html&job=' + job['jobID'], 'In the accounting report')}</p>")


def _inputs_outputs(job: dict[str, Any]) -> str:
    def value(item: Any) -> str:
        text = str(item)
        return anchor(text, text) if text.startswith(("http://", "https://")) else f"<code>{escape(text)}</code>"

    inputs = [[escape(name), "<br>".join(value(v) for v in values)] for name, values in job["inputs"].items()]
    outputs = [[escape(name), anchor(entry["href"], entry["file"]) if entry.get("href")
                else f"<code>{_cell(entry.get('value'))}</code>"] for name, entry in job["outputs"].items()]
    return ("<h2>Inputs</h2>" + _table(["input", "values"], inputs) + "<h2>Outputs</h2>"
            + (_table(["output", "result"], outputs, "job-outputs", live=True) if outputs
               else '<p class="note" id="job-outputs" data-live>None yet.</p>'))


def _workflow(base: str, job: dict[str, Any]) -> str:
    steps = [[escape(s["id"]), escape(", ".join(s["dependsOn"]) or "–"),
              escape(", ".join(f"{n} {status}" for status, n in sorted(s["tasks"].items())) or "not planned yet"),
              escape(f"{s['resources']['cpus']:g} cpus, {s['resources']['mem']:g} MiB" if "resources" in s else ""),
              _cell(s.get("retries"))] for s in job["steps"]]
    tasks = []
    for task in job["tasks"]:
        runs = "".join(_run(base, run) for run in task["runs"]) or '<span class="note">not launched yet</span>'
        tasks.append([f"{escape(task['step'])} {task['index']}", _status(task["status"]),
                      f"{task['attempts']} / {task['maxAttempts']}", _cell(task["message"]), runs])
    return ("<h2>Workflow</h2>" + _table(["step", "after", "tasks", "each needs", "retries"], steps, "job-steps",
                                         live=True)
            + "<h2>Tasks</h2>" + _table(["task", "status", "attempts", "message", "attempts: where, how long, "
                                         "how it ended"], tasks, "job-tasks", live=True))


def _run(base: str, run: dict[str, Any]) -> str:
    ended = run["exitCode"] if run["exitCode"] is not None else (run["reason"] or "")
    head = (f"#{run['number']} {_status(run['status'])} on {escape(run['backend'])}"
            + (f" ({escape(str(run['agent']))})" if run["agent"] else "")
            + (f", {run['seconds']:g} s" if run["seconds"] is not None else "")
            + (f", ended: {escape(str(ended))}" if ended != "" else "")
            + f" · {anchor(base + '/admin/attempts/' + run['attempt'] + '/log', 'log')}")
    history = "".join(f"<li>{_time(e['time'])} {escape(e['state'])}"
                      + (f" {escape(e['reason'])}" if e["reason"] else "")
                      + (f": {escape(e['message'])}" if e["message"] else "") + "</li>" for e in run["history"])
    message = f'<div class="note">{escape(run["message"])}</div>' if run["message"] else ""
    return (f"<details><summary>{head}</summary>{message}<ul>{history or '<li>no events yet</li>'}</ul>"
            f"</details>")


# -- a task attempt's log --------------------------------------------------------

def log_page(base: str, log: dict[str, Any], job_id: str, user: str) -> str:
    parts = [f"<p>Read from {escape(log['source'])}"
             + (f"; the engine's own page: {anchor(log['link'], log['link'])}" if log["link"] else "") + "</p>",
             f"<p>{anchor(f'{base}/admin/jobs/{job_id}', 'Back to the job')}</p>"]
    for item in log["errors"]:
        parts.append(f'<p class="error">{escape(item["name"] or "logs")}: {escape(item["error"])}</p>')
    for item in log["files"]:
        size = item["size"]
        shown = len(item["tail"].encode())
        of = f" (the last {shown:,} of {size:,} bytes)" if size is not None and size > shown else ""
        parts.append(f"<h2>{escape(item['name'])}{escape(of)}</h2><pre>{escape(item['tail']) or '(empty)'}</pre>")
    return layout(base, f"Log of {log['attempt']}", "".join(parts), here="Jobs", user=user)


# -- the cluster -------------------------------------------------------------------

def cluster_page(base: str, view: dict[str, Any], token: str, user: str, refresh: float, flash: str = "") -> str:
    body = (f'<p class="flash">{escape(flash)}</p>' if flash else "") + _dispatcher(base, view, token)
    body += _engine(view) + _queue(view) + _limits(base, view, token)
    return layout(base, "Cluster", body, here="Cluster", user=user, refresh=refresh)


def _dispatcher(base: str, view: dict[str, Any], token: str) -> str:
    d = view["dispatcher"]
    rows = [["dispatcher", escape(d.get("status", "?")) + (f" ({escape(d.get('holder', ''))})" if d.get("holder")
                                                          else "")],
            ["last heard of", f"{_cell(d.get('seconds_since'))} s ago" if d.get("seconds_since") is not None else ""],
            ["status published", f"{_cell(d.get('statusAge'))} s ago" + (" (stale)" if d.get("statusStale") else "")
             if d.get("statusAge") is not None else "never"],
            ["dispatching", f"<strong>paused</strong>: {escape(view['paused'])}" if view["paused"] else "running"]]
    if view["paused"]:
        switch = _form(f"{base}/admin/cluster/dispatching", token, '<input type="hidden" name="action" '
                                                                   'value="resume">', "Resume dispatching")
    else:
        switch = _form(f"{base}/admin/cluster/dispatching", token,
                       '<input type="hidden" name="action" value="pause"><label>reason <input name="reason" '
                       'size="30"></label> ', "Pause dispatching")
    return "<h2>Dispatcher</h2>" + _table(["", ""], [[escape(k), v] for k, v in rows], "dispatcher", True) + switch


def _resources(figures: dict[str, Any] | None) -> str:
    figures = figures or {}
    return escape(", ".join(f"{name} {value:,.6g}" for name, value in figures.items() if value is not None))


def _use(engine: dict[str, Any]) -> str:
    capacity, used = engine.get("capacity") or {}, engine.get("used") or {}
    bars = []
    for name in ("cpus", "mem"):
        total, taken = capacity.get(name), used.get(name)
        if total:
            share = min(100, round(100 * (taken or 0) / total))
            bars.append(f'{name} <progress max="100" value="{share}"></progress> {taken or 0:,.6g} of {total:,.6g}')
    return "<br>".join(bars) or _resources(used)


def _engine(view: dict[str, Any]) -> str:
    engine, name = view["engine"], view["backend"]
    if not name:
        return '<h2>Backend</h2><p class="note" id="engine" data-live>No dispatcher has published its status.</p>'
    skip = {"backend", "agents", "nodes", "capacity", "used", "caps", "cluster", "agents_total", "nodes_total"}
    rows = [["backend", escape(name)], ["in use", _use(engine)]]
    rows += [[escape(k.replace("_", " ")), _cell(v)] for k, v in engine.items() if k not in skip]
    rows += [[escape(k), _cell(v)] for k, v in (engine.get("cluster") or {}).items()]
    part = _table(["", ""], rows)
    if engine.get("agents") is not None:
        agents = [[_cell(a["hostname"]) + f"<br><small>{_cell(a['id'])}</small>",
                   escape(", ".join(f"{k}={v}" for k, v in sorted(a["attributes"].items()))),
                   _resources(a["capacity"]), _resources(a["used"]), _cell(a["tasks"]),
                   f"{_cell(a['last_offer_age'])} s"] for a in engine["agents"]]
        part += (f"<h3>Agents ({engine.get('agents_total', len(agents))})</h3>"
                 + _table(["agent", "attributes", "resources seen", "our tasks hold", "our tasks", "last offer"],
                          agents))
    if engine.get("nodes") is not None:
        nodes = [[_cell(n["hostname"]) + f"<br><small>{_cell(n['id'])}</small>", _status(str(n["state"])),
                  _resources(n["capacity"]), _resources(n["used"]), _cell(n["containers"]),
                  escape(", ".join(n.get("labels") or []))] for n in engine["nodes"]]
        part += (f"<h3>Nodes ({engine.get('nodes_total', len(nodes))})</h3>"
                 + _table(["node", "state", "resources", "in use", "containers", "labels"], nodes))
    return f'<h2>Backend</h2><div id="engine" data-live>{part}</div>'


def _queue(view: dict[str, Any]) -> str:
    tasks = view["tasks"]
    jobs = ", ".join(f"{n:,} {status}" for status, n in sorted(view["jobs"].items())) or "none"
    attempts = ", ".join(f"{a['count']} {a['state']} on {a['backend']}" for a in view["attempts"]) or "none"
    rows = [["jobs", escape(jobs)], ["tasks", escape(", ".join(f"{n:,} {s}" for s, n in tasks.items()))],
            ["handed to backends", escape(attempts)],
            ["outbox waiting", escape(", ".join(f"{n:,} {OUTBOX_NAMES[c]}" for c, n in view["outboxPending"].items()))]]
    owners = [[_cell(o["user"]), _cell(o["process"]), f'<span class="num">{o["queued"]}</span>',
               f'<span class="num">{o["running"]}</span>'] for o in view["queueByOwner"]]
    return ('<h2>Queue</h2><div id="queue" data-live>' + _table(["", ""], [[escape(k), v] for k, v in rows])
            + "<h3>By user and process</h3>"
            + (_table(["user", "process", "queued", "running"], owners) if owners else
               '<p class="note">Nothing queued or running.</p>') + "</div>")


def _limits(base: str, view: dict[str, Any], token: str) -> str:
    limits, caps = view["limits"], (view["engine"].get("caps") or {})
    action = f"{base}/admin/cluster/limits"
    rows = []
    for kind, about in limits["kinds"].items():
        live = [limit for limit in limits["live"] if limit["kind"] == kind]
        current = "; ".join(f"{(limit['name'] + ': ') if limit['name'] else ''}{limit['value']:g}" for limit in live)
        unset = "".join(_form(action, token, _hidden(op="unset", kind=kind, name=limit["name"] or ""),
                              f"Unset {limit['name'] or kind}") for limit in live)
        rows.append([f"<code>{kind}</code>", escape(about["meaning"]), escape(_in_effect(kind, caps)),
                     escape(current or "–") + unset, "yes" if about["applied"] else
                     f"no: the {escape(view['backend'] or 'current')} backend has no such cap"])
    kinds = "".join(f'<option value="{kind}">{kind}</option>' for kind in limits["kinds"])
    setter = _form(action, token, f'<input type="hidden" name="op" value="set"><label>limit <select name="kind">'
                                  f'{kinds}</select></label> <label>user or process <input name="name" size="14">'
                                  '</label> <label>value <input name="value" size="6" inputmode="decimal"></label> ',
                   "Set", css="filters")
    return ("<h2>Caps and fair-share weights</h2><p class=\"note\">Kept in the job store and applied by the "
            "dispatcher within a second or two, without a restart; a cap of 0 means none; unset gives the "
            "setting back.</p>" + _table(["limit", "what", "in effect", "set live", "applied here"], rows, "limits",
                                         live=True) + setter)


def _hidden(**fields: str) -> str:
    return "".join(f'<input type="hidden" name="{name}" value="{escape(value, quote=True)}">'
                   for name, value in fields.items())


def _in_effect(kind: str, caps: dict[str, Any]) -> str:
    field = FIELDS.get(kind, kind)
    value = caps.get(field)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {'none' if v is None else f'{v:g}'}" for k, v in sorted(value.items())) or "–"
    if field in caps:
        return "none" if value is None else f"{value:g}"
    return "–"
