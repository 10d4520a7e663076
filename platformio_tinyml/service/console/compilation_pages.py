"""Compilations: the list, a compilation (state, memory picture, report, log, downloads), a new one."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from html import escape
from urllib.parse import quote

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select

from ...errors import TinyMLError
from ...report_html import (bars_html, candidates_html, compare_html, compile_bars, facts_html,
                            render_compile_report)
from .. import catalog, compilations, tasks
from ..auth import Caller
from ..core import Service
from ..db import Build, Compilation
from ..jobs import JobFailed
from .base import PAGE_SIZE, age, check_csrf, guarded, json_guarded, render_page, session

router = APIRouter()


@router.get("/compilations")
@guarded
def compilation_list(request: Request, page: int = Query(1, ge=1, le=1_000_000)):
    who, csrf = session(request)
    svc: Service = request.app.state.service
    with svc.Session() as db:
        rows = db.execute(select(Compilation, Build).join(Build, Compilation.build_id == Build.id)
                          .where(Compilation.project_id == who.project_id)
                          .order_by(Compilation.created_at.desc(), Compilation.id)
                          .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)).all()
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    body = ['<p><a class="button" href="/compilations/new">New compilation</a></p>']
    if not rows:
        body.append("<p>No compilations yet.</p>")
    else:
        body.append('<table class="list"><thead><tr>' + "".join(
            f'<th scope="col">{h}</th>' for h in ("model", "target", "backend", "state", "age", "cached"))
            + "</tr></thead><tbody>")
        for c, b in rows[:PAGE_SIZE]:
            backend = b.backend or f"{b.backend_requested} (asked)"
            body.append(f'<tr><td><a href="/compilations/{escape(c.id)}">{escape(b.model_file)}</a>'
                        f'<br><span class="note">{escape(b.name)}</span></td><td>{escape(c.target)}</td>'
                        f'<td>{escape(backend)}</td><td><span class="state {escape(b.state)}">{escape(b.state)}'
                        f'</span></td><td>{age(c.created_at, now)}</td><td>{"yes" if c.cached else "no"}</td></tr>')
        body.append("</tbody></table>")
        links = ([f'<a href="/compilations?page={page - 1}">newer</a>'] if page > 1 else []) + \
                ([f'<a href="/compilations?page={page + 1}">older</a>'] if len(rows) > PAGE_SIZE else [])
        if links:
            body.append('<p class="pager">' + " ".join(links) + "</p>")
    return render_page("Compilations", "".join(body), who, csrf)


def _backend_names() -> list[str]:
    from ...compilers.registry import discover
    return sorted(discover().compilers)


def _new_form(svc: Service, who: Caller, csrf: str, message: str = "", status: int = 200,
              target: str = "", backend: str = "auto") -> HTMLResponse:
    from ...device import list_boards
    boards = "".join(f'<option value="{escape(b)}">' for b in list_boards(list(svc.cfg.boards_dirs) or None))
    options = "".join(f'<option value="{escape(n)}"{" selected" if n == backend else ""}>{escape(n)}</option>'
                      for n in ["auto", *_backend_names()])
    alert = f'<p class="error" role="alert">{escape(message)}</p>' if message else ""
    form = ('<form method="post" action="/compilations/new" enctype="multipart/form-data" class="card">'
            f'<input type="hidden" name="csrf" value="{csrf}">'
            '<label for="model">Model file</label>'
            '<input id="model" name="model" type="file" required accept=".tflite,.onnx,.keras,.h5,.zip,.skops">'
            '<label for="target">Board</label>'
            f'<input id="target" name="target" list="boards" required value="{escape(target)}" '
            'autocomplete="off" placeholder="type to search, e.g. nucleo_f446re" aria-describedby="profile">'
            f'<datalist id="boards">{boards}</datalist>'
            '<p id="profile" class="note" aria-live="polite"></p>'
            f'<label for="backend">Backend</label><select id="backend" name="backend">{options}</select>'
            '<button type="submit">Compile</button></form>')
    return render_page("New compilation", alert + form, who, csrf, status)


@router.get("/compilations/new")
@guarded
def new_compilation_form(request: Request):
    who, csrf = session(request, "compile")
    return _new_form(request.app.state.service, who, csrf)


@router.post("/compilations/new")
@guarded
def new_compilation(request: Request, model: UploadFile = File(...), target: str = Form(""),
                    backend: str = Form("auto"), csrf: str = Form("")):
    who, expected = session(request, "compile")
    check_csrf(csrf, expected)
    svc: Service = request.app.state.service
    try:
        answer = compilations.create_compilation(model=model, target=target.strip() or None, profile=None,
                                                 manifest=None, backend=backend, name=None, options=None,
                                                 calibration=None, input_shapes=None, input_values=None,
                                                 who=who, svc=svc)
    except HTTPException as e:
        return _new_form(svc, who, expected, str(e.detail), e.status_code, target, backend)
    except TinyMLError as e:
        return _new_form(svc, who, expected, " ".join(str(e).split()), getattr(e, "status", 422), target, backend)
    return RedirectResponse(f"/compilations/{json.loads(answer.body)['id']}", status_code=303)


def _own_view(request: Request, comp_id: str, who: Caller) -> dict:
    svc: Service = request.app.state.service
    return compilations.own_view(svc, who, comp_id)[0]


@router.get("/compilations/{comp_id}")
@guarded
def compilation_detail(request: Request, comp_id: str):
    who, csrf = session(request)
    c = _own_view(request, comp_id, who)
    cid = quote(c["id"])
    finished = c["state"] in ("succeeded", "failed")
    body = [f'<dl class="facts" id="status" data-state="{escape(c["state"])}" '
            f'data-poll="{"" if finished else f"/compilations/{cid}/state"}">'
            f'<dt>state</dt><dd><span class="state {escape(c["state"])}" id="state">{escape(c["state"])}</span> '
            f'<span id="progress">{int(100 * (c["progress"] or 0))} %</span></dd>'
            f'<dt>model</dt><dd>{escape(c["name"])}</dd><dt>target</dt><dd>{escape(c["target"])}</dd>'
            f'<dt>backend</dt><dd>{escape(c["backend"] or c["backend_requested"] + " (asked)")}</dd>'
            f'<dt>chosen because</dt><dd>{escape(c["chosen_because"] or "-")}</dd>'
            f'<dt>cached</dt><dd>{"yes" if c["cached"] else "no"}</dd></dl>']
    if c["error"]:
        e = c["error"]
        body.append(f'<p class="error" role="alert">{escape(e["message"] or "")}'
                    f'{escape(" (" + e["where"] + ")") if e.get("where") else ""}'
                    f'{escape(". " + e["hint"]) if e.get("hint") else ""}</p>')
    if c["state"] == "succeeded" and c["report"]:
        report = c["report"]
        body.append('<h2>Memory</h2>' + bars_html(compile_bars(report)))
        body.append(f'<h2>Downloads</h2><ul class="downloads"><li><a href="/compilations/{cid}/artifact">'
                    f'generated sources ({escape(c["name"])}.tar.gz)</a></li>'
                    f'<li><a href="/compilations/{cid}/report.html">tinyml-report.html</a></li></ul>'
                    f'<form method="post" action="/compilations/{cid}/module" class="inline">'
                    f'<input type="hidden" name="csrf" value="{csrf}">'
                    '<label for="version">Signed module, version</label>'
                    '<input id="version" name="version" type="number" min="0" max="4294967295" value="1" required>'
                    '<button type="submit">Download .tmm</button></form>')
        body.append('<h2>Report</h2>' + facts_html(report) + '<h2>Backends asked</h2>' + candidates_html(report))
    body.append(f'<form method="post" action="/compilations/{cid}/compare" class="inline">'
                f'<input type="hidden" name="csrf" value="{csrf}">'
                '<button type="submit">Compare every backend</button>'
                '<span class="note">asks each installed backend, TVM included (seconds)</span></form>')
    body.append('<h2>Log</h2><pre class="log" id="log">' + escape("\n".join(c["log"])) + "</pre>")
    return render_page(f"Compilation {c['name']}", "".join(body), who, csrf)


@router.post("/compilations/{comp_id}/compare")
@guarded
def compilation_compare(request: Request, comp_id: str, csrf: str = Form("")):
    """``tinyml compare`` of the compilation's model and board: every backend's answer (a POST:
    it costs seconds of CPU, so a link on another site must not start it)."""
    who, expected = session(request)
    check_csrf(csrf, expected)
    svc: Service = request.app.state.service
    with svc.Session() as db:
        comp, build = compilations._own(svc, db, who, comp_id)   # 404 outside the project
    workdir = svc.scratch()
    try:
        model_rel, cal_rel = svc.inputs_into(build, workdir)
        table = svc.isolated(tasks.compare, str(workdir), model_rel, build.device, build.options, cal_rel,
                             build.input_shapes, build.input_values)
    except JobFailed as e:
        raise HTTPException(422, str(e)) from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return render_page(f"Compare: {build.name} on {comp.target}",
                       compare_html(table) + f'<p><a href="/compilations/{quote(comp.id)}">back to the compilation</a></p>',
                       who, csrf)


@router.get("/compilations/{comp_id}/state")
@json_guarded
def compilation_state(request: Request, comp_id: str):
    """What the detail page polls (JSON, with the session cookie)."""
    who, _ = session(request)
    c = _own_view(request, comp_id, who)
    return {"state": c["state"], "progress": c["progress"], "log": c["log"]}


@router.get("/compilations/{comp_id}/artifact")
@guarded
def compilation_artifact(request: Request, comp_id: str):
    who, _ = session(request)
    return compilations.get_artifact(comp_id, who=who, svc=request.app.state.service)


@router.get("/compilations/{comp_id}/report.html")
@guarded
def compilation_report(request: Request, comp_id: str):
    who, _ = session(request)
    c = _own_view(request, comp_id, who)
    if c["state"] != "succeeded":
        raise HTTPException(409, f"compilation '{comp_id}' is {c['state']}; there is no report yet")
    return HTMLResponse(render_compile_report(c["report"]),
                        headers={"Content-Disposition": 'attachment; filename="tinyml-report.html"',
                                 "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})


@router.post("/compilations/{comp_id}/module")
@guarded
def compilation_module(request: Request, comp_id: str, version: int = Form(..., ge=0, le=2**32 - 1),
                       csrf: str = Form("")):
    who, expected = session(request, "deploy")
    check_csrf(csrf, expected)
    return compilations.create_module(comp_id, version=version, kind="graph", who=who, svc=request.app.state.service)


@router.get("/boards/{board_id}/profile")
@json_guarded
def board_profile(request: Request, board_id: str):
    """The board's profile for the new-compilation form (JSON, with the session cookie)."""
    who, _ = session(request)
    return catalog.board(board_id, who=who, svc=request.app.state.service)
