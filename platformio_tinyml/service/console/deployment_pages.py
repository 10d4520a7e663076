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

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse

from ...report_html import definition_list
from ...lwm2m.deployments import DeploymentError
from ..deployments import _own, _runner
from .base import Redirect, age, check_csrf, error_page, guarded, render_page, session

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
    if not deps:
        return render_page("Deployments", "<p>No deployments yet.</p>", who, csrf)
    rows = [f'<tr><td><a href="/deployments/{quote(d["id"], safe="")}">{escape(d["id"])}</a></td>'
            f'<td>{escape(str(d["module"]["name"]))} {escape(str(d["module"]["version"]))}</td>'
            f'<td>{_state(d["state"])}</td><td>{escape(str(d["stage"]))}</td><td>{_counts(d["counts"])}</td>'
            f'<td>{_age(d["created_at"], now)}</td></tr>' for d in deps]
    return render_page("Deployments", _table(("id", "module", "state", "stage", "devices", "age"), rows), who, csrf)


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
        ("devices", f'{d["total"]}: {", ".join(f"{n} {s}" for s, n in d["counts"].items() if n)}'),
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
            f'<td>{escape(str(r["stage"]))}</td><td>{_state(r["state"])}</td>'
            f'<td>{escape(r["reason"] or r["result_meaning"] or "-")}</td><td>{escape(str(r["blocks_done"]))}</td></tr>'
            for r in d["devices"]]
    body.append("<h2>Devices</h2>" + _table(("endpoint", "stage", "state", "reason / update result", "blocks"),
                                            rows).replace("<tbody>", '<tbody id="dep-devices">', 1))
    return render_page(f'Deployment {d["id"]}', "".join(body), who, csrf)


LIVE = ("running", "paused")
ACTIONS = (("pause", "Pause", ("running",)), ("resume", "Resume", ("paused",)),
           ("cancel", "Cancel", LIVE), ("rollback", "Roll back", LIVE + ("succeeded", "failed", "cancelled")))
_OPS = {"pause": "pause", "resume": "resume_one", "cancel": "cancel", "rollback": "rollback"}


@router.get("/deployments/{dep_id}/state")
def deployment_state(dep_id: str, request: Request):
    """What the deployment page polls while it runs (JSON, with the session cookie)."""
    try:
        who, _ = session(request)
        runner, dep = _own(request, who, dep_id)
    except Redirect:
        return JSONResponse({"detail": "not signed in"}, status_code=401)
    except HTTPException as e:
        return JSONResponse({"detail": e.detail}, status_code=e.status_code)
    d = runner.store.view(dep)
    return {"state": d["state"], "counts": _counts_text(d["counts"]), "live": d["state"] in LIVE,
            "devices": [{"endpoint": r["endpoint"], "stage": r["stage"], "state": r["state"],
                         "reason": r["reason"] or r["result_meaning"] or "-", "blocks": r["blocks_done"]}
                        for r in d["devices"]]}


@router.post("/deployments/{dep_id}/{op}")
async def deployment_operation(dep_id: str, op: str, request: Request, csrf: str = Form("")):
    """Pause, resume, cancel or roll back from the page: the runner's operation, then the page again;
    a refusal (a state that does not allow it) is its one line."""
    try:
        if op not in _OPS:
            raise HTTPException(404, f"no operation '{op}': pause, resume, cancel or rollback")
        who, expected = session(request, "deploy")
        check_csrf(csrf, expected)
        runner, dep = await asyncio.to_thread(_own, request, who, dep_id)
        await getattr(runner, _OPS[op])(dep)
    except Redirect as r:
        return RedirectResponse(r.url, status_code=303)
    except HTTPException as e:
        return error_page(e.status_code, str(e.detail))
    except DeploymentError as e:
        return error_page(e.status, " ".join(str(e).split()))
    return RedirectResponse(f"/deployments/{quote(dep_id, safe='')}", status_code=303)
