"""Devices: the project's LwM2M devices (filtered, sorted, paged) and one device's page
(registration, capabilities, modules, objects, reported values with a chart per resource)."""

from __future__ import annotations

import datetime as dt
import json
from html import escape
from urllib.parse import quote, urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from sqlalchemy import String, and_, cast, func, or_, select

from ...report_html import definition_list
from .. import devices
from ..core import Service
from ..db import Device
from .base import PAGE_SIZE, guarded, json_guarded, render_page, session

router = APIRouter()


def _device_href(endpoint: str) -> str:
    return "/devices/" + quote(endpoint, safe="")


def _device_time(t) -> str:
    """A device's time stamp (seconds since 1970) as UTC, or as it came when it is not one."""
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        try:
            return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (OverflowError, OSError, ValueError):
            pass
    return _text(t)


def _text(value) -> str:
    return "-" if value is None or value == "" else str(value)


def _installed(slots) -> str:
    return ", ".join(f"{s.get('module')} {s.get('version') or ''}".strip() for s in slots or ()) or "-"


# (column key, heading): the device table's columns, each sortable
DEVICE_COLUMNS = (("endpoint", "endpoint"), ("online", "online"), ("last_seen", "last seen"), ("board", "board"),
                  ("core", "core"), ("ram_bytes", "RAM"), ("kernel_set", "kernel set"),
                  ("installed", "installed module"), ("tags", "tags"))


def _device_cells(d: dict) -> dict[str, str]:
    """The table's text of one device."""
    ram = d.get("ram_bytes")
    return {"endpoint": d["endpoint"], "online": "yes" if d["online"] else "no", "last_seen": d["last_seen"] or "-",
            "board": d.get("board") or "-", "core": d.get("core") or "-",
            "ram_bytes": f"{ram:,} B" if isinstance(ram, int) else "-", "kernel_set": _text(d.get("kernel_set")),
            "installed": _installed(d.get("installed")), "tags": ", ".join(map(str, d.get("tags") or []))}


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.isoformat(timespec="seconds") + "Z"


def _columns():
    """The SQL expression of each sortable column (JSON fields read in the database)."""
    caps = Device.capabilities
    return {"endpoint": Device.endpoint, "online": Device.online, "last_seen": Device.last_seen,
            "board": caps["profile"]["board"].as_string(), "core": caps["profile"]["core"].as_string(),
            "ram_bytes": caps["profile"]["ram_bytes"].as_integer(), "kernel_set": caps["kernel_set"].as_string(),
            "installed": cast(caps["slots"], String), "tags": cast(Device.tags, String)}


def _device_page(svc: Service, project_id: int, needle: str, sort: str, desc: bool,
                 page: int) -> tuple[list[dict], int, int]:
    """(one page of the project's devices, how many match ``needle``, how many there are): filtered,
    sorted and paged in the database, so the page costs the same with 10 or 10,000 devices."""
    columns = _columns()
    mine = Device.project_id == project_id
    match = mine
    if needle:
        match = and_(mine, or_(*(func.lower(columns[k]).contains(needle, autoescape=True)
                                 for k in ("endpoint", "board", "core", "kernel_set", "installed", "tags"))))
    order = columns[sort].desc() if desc else columns[sort].asc()
    with svc.Session() as db:
        total = db.scalar(select(func.count()).select_from(Device).where(mine))
        shown = db.scalar(select(func.count()).select_from(Device).where(match)) if needle else total
        rows = db.scalars(select(Device).where(match).order_by(order.nulls_last(), Device.endpoint)
                          .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)).all()
        out = []
        for d in rows:
            caps = d.capabilities or {}
            profile = caps.get("profile") or {}
            out.append({"endpoint": d.endpoint, "online": d.online, "last_seen": _iso(d.last_seen),
                        "board": profile.get("board"), "core": profile.get("core"),
                        "ram_bytes": profile.get("ram_bytes"), "kernel_set": caps.get("kernel_set"),
                        "tags": list(d.tags or []),
                        "installed": [s for s in caps.get("slots", ()) if s.get("module")]})
    return out, shown, total


def _sortable_th(key: str, title: str, sort: str, desc: bool, href: str) -> str:
    order = f' aria-sort="{"descending" if desc else "ascending"}"' if key == sort else ""
    return f'<th scope="col"{order}><a href="{escape(href)}">{title}</a></th>'


_Q = Query("", max_length=200)
_SORT = Query("endpoint", max_length=20)
_PAGE = Query(1, ge=1, le=1_000_000)
POLL_S = 2    # how often the table asks /device-rows again


def _listing(request: Request, who, q: str, sort: str, desc: bool, page: int):
    """(the LwM2M server's one line when it is off, else None; the sort column; one page of rows; how
    many match; how many there are): what the table page and its JSON rows share."""
    try:
        devices._lwm2m(request)      # the API's answer when the LwM2M server is off
    except HTTPException as e:
        return str(e.detail), sort, [], 0, 0
    sort = sort if sort in dict(DEVICE_COLUMNS) else "endpoint"
    return (None, sort, *_device_page(request.app.state.service, who.project_id, q.strip().lower(), sort, desc,
                                      page))


def _count_text(shown: int, total: int) -> str:
    return f"{shown:,} of {total:,} devices"


@router.get("/devices")
@guarded
def device_list(request: Request, q: str = _Q, sort: str = _SORT, desc: bool = False, page: int = _PAGE):
    """The project's devices: filtered (endpoint, board, core, kernel set, installed modules or tags contain
    ``q``), sorted by a column, 100 a page; console.js refreshes the rows, the count and the
    pager from ``/device-rows`` with the same parameters every few seconds (no reload)."""
    who, csrf = session(request)
    off, sort, rows, shown, total = _listing(request, who, q, sort, desc, page)
    if off:   # say so on the page
        return render_page("Devices", f'<p class="note" role="status">{escape(off)}</p>', who, csrf)
    state = {"q": q, "sort": sort, "desc": int(desc), "page": page}
    link = lambda **kw: "/devices?" + urlencode({**state, **kw})  # noqa: E731
    head = "".join(_sortable_th(key, title, sort, desc, link(sort=key, desc=int(key == sort and not desc), page=1))
                   for key, title in DEVICE_COLUMNS)
    body = ['<form method="get" action="/devices" class="inline" role="search">'
            '<label for="q">Filter</label>'
            f'<input id="q" name="q" type="search" value="{escape(q)}" placeholder="endpoint, board, core, module, tag">'
            f'<input type="hidden" name="sort" value="{escape(sort)}"><input type="hidden" name="desc" value="{int(desc)}">'
            '<button type="submit">Filter</button></form>',
            f'<p class="note" role="status" id="count">{_count_text(shown, total)}</p>',
            f'<p id="empty"{"" if not total else " hidden"}>No devices have registered yet.</p>',
            f'<table class="list" id="devices" data-poll="{escape("/device-rows?" + urlencode(state))}" '
            f'data-every="{POLL_S}"{"" if total else " hidden"}><thead><tr>{head}</tr></thead><tbody>']
    for cells in map(_device_cells, rows):
        body.append(f'<tr><td><a href="{_device_href(cells["endpoint"])}">{escape(cells["endpoint"])}</a></td>'
                    + "".join(f'<td{" class=num" if k == "ram_bytes" else ""}>{escape(cells[k])}</td>'
                              for k, _ in DEVICE_COLUMNS[1:]) + "</tr>")
    body.append('</tbody></table><p class="pager">'
                f'<a id="previous" href="{escape(link(page=page - 1))}"{"" if page > 1 else " hidden"}>previous</a> '
                f'<a id="next" href="{escape(link(page=page + 1))}"{"" if shown > page * PAGE_SIZE else " hidden"}>'
                'next</a></p>')
    return render_page("Devices", "".join(body), who, csrf)


@router.get("/device-rows")
@json_guarded
def device_rows(request: Request, q: str = _Q, sort: str = _SORT, desc: bool = False, page: int = _PAGE):
    """The table's page of rows as JSON (the cells' text), its count line and whether there is a next page.
    (Not under /devices/: every path there is a device's page, whatever its endpoint is called.)"""
    who, _ = session(request)
    off, sort, rows, shown, total = _listing(request, who, q, sort, desc, page)
    if off:
        raise HTTPException(409, off)
    return {"count": _count_text(shown, total), "total": total, "next": shown > page * PAGE_SIZE,
            "rows": [_device_cells(d) for d in rows]}


CHART_W, CHART_H = 320, 64


def _chart(path: str, points: list[tuple[float, float]]) -> str:
    """A line of one resource's numeric values over time (oldest first), with its range as text."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, dx = min(xs), (max(xs) - min(xs)) or 1
    y0, dy = min(ys), (max(ys) - min(ys)) or 1
    line = " ".join(f"{(x - x0) / dx * CHART_W:.1f},{CHART_H - 4 - (y - y0) / dy * (CHART_H - 8):.1f}"
                    for x, y in points)
    label = f"{path}: {len(points)} values from {min(ys):g} to {max(ys):g}, last {ys[-1]:g}"
    return (f'<figure class="chart" data-path="{escape(path)}" data-points="{len(points)}">'
            f'<svg viewBox="0 0 {CHART_W} {CHART_H}" role="img" aria-label="{escape(label)}">'
            f'<polyline points="{line}" fill="none" stroke="#3366cc" stroke-width="2"/></svg>'
            f"<figcaption>{escape(label)}</figcaption></figure>")


def _charts(values: list[dict]) -> str:
    series: dict[str, list[tuple[float, float]]] = {}
    for i, v in enumerate(reversed(values)):   # the API gives the newest first
        value = v.get("value")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            t = v.get("time")
            series.setdefault(v["path"], []).append((t if isinstance(t, (int, float)) else i, value))
    return "".join(_chart(path, pts) for path, pts in sorted(series.items()) if len(pts) >= 2)


def _source(h: dict) -> str:
    """Where a history row came from: its deployment (a link), or the single push that made it."""
    if h["deployment"] is None:
        return "firmware push" if h["push"] == "firmware" else "single push"
    return f'<a href="/deployments/{quote(h["deployment"], safe="")}">{escape(h["deployment"])}</a>'


def _what(h: dict) -> tuple[str, str, str]:
    """A history row's module, version and activated as shown; a firmware image by its sha256."""
    if h["push"] == "firmware":
        return "firmware", "sha256 " + h["sha256"][:12], "-"
    return _text(h["module"]["name"]), _text(h["module"]["version"]), "yes" if h["activated"] else "no"


def _history(rows: list[dict]) -> str:
    """The device's module history: a row per deployment that included it and per single push to
    it (module or firmware), newest first."""
    if not rows:
        return "<h2>Module history</h2><p>No deployment or push has included this device yet.</p>"
    heads = ("time", "module", "version", "deployment", "result", "activated", "reason / update result")
    return ('<h2>Module history</h2><table class="list" id="history"><thead><tr>'
            + "".join(f'<th scope="col">{h}</th>' for h in heads) + "</tr></thead><tbody>" + "".join(
                f"<tr><td>{escape(_text(h['finished_at'] or h['started_at'] or h['created_at']))}</td>"
                + "".join(f"<td>{escape(v)}</td>" for v in _what(h)[:2]) + f"<td>{_source(h)}</td>"
                f'<td><span class="state {escape(h["state"])}">{escape(h["state"])}</span></td>'
                f"<td>{_what(h)[2]}</td><td>{escape(_text(h['reason']))}</td></tr>"
                for h in rows) + "</tbody></table>")


@router.get("/devices/{endpoint:path}")
@guarded
def device_detail(request: Request, endpoint: str):
    who, csrf = session(request)
    try:
        dev = devices.show_device(endpoint, request, who)
        values = devices.reported_values(endpoint, request, limit=500, who=who)
    except HTTPException as e:
        if e.status_code != 409:
            raise
        return render_page("Device", f'<p class="note" role="status">{escape(str(e.detail))}</p>', who, csrf)
    reg, caps, prof = dev.get("registration") or {}, dev.get("capabilities") or {}, dev.get("profile") or {}
    ram, flash = prof.get("ram_bytes"), prof.get("flash_bytes")
    body = [definition_list([("endpoint", dev["endpoint"]), ("online", "yes" if dev["online"] else "no"),
                    ("last seen", dev.get("last_seen")), ("tags", ", ".join(map(str, dev.get("tags") or []))),
                    ("board", dev.get("board")), ("core", prof.get("core")), ("architecture", prof.get("arch")),
                    ("clock", f"{prof['clock_hz']:,} Hz" if isinstance(prof.get("clock_hz"), int) else None),
                    ("RAM", f"{ram:,} B" if isinstance(ram, int) else None),
                    ("flash", f"{flash:,} B" if isinstance(flash, int) else None),
                    ("kernel set", caps.get("kernel_set")), ("executor ABI", caps.get("executor_abi")),
                    ("capabilities", dev.get("capabilities_error")),
                    ("LwM2M", " ".join(str(x) for x in (reg.get("lwm2m_version"), reg.get("binding")) if x)),
                    ("lifetime", f"{reg['lifetime_s']} s" if reg.get("lifetime_s") else None),
                    ("address", reg.get("address")), ("registered", reg.get("registered_at"))])]
    slots = caps.get("slots") or []
    if slots:
        body.append('<h2>Module slots</h2><table class="list" id="slots"><thead><tr><th scope="col">slot</th>'
                    '<th scope="col">module</th><th scope="col">version</th><th scope="col">state</th></tr></thead>'
                    "<tbody>" + "".join("<tr>" + "".join(f"<td>{escape(_text(s.get(k)))}</td>"
                                                         for k in ("index", "module", "version", "state")) + "</tr>"
                                        for s in slots) + "</tbody></table>")
    body.append(_history(devices.module_history(request, who, dev["endpoint"])))
    objects = reg.get("objects") or []
    if objects:
        body.append('<h2>Objects</h2><ul id="objects">' + "".join(
            f"<li><code>{escape(str(o.get('path')))}</code> "
            f"{escape(', '.join(f'{k}={v}' for k, v in o.items() if k != 'path'))}</li>" for o in objects) + "</ul>")
    body.append("<h2>Reported values</h2>")
    if not values:
        body.append("<p>No values reported yet (Observe notifications and LwM2M Send are kept).</p>")
    else:
        body.append(_charts(values))
        body.append('<table class="list" id="values"><thead><tr><th scope="col">resource</th>'
                    '<th scope="col">value</th><th scope="col">source</th><th scope="col">device time</th>'
                    '<th scope="col">received</th></tr></thead><tbody>' + "".join(
                        f"<tr><td>{escape(v['path'])}</td><td>{escape(json.dumps(v['value'], ensure_ascii=False))}"
                        f"</td><td>{escape(str(v.get('source') or '-'))}</td><td>{escape(_device_time(v.get('time')))}"
                        f"</td><td>{escape(str(v.get('received_at') or '-'))}</td></tr>" for v in values[:PAGE_SIZE])
                    + "</tbody></table>")
    return render_page(f"Device {dev['endpoint']}", "".join(body), who, csrf)
