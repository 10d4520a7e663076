"""Devices: the project's LwM2M devices, filtered, sorted and paged."""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request

from .. import devices
from .base import PAGE_SIZE, guarded, render_page, session

router = APIRouter()


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
@guarded
def device_list(request: Request, q: str = Query("", max_length=200), sort: str = Query("endpoint", max_length=20),
                desc: bool = False, page: int = Query(1, ge=1, le=1_000_000)):
    """The project's devices: filtered (every column's text contains ``q``), sorted, 100 a page."""
    who, csrf = session(request)
    try:
        rows = devices.list_devices(request, who)
    except HTTPException as e:   # the LwM2M server is off: say so on the page
        return render_page("Devices", f'<p class="note" role="status">{escape(str(e.detail))}</p>', who, csrf)
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
    return render_page("Devices", "".join(body), who, csrf)


