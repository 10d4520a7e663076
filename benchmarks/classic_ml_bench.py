#!/usr/bin/env python3
"""Flash and RAM of the classical-ML models of tests/test_classic_ml.py on Cortex-M0+ and AVR.

Each model is compiled (emlearn backend, its generated C for the families emlearn lacks),
then cross-compiled at -Os for each core; flash = .text + .rodata + .data, RAM = .data + .bss
of the model's object (static buffers; the stack is not counted; on AVR .rodata too, since
avr-gcc copies const tables into SRAM), read from the object with ``size -A``. Prints a Markdown table; ``--json`` writes the figures to bench-out/.

    .venv/bin/python benchmarks/classic_ml_bench.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
CORES = {"cortex-m0plus": "arm-none-eabi-size", "atmega2560": "avr-size"}


def sections(size_tool: str, obj: Path, avr: bool) -> tuple[int, int]:
    out = subprocess.run([size_tool, "-A", str(obj)], capture_output=True, text=True, check=True).stdout
    sec = {}
    for line in out.splitlines()[2:]:
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            name = parts[0]
            key = next((k for k in (".text", ".rodata", ".data", ".bss") if name.startswith(k)), None)
            if key:
                sec[key] = sec.get(key, 0) + int(parts[1])
    flash = sec.get(".text", 0) + sec.get(".rodata", 0) + sec.get(".data", 0)
    ram = sec.get(".data", 0) + sec.get(".bss", 0)
    # avr-gcc's const tables (no PROGMEM in this generator) are copied into SRAM at start-up
    return flash, ram + (sec.get(".rodata", 0) if avr else 0)


def main() -> int:
    import joblib
    from platformio_tinyml.device import load_profile
    from platformio_tinyml.emu import compile_only
    from platformio_tinyml.pipeline import compile_model
    from test_classic_ml import MODELS, _fit
    dev = load_profile("nucleo_f446re", search_dirs=[REPO.parent / "shared" / "boards"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in sorted(MODELS):
            d = Path(tmp) / kind
            d.mkdir()
            joblib.dump(_fit(kind), d / "m.joblib")
            compile_model(d / "m.joblib", dev, d / "out", name="m")
            row = {"model": kind}
            for core, size_tool in CORES.items():
                obj = compile_only([d / "out" / "m.c"], [d / "out"], core, None, out_dir=d / core)[0]
                row[core] = sections(size_tool, obj, core.startswith("atmega"))
            rows.append(row)
    print("| model | Cortex-M0+ flash B | Cortex-M0+ RAM B | AVR flash B | AVR RAM B |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        (mf, mr), (af, ar) = r["cortex-m0plus"], r["atmega2560"]
        print(f"| {r['model']} | {mf:,} | {mr:,} | {af:,} | {ar:,} |")
    if "--json" in sys.argv:
        (REPO / "bench-out").mkdir(exist_ok=True)
        (REPO / "bench-out" / "classic_ml.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
