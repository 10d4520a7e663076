"""tinyml-report.html: written beside report.json by `tinyml compile`, self-contained, its bars
hold report.json's numbers, and nothing from the model file reaches the page as markup."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser

from conftest import MLPERF, MLPERF_INT8
from service_support import tinyml

from platformio_tinyml.report_html import render_pio_report

HOSTILE = "<svg onload=alert(1)>&x\"'.tflite"    # no '/': it is a file name


class Page(HTMLParser):
    """Every tag with its attributes, the memory bars' segments, and the page's text."""

    def __init__(self, text: str):
        super().__init__()
        self.tags, self.bars, self.text, self._bar = [], {}, [], None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if "data-bar" in attrs:
            self._bar = attrs["data-bar"]
            self.bars[self._bar] = {"limit": int(attrs["data-limit"]), "used": int(attrs["data-used"])}
        if "data-kind" in attrs:
            self.bars[self._bar][attrs["data-kind"]] = int(attrs["data-bytes"])

    def handle_data(self, data):
        self.text.append(data)


def assert_inert(page: Page) -> None:
    """No script, no event handler, nothing fetched from elsewhere."""
    for tag, attrs in page.tags:
        assert tag not in ("script", "iframe", "object", "embed", "link", "img", "base"), tag
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert name not in ("src", "href", "srcset", "action"), (tag, name, value)


def test_compile_writes_a_self_contained_page_with_the_report_s_memory_picture(tmp_path):
    model = tmp_path / HOSTILE
    shutil.copyfile(MLPERF / MLPERF_INT8["ad"], model)

    proc = tinyml("compile", model.name, "-t", "nucleo_f446re", "-o", "gen", "--name", "ad", cwd=tmp_path)

    assert "report.json, tinyml-report.html" in proc.stdout
    report = json.loads((tmp_path / "gen" / "report.json").read_text())
    text = (tmp_path / "gen" / "tinyml-report.html").read_text()
    page = Page(text)
    assert_inert(page)
    assert HOSTILE not in text and "<svg onload" not in text
    assert HOSTILE in "".join(page.text)          # shown, as text
    assert page.bars["flash"] == {"limit": report["target"]["flash_bytes"],
                                  "used": report["estimated_flash_bytes"],
                                  "weights": report["weight_bytes"],
                                  "code": report["estimated_flash_bytes"] - report["weight_bytes"]}
    assert page.bars["ram"] == {"limit": report["target"]["ram_bytes"], "used": report["estimated_ram_bytes"],
                                "arena": report["arena_bytes"],
                                "model_other": report["estimated_ram_bytes"] - report["arena_bytes"]}
    words = " ".join(" ".join(page.text).split())
    for fact in ("cgen", report["chosen_because"], f"{report['arena_bytes']:,} B", "ops 10",
                 "rest of the firmware: not known"):
        assert fact in words, fact

    again = tinyml("compile", model.name, "-t", "nucleo_f446re", "-o", "gen", "--name", "ad", cwd=tmp_path)
    assert again.returncode == 0     # the page is one of compile's own files: -o may be reused
    assert (tmp_path / "gen" / "tinyml-report.html").read_text() == text   # and it is reproducible


def test_pio_report_page_splits_the_linked_firmware(tmp_path):
    model = {"name": "kws", "backend": "cgen", "weight_bytes": 24_368, "arena_bytes": 16_000,
             "estimated_flash_bytes": 30_000, "estimated_ram_bytes": 17_000,
             "model": {"path": "<b>kws</b>.tflite"}, "target": {"board": "mps2-an386"}}
    firmware = {"flash_bytes": 61_000, "ram_bytes": 40_000, "model_flash_bytes": 29_000,
                "model_ram_bytes": 16_500, "flash_max_bytes": 4_194_304, "ram_max_bytes": 32_000,
                "summary": ["TinyML: firmware flash 61,000 B"], "ok": False, "error": "Error: <over>", "warnings": []}
    data = {"env": "an386", "board": {"board": "mps2-an386"}, "models": [model], "firmware": firmware,
            "verify": None}

    page = Page(render_pio_report(data))

    assert_inert(page)
    assert page.bars["flash"] == {"limit": 4_194_304, "used": 61_000, "weights": 24_368, "code": 29_000 - 24_368,
                                  "firmware": 61_000 - 29_000}
    assert page.bars["ram"] == {"limit": 32_000, "used": 40_000, "arena": 16_000, "model_other": 500,
                                "firmware": 40_000 - 16_500}
    words = " ".join(" ".join(page.text).split())
    assert "over by 8,000 B" in words and "Error: <over>" in words and "<b>kws</b>.tflite" in words
