"""``tinyml-report.html``: a report's memory picture and key facts as one self-contained page.

The picture shows flash and RAM as bars against the board's limits, split into what
the model's weights, the generated code, the arena (and the model's other RAM: stack,
buffers) take, and the rest of the firmware when a linked firmware was measured
(``tinyml-report.json`` after ``pio run``). :func:`compile_bars` and :func:`pio_bars`
compute the bars from the JSON documents (docs/reports.md); :func:`bars_html` and
:func:`facts_html` render fragments that the service's console embeds in its pages;
:func:`render_compile_report` and :func:`render_pio_report` give whole pages (inline
CSS and SVG, nothing fetched), written by ``tinyml compile`` and ``pio run -t
tinyml-report``. Every string taken from a report is escaped: model names and paths
come from untrusted model files. Standard library only, so every layer may use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

HTML_REPORT_FILE = "tinyml-report.html"

# kind -> (label, colour); the order is the order of the segments in a bar
KINDS = {"weights": ("weights", "#3366cc"), "code": ("code", "#66a3e0"),
         "arena": ("arena", "#dd7722"), "model_other": ("model stack and buffers", "#f0b070"),
         "firmware": ("rest of the firmware", "#8a8a8a")}

CSS = """
:root{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2430;background:#f6f7f9}
body{margin:0 auto;max-width:68rem;padding:1rem}
h1{font-size:1.4rem;margin:.2rem 0 1rem}h2{font-size:1.1rem;margin:1.2rem 0 .5rem}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e1e4e8;vertical-align:top;overflow-wrap:break-word}
th{background:#eef0f3;font-weight:600}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem;background:#fff;padding:.8rem;margin:0}
dl.facts dt{font-weight:600}dl.facts dd{margin:0;overflow-wrap:anywhere}
.bar{background:#fff;padding:.6rem .8rem;margin:.5rem 0;border:1px solid #e1e4e8}
.bar svg{width:100%;height:1.6rem;display:block}
.legend{display:flex;flex-wrap:wrap;gap:.3rem 1rem;margin:.4rem 0 0;padding:0;list-style:none;font-size:.9rem}
.swatch{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:-.1rem}
.over{color:#b00020;font-weight:600}.note{color:#555;font-size:.9rem}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
@media (max-width:40rem){body{padding:.5rem}dl.facts{grid-template-columns:1fr}}
"""


@dataclass(frozen=True)
class Part:
    kind: str           # a key of KINDS
    bytes: int


@dataclass(frozen=True)
class Bar:
    """One memory (``flash`` or ``RAM``): its parts against the board's ``limit`` (0: unknown)."""
    what: str
    limit: int
    parts: tuple[Part, ...]
    note: str = ""

    @property
    def used(self) -> int:
        return sum(p.bytes for p in self.parts)


def _int(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _parts(**sizes: int) -> tuple[Part, ...]:
    return tuple(Part(k, sizes[k]) for k in KINDS if sizes.get(k, 0) > 0)


def _model_bars(weights: int, flash: int, arena: int, ram: int, limits: tuple[int, int],
                firmware: tuple[int, int] | None) -> list[Bar]:
    """Flash (weights, code[, rest]) and RAM (arena, model's other RAM[, rest]); ``flash`` and
    ``ram`` are the model's whole share, ``firmware`` the whole firmware's (flash, RAM)."""
    note = "" if firmware is not None else "rest of the firmware: not known before a firmware is linked"
    rest = firmware or (0, 0)
    return [Bar("flash", limits[0], _parts(weights=weights, code=max(flash - weights, 0),
                                            firmware=max(rest[0] - flash, 0)), note),
            Bar("RAM", limits[1], _parts(arena=arena, model_other=max(ram - arena, 0),
                                          firmware=max(rest[1] - ram, 0)), note)]


def compile_bars(report: dict) -> list[Bar]:
    """The bars of one ``report.json``: the backend's estimates against the target's limits."""
    target = report.get("target") or {}
    return _model_bars(_int(report.get("weight_bytes")), _int(report.get("estimated_flash_bytes")),
                       _int(report.get("arena_bytes")), _int(report.get("estimated_ram_bytes")),
                       (_int(target.get("flash_bytes")), _int(target.get("ram_bytes"))), None)


def pio_bars(data: dict) -> list[Bar]:
    """The bars of a ``tinyml-report.json``: measured in the linked firmware when there is
    one (the model's share, the rest), else the models' estimates."""
    models, board, fw = data.get("models") or [], data.get("board") or {}, data.get("firmware")
    weights = sum(_int(m.get("weight_bytes")) for m in models)
    arena = sum(_int(m.get("arena_bytes")) for m in models)
    if not fw:
        return _model_bars(weights, sum(_int(m.get("estimated_flash_bytes")) for m in models), arena,
                           sum(_int(m.get("estimated_ram_bytes")) for m in models),
                           (_int(board.get("flash_bytes")), _int(board.get("ram_bytes"))), None)
    return _model_bars(weights, _int(fw.get("model_flash_bytes")), arena, _int(fw.get("model_ram_bytes")),
                       (_int(fw.get("flash_max_bytes")) or _int(board.get("flash_bytes")),
                        _int(fw.get("ram_max_bytes")) or _int(board.get("ram_bytes"))),
                       (_int(fw.get("flash_bytes")), _int(fw.get("ram_bytes"))))


def _bar_html(bar: Bar) -> str:
    scale = max(bar.limit, bar.used, 1)
    track = 1000.0 * bar.limit / scale if bar.limit else 1000.0
    x, rects = 0.0, [f'<rect x="0" y="0" width="{track:.2f}" height="24" fill="#e6e9ed"/>']   # the room there is
    for p in bar.parts:
        width = 1000.0 * p.bytes / scale
        label = KINDS[p.kind][0]
        rects.append(f'<rect x="{x:.2f}" y="0" width="{width:.2f}" height="24" fill="{KINDS[p.kind][1]}" '
                     f'data-kind="{p.kind}" data-bytes="{p.bytes}"><title>{label}: {p.bytes:,} B</title></rect>')
        x += width
    if bar.limit:
        limit_x = 1000.0 * bar.limit / scale
        rects.append(f'<line x1="{limit_x:.2f}" x2="{limit_x:.2f}" y1="0" y2="24" stroke="#b00020" stroke-width="3"/>')
    if not bar.limit:
        verdict = f"{bar.used:,} B used; the board's {bar.what} size is not known"
    elif bar.used > bar.limit:
        verdict = (f'<span class="over">{bar.used:,} B of {bar.limit:,} B: over by '
                   f'{bar.used - bar.limit:,} B</span>')
    else:
        verdict = f"{bar.used:,} B of {bar.limit:,} B ({100.0 * bar.used / bar.limit:.1f} %)"
    legend = "".join(f'<li><span class="swatch" style="background:{KINDS[p.kind][1]}"></span>'
                     f'{KINDS[p.kind][0]} <span class="num">{p.bytes:,} B</span></li>' for p in bar.parts)
    note = f'<p class="note">{escape(bar.note)}</p>' if bar.note else ""
    return (f'<div class="bar" data-bar="{bar.what.lower()}" data-limit="{bar.limit}" data-used="{bar.used}">'
            f'<strong>{bar.what}</strong>: {verdict}'
            f'<svg viewBox="0 0 1000 24" preserveAspectRatio="none" role="img" '
            f'aria-label="{bar.what}: {bar.used:,} of {bar.limit:,} bytes">{"".join(rects)}</svg>'
            f'<ul class="legend">{legend}</ul>{note}</div>')


def bars_html(bars: list[Bar]) -> str:
    """The memory picture: one bar per memory, with a legend that gives every number as text."""
    return '<section class="memory" aria-label="memory picture">' + "".join(map(_bar_html, bars)) + "</section>"


def definition_list(rows: list[tuple[str, object]]) -> str:
    """``<dl class="facts">`` of (name, value) rows, escaped; rows without a value are left out."""
    return '<dl class="facts">' + "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>"
                                          for k, v in rows if v not in (None, "")) + "</dl>"


def _count(value) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "-"


def _bytes(value) -> str | None:
    return f"{value:,} B" if isinstance(value, int) and not isinstance(value, bool) else None


def facts_html(report: dict) -> str:
    """One model's key facts: model, target, backend and why, arena, weights, estimates, ops."""
    model, target = report.get("model") or {}, report.get("target") or {}
    ms = report.get("estimated_latency_ms")
    return definition_list([("name", report.get("name")), ("model", model.get("path")), ("format", model.get("format")),
                ("ops", model.get("ops")), ("model sha256", model.get("sha256")),
                ("target", f"{target.get('board', '?')} ({target.get('core', '?')}, "
                           f"{target.get('clock_hz') or 0:,} Hz)"),
                ("backend", f"{report.get('backend', '?')} {report.get('backend_version', '')}".strip()),
                ("chosen because", report.get("chosen_because")),
                ("arena", _bytes(report.get("arena_bytes"))), ("weights", _bytes(report.get("weight_bytes"))),
                ("estimated flash", _bytes(report.get("estimated_flash_bytes"))),
                ("estimated RAM", _bytes(report.get("estimated_ram_bytes"))),
                ("estimated latency", f"{ms} ms ({report.get('estimated_latency_cycles'):,} cycles)"
                 if ms is not None and report.get("estimated_latency_cycles") is not None else None),
                ("tool", report.get("tool"))])


def backends_html(rows: list[dict], chosen: str | None = None) -> str:
    """A table of backends' verdicts: each row ``backend``, ``ok``, ``reasons``, ``flash``,
    ``ram``, ``latency_cycles``; ``chosen`` is marked."""
    body = []
    for r in sorted(rows, key=lambda r: str(r.get("backend"))):
        verdict = "fits" if r.get("ok") else "; ".join(map(str, r.get("reasons") or [])) or "no"
        name = str(r.get("backend")) + (" (chosen)" if r.get("backend") == chosen else "")
        body.append(f"<tr><td>{escape(name)}</td><td>{escape(verdict)}</td>"
                    + "".join(f'<td class="num">{escape(_bytes(r.get(k)) or "-")}</td>' for k in ("flash", "ram"))
                    + f'<td class="num">{_count(r.get("latency_cycles"))}</td></tr>')
    if not body:
        return ""
    return ('<table class="backends"><thead><tr><th scope="col">backend</th><th scope="col">verdict</th>'
            '<th scope="col">flash</th><th scope="col">RAM</th><th scope="col">latency (cycles)</th></tr>'
            f'</thead><tbody>{"".join(body)}</tbody></table>')


def candidates_html(report: dict) -> str:
    """Every backend the compile asked and its verdict (``candidates`` of report.json)."""
    return backends_html([{"backend": n, **c} for n, c in (report.get("candidates") or {}).items()],
                         report.get("backend"))


def compare_html(table: dict) -> str:
    """The ``tinyml compare --json`` table: every backend asked, the choice and why."""
    rows = [{"backend": r.get("backend"), "ok": r.get("supported"), "reasons": r.get("reasons"),
             "flash": r.get("flash_bytes"), "ram": r.get("ram_bytes"), "latency_cycles": r.get("latency_cycles")}
            for r in table.get("backends") or []]
    return (backends_html(rows, table.get("chosen"))
            + f'<p id="chosen">chosen: {escape(str(table.get("chosen")))} ({escape(str(table.get("because")))})</p>')


def list_html(title: str, items) -> str:
    items = [str(i) for i in items or ()]
    return f"<h2>{escape(title)}</h2><ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>" if items else ""


def page(title: str, body: str) -> str:
    """A whole self-contained page (``title`` is escaped here, ``body`` is HTML already)."""
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>{body}</body></html>\n")


def _model_section(report: dict) -> str:
    return (facts_html(report) + "<h2>Backends asked</h2>" + candidates_html(report)
            + list_html("Diagnostics", report.get("diagnostics")))


def render_compile_report(report: dict) -> str:
    """The page ``tinyml compile`` writes beside report.json."""
    name = str(report.get("name") or "model")
    board = str((report.get("target") or {}).get("board") or "?")
    return page(f"TinyML report: {name} on {board}",
                f"<h1>TinyML report: {escape(name)} on {escape(board)}</h1><h2>Memory</h2>"
                + bars_html(compile_bars(report)) + "<h2>Model</h2>" + _model_section(report))


def render_pio_report(data: dict) -> str:
    """The page ``pio run -t tinyml-report`` writes beside tinyml-report.json."""
    env, board = str(data.get("env") or "?"), str((data.get("board") or {}).get("board") or "?")
    fw = data.get("firmware")
    body = [f"<h1>TinyML report: [env:{escape(env)}] on {escape(board)}</h1><h2>Memory</h2>",
            bars_html(pio_bars(data))]
    if fw:
        body.append(list_html("Firmware", [*(fw.get("summary") or []), *(fw.get("warnings") or []),
                                            *([fw["error"]] if fw.get("error") else [])]))
    for m in data.get("models") or []:
        body.append(f"<h2>Model {escape(str(m.get('name') or '?'))}</h2>" + _model_section(m))
    for v in data.get("verify") or []:
        body.append(list_html(f"Verify {v.get('name', '?')}",
                              [f"{'ok' if v.get('ok') else 'FAILED'}: backend {v.get('backend', '?')}, "
                               f"{v.get('method', '')}"]))
    return page(f"TinyML report: [env:{env}] on {board}", "".join(body))
