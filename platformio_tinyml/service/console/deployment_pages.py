"""Deployments: the project's staged rollouts (newest first) and one deployment's page
(state, stages, criteria, message, a row per device), read with the same store the
``/v1/deployments`` routes use. Read-only for now: pause, resume, cancel and roll back
are the API's (``tinyml fleet`` or ``POST /v1/deployments/{id}/...``)."""

from __future__ import annotations

import datetime as dt
import json
from html import escape
from urllib.parse import quote

from fastapi import APIRouter, Request

from ...report_html import definition_list
from ..deployments import _own, _runner
from .base import age, guarded, render_page, session

router = APIRouter()


def _age(iso: str | None, now: dt.datetime) -> str:
    try:
        return age(dt.datetime.fromisoformat(iso.rstrip("Z")), now) if iso else "-"
    except ValueError:
        return escape(iso)


def _state(s: str) -> str:
    return f'<span class="state {escape(s)}">{escape(s)}</span>'


def _counts(counts: dict) -> str:
    return escape(", ".join(f"{n} {s}" for s, n in counts.items() if n)) or "-"


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
    rows = [f'<tr><td><a href="/devices/{quote(r["endpoint"], safe="")}">{escape(r["endpoint"])}</a></td>'
            f'<td>{escape(str(r["stage"]))}</td><td>{_state(r["state"])}</td>'
            f'<td>{escape(r["reason"] or r["result_meaning"] or "-")}</td><td>{escape(str(r["blocks_done"]))}</td></tr>'
            for r in d["devices"]]
    body.append("<h2>Devices</h2>" + _table(("endpoint", "stage", "state", "reason / update result", "blocks"),
                                            rows))
    return render_page(f'Deployment {d["id"]}', "".join(body), who, csrf)
