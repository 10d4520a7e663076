"""The web console at ``/``: server-rendered pages over the service's own functions.

Sign-in takes an API token and keeps it in an HttpOnly, SameSite=Strict cookie; every
page resolves it as the API resolves a bearer token (same scopes, same project), so the
console can do nothing the token cannot. Pages call the API's route functions directly
(:mod:`.compilations`, :mod:`.devices`), never the service over HTTP, and show their
one-line errors. Every POST form carries a CSRF token: before sign-in the value of a
random cookie (double submit), after it an HMAC of the session's token, so it needs no
server-side state and works across API processes. Every string that came from a user
(model names, file names, endpoints, logs) is escaped, and the pages' Content-Security-
Policy allows only the console's own script, so injected markup could not run anyway.
The routes are left out of the OpenAPI document: they are pages, not API.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import json
import secrets
from html import escape
from pathlib import Path
from urllib.parse import quote, urlencode

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import select

from ..errors import TinyMLError
from ..report_html import CSS as REPORT_CSS
from ..report_html import bars_html, candidates_html, compile_bars, facts_html, render_compile_report
from . import compilations, devices
from .auth import Caller
from .core import Service
from .db import Build, Compilation

router = APIRouter(include_in_schema=False)

SESSION_COOKIE = "tinyml_session"
PRESESSION_COOKIE = "tinyml_signin"     # the CSRF value of the sign-in form
PAGE_SIZE = 100
STATIC = Path(__file__).with_name("console_static")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


class _Redirect(Exception):
    def __init__(self, url: str):
        self.url = url


# -- sessions and CSRF ---------------------------------------------------------------
def _csrf_of(token: str) -> str:
    """The CSRF token of a session: only who holds the session's API token can compute it."""
    return hmac.new(token.encode("utf-8", "surrogateescape"), b"tinyml-console-csrf", hashlib.sha256).hexdigest()


def _session(request: Request, scope: str | None = "read") -> tuple[Caller, str]:
    """(the caller, the session's CSRF token); to sign-in when there is no valid session,
    403 when the token lacks ``scope`` (None: any token)."""
    token = request.cookies.get(SESSION_COOKIE)
    who = request.app.state.service.caller_of(token) if token else None
    if who is None:
        raise _Redirect("/signin" + ("?ended=1" if token else ""))
    if scope is not None and scope not in who.scopes:
        raise HTTPException(403, f"this token lacks the '{scope}' scope (it has {', '.join(sorted(who.scopes))}). "
                                 f"Sign in with a token made with --scope {scope}")
    return who, _csrf_of(token)


def _check_csrf(given: str | None, expected: str | None) -> None:
    if not given or not expected or not hmac.compare_digest(given, expected):
        raise HTTPException(403, "this form did not come from this console (missing or wrong CSRF token). "
                                 "Reload the page and send it again")


def _cookie(response: Response, request: Request, name: str, value: str) -> None:
    response.set_cookie(name, value, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")


# -- pages ---------------------------------------------------------------------------
def _page(title: str, body: str, who: Caller | None = None, csrf: str = "", status: int = 200) -> HTMLResponse:
    nav = ""
    if who is not None:
        nav = ('<nav aria-label="main"><a href="/compilations">Compilations</a>'
               '<a href="/compilations/new">New compilation</a><a href="/devices">Devices</a>'
               f'<span class="who">project {escape(who.project)}</span>'
               f'<form method="post" action="/signout"><input type="hidden" name="csrf" value="{csrf}">'
               '<button type="submit">Sign out</button></form></nav>')
    html = ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{escape(title)} - tinyml console</title><link rel="stylesheet" href="/console.css">'
            '<script src="/console.js" defer></script></head>'
            f'<body><header><strong class="brand">tinyml</strong>{nav}</header>'
            f'<main><h1>{escape(title)}</h1>{body}</main></body></html>\n')
    return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": CSP,
                                                           "Cache-Control": "no-store",
                                                           "X-Content-Type-Options": "nosniff"})


def _error(status: int, message: str, who: Caller | None = None, csrf: str = "") -> HTMLResponse:
    return _page("Error" if status != 404 else "Not found",
                 f'<p class="error" role="alert">{escape(message)}</p><p><a href="/compilations">Compilations</a></p>',
                 who, csrf, status)


def _guarded(handler):
    """Run a page handler: no session -> sign-in; an API error -> its one line on a page."""
    @functools.wraps(handler)
    def run(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except _Redirect as r:
            return RedirectResponse(r.url, status_code=303)
        except HTTPException as e:
            return _error(e.status_code, str(e.detail))
        except TinyMLError as e:
            return _error(getattr(e, "status", 422), " ".join(str(e).split()))

    return run


def _age(t: dt.datetime | None, now: dt.datetime) -> str:
    if t is None:
        return "-"
    s = max(int((now - t).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s // size} {unit} ago"
    return f"{s} s ago"


@router.get("/console.css")
def console_css():
    return Response(REPORT_CSS + (STATIC / "console.css").read_text(), media_type="text/css",
                    headers={"Cache-Control": "max-age=300"})


@router.get("/console.js")
def console_js():
    return Response((STATIC / "console.js").read_text(), media_type="text/javascript",
                    headers={"Cache-Control": "max-age=300"})


@router.get("/")
def home(request: Request):
    token = request.cookies.get(SESSION_COOKIE)
    signed_in = bool(token) and request.app.state.service.caller_of(token) is not None
    return RedirectResponse("/compilations" if signed_in else "/signin", status_code=303)


def _signin_page(request: Request, message: str = "", status: int = 200) -> HTMLResponse:
    value = request.cookies.get(PRESESSION_COOKIE) or secrets.token_urlsafe(24)
    alert = f'<p class="error" role="alert">{escape(message)}</p>' if message else ""
    page = _page("Sign in", alert + '<form method="post" action="/signin" class="card">'
                 f'<input type="hidden" name="csrf" value="{escape(value)}">'
                 '<label for="token">API token</label>'
                 '<input id="token" name="token" type="password" autocomplete="off" required '
                 'placeholder="tml_..." aria-describedby="token-help">'
                 '<p id="token-help" class="note">Make one with <code>tinyml service token create --project '
                 'NAME --scope compile,read,deploy</code>.</p><button type="submit">Sign in</button></form>',
                 status=status)
    _cookie(page, request, PRESESSION_COOKIE, value)
    return page


@router.get("/signin")
def signin_form(request: Request, ended: int = 0):
    return _signin_page(request, "Your session ended: sign in again." if ended else "")


@router.post("/signin")
def signin(request: Request, token: str = Form(""), csrf: str = Form("")):
    try:
        _check_csrf(csrf, request.cookies.get(PRESESSION_COOKIE))
    except HTTPException as e:
        return _signin_page(request, str(e.detail), 403)
    token = token.strip()
    if not token or request.app.state.service.caller_of(token) is None:
        return _signin_page(request, "Unknown token: check it, or make a new one with "
                                     "tinyml service token create.", 401)
    response = RedirectResponse("/compilations", status_code=303)
    _cookie(response, request, SESSION_COOKIE, token)
    response.delete_cookie(PRESESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.post("/signout")
@_guarded
def signout(request: Request, csrf: str = Form("")):
    _, expected = _session(request, scope=None)
    _check_csrf(csrf, expected)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


# -- compilations --------------------------------------------------------------------
@router.get("/compilations")
@_guarded
def compilation_list(request: Request, page: int = Query(1, ge=1, le=1_000_000)):
    who, csrf = _session(request)
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
                        f'</span></td><td>{_age(c.created_at, now)}</td><td>{"yes" if c.cached else "no"}</td></tr>')
        body.append("</tbody></table>")
        links = ([f'<a href="/compilations?page={page - 1}">newer</a>'] if page > 1 else []) + \
                ([f'<a href="/compilations?page={page + 1}">older</a>'] if len(rows) > PAGE_SIZE else [])
        if links:
            body.append('<p class="pager">' + " ".join(links) + "</p>")
    return _page("Compilations", "".join(body), who, csrf)


def _backend_names() -> list[str]:
    from ..compilers.registry import discover
    return sorted(discover().compilers)


def _new_form(svc: Service, who: Caller, csrf: str, message: str = "", status: int = 200,
              target: str = "", backend: str = "auto") -> HTMLResponse:
    from ..device import list_boards
    boards = "".join(f'<option value="{escape(b)}">' for b in list_boards(list(svc.cfg.boards_dirs) or None))
    options = "".join(f'<option value="{escape(n)}"{" selected" if n == backend else ""}>{escape(n)}</option>'
                      for n in ["auto", *_backend_names()])
    alert = f'<p class="error" role="alert">{escape(message)}</p>' if message else ""
    return _page("New compilation", alert +
                 '<form method="post" action="/compilations/new" enctype="multipart/form-data" class="card">'
                 f'<input type="hidden" name="csrf" value="{csrf}">'
                 '<label for="model">Model file</label>'
                 '<input id="model" name="model" type="file" required '
                 'accept=".tflite,.onnx,.keras,.h5,.zip,.skops">'
                 '<label for="target">Board</label>'
                 f'<input id="target" name="target" list="boards" required value="{escape(target)}" '
                 'autocomplete="off" placeholder="type to search, e.g. nucleo_f446re" aria-describedby="profile">'
                 f'<datalist id="boards">{boards}</datalist>'
                 '<p id="profile" class="note" aria-live="polite"></p>'
                 f'<label for="backend">Backend</label><select id="backend" name="backend">{options}</select>'
                 '<button type="submit">Compile</button></form>', who, csrf, status)


@router.get("/compilations/new")
@_guarded
def new_compilation_form(request: Request):
    who, csrf = _session(request, "compile")
    return _new_form(request.app.state.service, who, csrf)


@router.post("/compilations/new")
@_guarded
def new_compilation(request: Request, model: UploadFile = File(...), target: str = Form(""),
                    backend: str = Form("auto"), csrf: str = Form("")):
    who, expected = _session(request, "compile")
    _check_csrf(csrf, expected)
    svc: Service = request.app.state.service
    try:
        answer = compilations.create_compilation(model=model, target=target.strip() or None, profile=None,
                                                 manifest=None, backend=backend, name=None, options=None,
                                                 calibration=None, who=who, svc=svc)
    except HTTPException as e:
        return _new_form(svc, who, expected, str(e.detail), e.status_code, target, backend)
    except TinyMLError as e:
        return _new_form(svc, who, expected, " ".join(str(e).split()), getattr(e, "status", 422), target, backend)
    return RedirectResponse(f"/compilations/{json.loads(answer.body)['id']}", status_code=303)


def _own_view(request: Request, comp_id: str, who: Caller) -> dict:
    svc: Service = request.app.state.service
    return compilations.get_compilation(comp_id, who=who, svc=svc)


@router.get("/compilations/{comp_id}")
@_guarded
def compilation_detail(request: Request, comp_id: str):
    who, csrf = _session(request)
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
    body.append('<h2>Log</h2><pre class="log" id="log">' + escape("\n".join(c["log"])) + "</pre>")
    return _page(f"Compilation {c['name']}", "".join(body), who, csrf)


@router.get("/compilations/{comp_id}/state")
def compilation_state(request: Request, comp_id: str):
    """What the detail page polls (JSON, with the session cookie)."""
    try:
        who, _ = _session(request)
        c = _own_view(request, comp_id, who)
    except _Redirect:
        return JSONResponse({"detail": "not signed in"}, status_code=401)
    except HTTPException as e:
        return JSONResponse({"detail": e.detail}, status_code=e.status_code)
    return {"state": c["state"], "progress": c["progress"], "log": c["log"]}


@router.get("/compilations/{comp_id}/artifact")
@_guarded
def compilation_artifact(request: Request, comp_id: str):
    who, _ = _session(request)
    return compilations.get_artifact(comp_id, who=who, svc=request.app.state.service)


@router.get("/compilations/{comp_id}/report.html")
@_guarded
def compilation_report(request: Request, comp_id: str):
    who, _ = _session(request)
    c = _own_view(request, comp_id, who)
    if c["state"] != "succeeded":
        raise HTTPException(409, f"compilation '{comp_id}' is {c['state']}; there is no report yet")
    return HTMLResponse(render_compile_report(c["report"]),
                        headers={"Content-Disposition": 'attachment; filename="tinyml-report.html"',
                                 "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})


@router.post("/compilations/{comp_id}/module")
@_guarded
def compilation_module(request: Request, comp_id: str, version: int = Form(..., ge=0, le=2**32 - 1),
                       csrf: str = Form("")):
    who, expected = _session(request, "deploy")
    _check_csrf(csrf, expected)
    return compilations.create_module(comp_id, version=version, kind="graph", who=who, svc=request.app.state.service)


# -- devices -------------------------------------------------------------------------
def _installed(slots) -> str:
    return ", ".join(f"{s.get('module')} {s.get('version') or ''}".strip() for s in slots or ()) or "-"


# (column key, heading): the device table's columns, each sortable
DEVICE_COLUMNS = (("endpoint", "endpoint"), ("online", "online"), ("last_seen", "last seen"), ("board", "board"),
                  ("core", "core"), ("ram_bytes", "RAM"), ("installed", "installed module"), ("tags", "tags"))


def _device_cells(d: dict) -> dict[str, str]:
    """The table's text of one device (what the filter searches too)."""
    ram = d.get("ram_bytes")
    return {"endpoint": d["endpoint"], "online": "yes" if d["online"] else "no", "last_seen": d["last_seen"] or "-",
            "board": d.get("board") or "-", "core": d.get("core") or "-",
            "ram_bytes": f"{ram:,} B" if isinstance(ram, int) else "-", "installed": _installed(d.get("installed")),
            "tags": ", ".join(map(str, d.get("tags") or []))}


def _sort_key(d: dict, column: str):
    value = d.get(column) if column not in ("installed", "tags") else _device_cells(d)[column]
    return (value is None, value if value is not None else 0)


def _sortable_th(key: str, title: str, sort: str, desc: bool, href: str) -> str:
    order = f' aria-sort="{"descending" if desc else "ascending"}"' if key == sort else ""
    return f'<th scope="col"{order}><a href="{escape(href)}">{title}</a></th>'


@router.get("/devices")
@_guarded
def device_list(request: Request, q: str = Query("", max_length=200), sort: str = Query("endpoint", max_length=20),
                desc: bool = False, page: int = Query(1, ge=1, le=1_000_000)):
    """The project's devices: filtered (every column's text contains ``q``), sorted, 100 a page."""
    who, csrf = _session(request)
    try:
        rows = devices.list_devices(request, who)
    except HTTPException as e:   # the LwM2M server is off: say so on the page
        return _page("Devices", f'<p class="note" role="status">{escape(str(e.detail))}</p>', who, csrf)
    sort = sort if sort in dict(DEVICE_COLUMNS) else "endpoint"
    needle = q.strip().lower()
    shown = [(d, _device_cells(d)) for d in rows]
    if needle:
        shown = [(d, cells) for d, cells in shown if any(needle in v.lower() for v in cells.values())]
    shown.sort(key=lambda pair: _sort_key(pair[0], sort), reverse=desc)
    link = lambda **kw: "/devices?" + urlencode({"q": q, "sort": sort, "desc": int(desc), "page": page, **kw})  # noqa: E731
    body = ['<form method="get" action="/devices" class="inline" role="search">'
            '<label for="q">Filter</label>'
            f'<input id="q" name="q" type="search" value="{escape(q)}" placeholder="endpoint, board, core, module, tag">'
            f'<input type="hidden" name="sort" value="{escape(sort)}"><input type="hidden" name="desc" value="{int(desc)}">'
            '<button type="submit">Filter</button></form>',
            f'<p class="note" role="status" id="count">{len(shown):,} of {len(rows):,} devices</p>']
    if shown:
        head = "".join(_sortable_th(key, title, sort, desc, link(sort=key, desc=int(key == sort and not desc), page=1))
                       for key, title in DEVICE_COLUMNS)
        body.append(f'<table class="list" id="devices"><thead><tr>{head}</tr></thead><tbody>')
        for _, cells in shown[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]:
            body.append("<tr>" + "".join(f'<td{" class=num" if k == "ram_bytes" else ""}>{escape(cells[k])}</td>'
                                         for k, _ in DEVICE_COLUMNS) + "</tr>")
        body.append("</tbody></table>")
        links = ([f'<a href="{escape(link(page=page - 1))}">previous</a>'] if page > 1 else []) + \
                ([f'<a href="{escape(link(page=page + 1))}">next</a>'] if len(shown) > page * PAGE_SIZE else [])
        if links:
            body.append('<p class="pager">' + " ".join(links) + "</p>")
    elif not rows:
        body = ["<p>No devices have registered yet.</p>"]
    return _page("Devices", "".join(body), who, csrf)


@router.get("/boards/{board_id}/profile")
def board_profile(request: Request, board_id: str):
    """The board's profile for the new-compilation form (JSON, with the session cookie)."""
    from . import catalog
    try:
        who, _ = _session(request)
        return catalog.board(board_id, who=who, svc=request.app.state.service)
    except _Redirect:
        return JSONResponse({"detail": "not signed in"}, status_code=401)
    except HTTPException as e:
        return JSONResponse({"detail": e.detail}, status_code=e.status_code)
