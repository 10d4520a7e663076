"""The API reference of docs/service.md, generated from the OpenAPI document.

``python -m platformio_tinyml.service.apidoc docs/service.md`` rewrites the
part of the file between the two marker lines; a test checks it is current.
"""

from __future__ import annotations

import sys
from pathlib import Path

BEGIN, END = "<!-- api: generated from /v1/openapi.json, do not edit -->", "<!-- end api -->"


def api_markdown(doc: dict) -> str:
    """One table row per operation: method, path, what it does, its form or query fields, answers."""
    rows = ["| method | path | what | fields | answers |", "|---|---|---|---|---|"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            fields = [p["name"] for p in op.get("parameters", []) if p.get("in") == "query"]
            body = op.get("requestBody", {}).get("content", {})
            for media in body.values():
                ref = media.get("schema", {}).get("$ref", "")
                schema = doc["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {})
                required = set(schema.get("required", ()))
                fields += [f"{n}{'' if n in required else '?'}" for n in schema.get("properties", {})]
            summary = (op.get("description") or op.get("summary") or "").split("\n")[0].replace("|", "\\|")
            codes = ", ".join(sorted(op.get("responses", {})))
            rows.append(f"| {method.upper()} | `{path}` | {summary} | {', '.join(fields) or '-'} | {codes} |")
    return "\n".join(rows)


def current_openapi() -> dict:
    from .app import create_app
    from .config import ServiceConfig
    from .core import Service

    class _NoService(Service):   # the document only: no database, no workers
        def __init__(self):
            self.cfg = ServiceConfig()

    return create_app(_NoService(), start_runner=False).openapi()


def rewrite(path: Path) -> bool:
    """Put the current table between the markers of ``path``; True when it changed."""
    text = path.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n{api_markdown(current_openapi())}\n{END}{tail}"
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":
    changed = rewrite(Path(sys.argv[1]))
    print(f"{sys.argv[1]}: {'updated' if changed else 'up to date'}")
