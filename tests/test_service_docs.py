"""docs/service.md's API table is the one the running code's OpenAPI document gives."""

from __future__ import annotations

from conftest import REPO


def test_api_table_in_docs_is_generated_from_the_current_openapi_document():
    from platformio_tinyml.service.apidoc import BEGIN, END, api_markdown, current_openapi
    text = (REPO / "docs" / "service.md").read_text()
    table = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert table == api_markdown(current_openapi()), (
        "docs/service.md is stale: run python -m platformio_tinyml.service.apidoc docs/service.md")
    assert "| POST | `/v1/compilations` |" in table and "| GET | `/metrics` |" in table
