"""Deployments: the project's staged rollouts (newest first) and one deployment's page
(state, stages, criteria, message, a row per device), read with the same store the
``/v1/deployments`` routes use. While a deployment runs its page follows it without
reloading (console.js polls ``/deployments/{id}/state``, JSON with the session cookie);
Pause, Resume, Cancel and Roll back are forms (CSRF, the ``deploy`` scope) that call the
same runner operations as ``POST /v1/deployments/{id}/...``."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from html import escape
from urllib.parse import quote

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import RedirectResponse

from ...report_html import definition_list
from ...errors import TinyMLError
from ...lwm2m.selector import check_selector, select
from ..deployments import MAX_MODULE, _own, _runner, create_deployment, match_view, plan_request
from ..inputs import read_upload
from .base import age, check_csrf, guarded, json_guarded, render_page, session

router = APIRouter()


def _age(iso: str | None, now: dt.datetime) -> str:
    try:
        return age(dt.datetime.fromisoformat(iso.rstrip("Z")), now) if iso else "-"
    except ValueError:
        return escape(iso)


def _state(s: str) -> str:
    return f'<span class="state {escape(s)}">{escape(s)}</span>'


def _counts_text(counts: dict) -> str:
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "-"


def _reason(row: dict) -> str:
    return row["reason"] or row["result_meaning"] or "-"


def _stage(row: dict) -> str:
    """A device row's stage as shown: its number, or "-" when it is in none (skipped)."""
    return "-" if row["stage"] is None else str(row["stage"])


def _counts(counts: dict) -> str:
    return escape(_counts_text(counts))


def _table(headings: tuple[str, ...], rows: list[str]) -> str:
    return ('<table class="list"><thead><tr>' + "".join(f'<th scope="col">{h}</th>' for h in headings)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


@router.get("/deployments")
@guarded
def deployment_list(request: Request):
    who, csrf = session(request)
    deps = _runner(request).store.list(who.project_id, 100)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    new = '<p><a class="button" href="/deployments/new">New deployment</a></p>' if "deploy" in who.scopes else ""
    if not deps:
        return render_page("Deployments", new + "<p>No deployments yet.</p>", who, csrf)
    rows = [f'<tr><td><a href="/deployments/{quote(d["id"], safe="")}">{escape(d["id"])}</a></td>'
            f'<td>{escape(str(d["module"]["name"]))} {escape(str(d["module"]["version"]))}</td>'
            f'<td>{_state(d["state"])}</td><td>{escape(str(d["stage"]))}</td><td>{_counts(d["counts"])}</td>'
            f'<td>{_age(d["created_at"], now)}</td></tr>' for d in deps]
    return render_page("Deployments", new + _table(("id", "module", "state", "stage", "devices", "age"), rows),
                       who, csrf)


def _selector(query: str, endpoints: str, tags: str) -> dict:
    """The API's selector from the form's three fields (empty ones left out)."""
    sel: dict = {}
    for key, text in (("endpoints", endpoints), ("tags", tags)):
        names = [n.strip() for n in text.split(",") if n.strip()]
        if names:
            sel[key] = names
    if query.strip():
        sel["query"] = query.strip()
    return sel


def _new_form(who, csrf: str, message: str = "", status: int = 200, f: dict | None = None):
    f = f or {}
    alert = f'<p class="error" role="alert">{escape(message)}</p>' if message else ""

    def field(name: str, label: str, placeholder: str, kind: str = "text", extra: str = "") -> str:
        return (f'<label for="{name}">{label}</label><input id="{name}" name="{name}" type="{kind}" '
                f'value="{escape(str(f.get(name, "")))}" placeholder="{escape(placeholder)}" {extra}>')
    form = ('<form method="post" action="/deployments/new" enctype="multipart/form-data" class="card">'
            f'<input type="hidden" name="csrf" value="{csrf}">'
            '<label for="module">Signed module (.tmm)</label>'
            '<input id="module" name="module" type="file" required accept=".tmm">'
            + field("query", "Capability query", 'e.g. ram >= 20000 and kernel_set == "0x1f"',
                    extra='aria-describedby="match" autocomplete="off"')
            + field("endpoints", "Endpoints (comma-separated)", "e.g. kws-1, kws-2", extra='aria-describedby="match"')
            + field("tags", "Tags, all of them (comma-separated)", "e.g. canary", extra='aria-describedby="match"')
            + '<div id="match-box" aria-live="polite"><p id="match" class="note"></p>'
            '<ul id="skipped" class="note" aria-label="devices the deployment would skip"></ul></div>'
            + field("stages", "Stages (cumulative %)", "e.g. 10, 50, 100")
            + field("inferences", "Inferences without error after activation", "0: activation is enough",
                    "number", 'min="0"')
            + field("within_s", "within (s)", "e.g. 60", "number", 'min="1"')
            + field("max_failure_ratio", "Max failure ratio per stage", "0 to 1", "number",
                    'min="0" max="1" step="any"')
            + '<label for="mode">Delivery</label><select id="mode" name="mode">'
            + "".join(f'<option value="{m}"{" selected" if f.get("mode") == m else ""}>{text}</option>'
                      for m, text in (("push", "push (the server writes the module block-wise)"),
                                      ("pull", "pull (each device fetches the published module)")))
            + '</select><button type="submit">Deploy</button></form>')
    return render_page("New deployment", alert + form, who, csrf, status)


@router.get("/deployments/new")
@guarded
def new_deployment_form(request: Request):
    who, csrf = session(request, "deploy")
    return _new_form(who, csrf)


@router.post("/deployments/match")
@json_guarded
async def deployment_match(request: Request, module: UploadFile | None = File(None), csrf: str = Form(""),
                           query: str = Form(""), endpoints: str = Form(""), tags: str = Form("")):
    """What the form shows as you type: how many of the project's devices the selector picks and,
    once a module is chosen, which of them the deployment would skip and why (the plan
    ``POST /v1/deployments`` makes, from the same function)."""
    who, expected = session(request, "deploy")
    check_csrf(csrf, expected)
    runner = _runner(request)
    sel = _selector(query, endpoints, tags)
    if not sel:
        fleet = await asyncio.to_thread(runner.server.store.fleet, who.project_id)
        return {"text": f"{len(fleet)} device(s) in the project; give a query, endpoints or tags", "reasons": []}
    check_selector(sel)
    if module is None or not module.filename:
        fleet = await asyncio.to_thread(runner.server.store.fleet, who.project_id)
        picked = select(sel, fleet)
        online = sum(1 for d in picked if d.get("online"))
        return {"text": f"picks {len(picked)} of {len(fleet)} device(s), {online} online (offline ones are "
                        "skipped); choose the module to see which others would be skipped and why", "reasons": []}
    m = match_view(*await plan_request(runner, who, sel, [100], read_upload(module, MAX_MODULE)))
    return {"text": f"picks {m['picked']} of {m['devices']} device(s): {m['module']['name']} "
                    f"{m['module']['version']} would go to {m['deliver']}, {m['skipped']} skipped"
                    + (" (why below)" if m["skipped"] else ""), "reasons": m["reasons"]}


@router.post("/deployments/new")
@guarded
async def new_deployment(request: Request, module: UploadFile = File(...), csrf: str = Form(""),
                         query: str = Form(""), endpoints: str = Form(""), tags: str = Form(""),
                         stages: str = Form(""), inferences: str = Form(""), within_s: str = Form(""),
                         max_failure_ratio: str = Form(""), mode: str = Form("push")):
    """Start a deployment from the form: the same checks and runner as POST /v1/deployments."""
    fields = {"query": query, "endpoints": endpoints, "tags": tags, "stages": stages, "inferences": inferences,
              "within_s": within_s, "max_failure_ratio": max_failure_ratio, "mode": mode}
    who, expected = session(request, "deploy")
    check_csrf(csrf, expected)
    try:
        stage_list = [float(x) for x in stages.replace(",", " ").split()] or [100]
        criteria = {k: float(v) if k == "within_s" else int(v)
                    for k, v in (("inferences", inferences), ("within_s", within_s)) if v.strip()}
        ratio = float(max_failure_ratio) if max_failure_ratio.strip() else 0.0
    except ValueError:
        return _new_form(who, expected, "stages, inferences, within and the failure ratio are numbers "
                                         "(stages: e.g. 10, 50, 100)", 422, fields)
    if not 0.0 <= ratio <= 1.0:
        return _new_form(who, expected, f"max failure ratio {ratio:g}: give 0 to 1", 422, fields)
    try:
        dep = await create_deployment(
            request, module=module, compilation=None, version=None,
            selector=json.dumps(_selector(query, endpoints, tags)), stages=json.dumps(stage_list),
            criteria=json.dumps(criteria) if criteria else None, max_failure_ratio=ratio, block_size=1024,
            mode=mode, model=None, target=None, profile=None, who=who, svc=request.app.state.service)
    except HTTPException as e:
        return _new_form(who, expected, str(e.detail), e.status_code, fields)
    except TinyMLError as e:
        return _new_form(who, expected, " ".join(str(e).split()), getattr(e, "status", 422), fields)
    return RedirectResponse(f"/deployments/{quote(dep['id'], safe='')}", status_code=303)


@router.get("/deployments/{dep_id}")
@guarded
def deployment_detail(dep_id: str, request: Request):
    who, csrf = session(request)
    runner, dep = _own(request, who, dep_id)
    d = runner.store.view(dep)
    body = [definition_list([
        ("id", d["id"]), ("module", f'{d["module"]["name"]} {d["module"]["version"]}'), ("state", d["state"]),
        ("stage", d["stage"]), ("stages", ", ".join(f"{s:g} %" for s in d["stages"] or ())),
        ("criteria", json.dumps(d["criteria"])), ("max failure ratio", d["max_failure_ratio"]),
        ("delivery", d.get("mode") or "push"),
        ("devices", f'{d["total"]}: {_counts_text(d["counts"])}'),
        ("message", d["message"])])]
    quoted = quote(d["id"], safe="")
    live = d["state"] in LIVE
    body.append(f'<p id="dep-live" data-poll="{f"/deployments/{quoted}/state" if live else ""}">state '
                f'<strong id="dep-state">{escape(d["state"])}</strong>; devices <span id="dep-counts">'
                f'{_counts(d["counts"])}</span></p>')
    body.append('<div class="actions">' + "".join(
        f'<form method="post" action="/deployments/{quoted}/{op}" class="inline">'
        f'<input type="hidden" name="csrf" value="{csrf}"><button type="submit">{label}</button></form>'
        for op, label, states in ACTIONS if d["state"] in states) + "</div>")
    rows = [f'<tr><td><a href="/devices/{quote(r["endpoint"], safe="")}">{escape(r["endpoint"])}</a></td>'
            f'<td>{_stage(r)}</td><td>{_state(r["state"])}</td>'
            f'<td>{escape(_reason(r))}</td><td>{escape(str(r["blocks_done"]))}</td></tr>'
            for r in d["devices"]]
    body.append("<h2>Devices</h2>" + _table(("endpoint", "stage", "state", "reason / update result", "blocks"),
                                            rows).replace("<tbody>", '<tbody id="dep-devices">', 1))
    return render_page(f'Deployment {d["id"]}', "".join(body), who, csrf)


LIVE = ("running", "paused")
ACTIONS = (("pause", "Pause", ("running",)), ("resume", "Resume", ("paused",)),
           ("cancel", "Cancel", LIVE), ("rollback", "Roll back", LIVE + ("succeeded", "failed", "cancelled")))
_OPS = {"pause": "pause", "resume": "resume_one", "cancel": "cancel", "rollback": "rollback"}


@router.get("/deployments/{dep_id}/state")
@json_guarded
def deployment_state(dep_id: str, request: Request):
    """What the deployment page polls while it runs (JSON, with the session cookie)."""
    who, _ = session(request)
    runner, dep = _own(request, who, dep_id)
    d = runner.store.view(dep)
    return {"state": d["state"], "counts": _counts_text(d["counts"]), "live": d["state"] in LIVE,
            "devices": [{"endpoint": r["endpoint"], "stage": _stage(r), "state": r["state"],
                         "reason": _reason(r), "blocks": r["blocks_done"]}
                        for r in d["devices"]]}


@router.post("/deployments/{dep_id}/{op}")
@guarded
async def deployment_operation(dep_id: str, op: str, request: Request, csrf: str = Form("")):
    """Pause, resume, cancel or roll back from the page: the runner's operation, then the page again;
    a refusal (a state that does not allow it) is its one line."""
    if op not in _OPS:
        raise HTTPException(404, f"no operation '{op}': pause, resume, cancel or rollback")
    who, expected = session(request, "deploy")
    check_csrf(csrf, expected)
    runner, dep = await asyncio.to_thread(_own, request, who, dep_id)
    await getattr(runner, _OPS[op])(dep)   # a DeploymentError (409: not in this state) is its one line
    return RedirectResponse(f"/deployments/{quote(dep_id, safe='')}", status_code=303)
