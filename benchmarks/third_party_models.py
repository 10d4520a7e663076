#!/usr/bin/env python3
"""Third-party models (those of tests/test_third_party_models.py): op count, the outcome
of cgen and tflm, and their arena / flash / RAM figures.

Each model is compiled with ``--backend cgen`` and ``--backend tflm`` for a board with
the RAM it needs (nucleo_f446re, or mps2-an386 for the MediaPipe models) and the
report's figures are taken (arena, estimated flash and RAM). cgen's generated sources
are also cross-compiled for Cortex-M4 at -Os, linked keeping only what the model's invoke
function reaches (--gc-sections) and measured with ``arm-none-eabi-size`` (flash = .text +
.rodata + .data, static RAM = .data + .bss: arena and state; no stack).
Run scripts/fetch_models.sh first. Prints a Markdown table; ``--json`` writes bench-out/.

    .venv/bin/python benchmarks/third_party_models.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
MODELS = REPO / "third_party" / "models"


def cases() -> list[tuple[str, str, Path, str]]:
    import tflite_micro
    sine = Path(os.path.dirname(tflite_micro.__file__)) / "python" / "tflite_micro" / "sine_float.tflite"
    out = [(w, "pymicro-wakeword 2.5.0", MODELS / "pymicro_wakeword" / f"{w}.tflite", "nucleo_f446re")
           for w in ("alexa", "hey_jarvis", "hey_mycroft", "okay_nabu")]
    out.append(("sine_float", "tflite-micro (its own example)", sine, "nucleo_f446re"))
    out += [(n, "mediapipe 0.10.14", MODELS / "mediapipe" / f"{n}.tflite", "mps2-an386")
            for n in ("face_detection_short_range", "hand_recrop")]
    return out


def cli(*args) -> tuple[int, str, str]:
    p = subprocess.run([sys.executable, "-m", "platformio_tinyml.cli.main", *map(str, args)],
                       capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    return p.returncode, p.stdout, p.stderr


def measured_cgen(out: Path, name: str) -> tuple[int, int]:
    """flash, static RAM of cgen's sources built for Cortex-M4 (-Os, hard float) and linked
    with only NAME_invoke_multi kept (--gc-sections; newlib-nano for memcpy and libm)."""
    elf = out / "m.elf"
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
                    "-Os", "-ffunction-sections", "-fdata-sections", "-std=c99", "-I", str(out),
                    *map(str, sorted(out.glob("*.c"))), "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs",
                    "-Wl,--gc-sections", f"-Wl,-e,{name}_invoke_multi", "-lm", "-o", str(elf)], check=True)
    from classic_ml_bench import sections      # flash = .text + .rodata + .data, RAM = .data + .bss
    return sections("arm-none-eabi-size", elf, avr=False)


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, pkg, path, board in cases():
            from platformio_tinyml.model.tflite import load_tflite
            row = {"model": name, "package": pkg, "board": board, "ops": len(load_tflite(path).ops)}
            for backend in ("cgen", "tflm"):
                out = Path(tmp) / f"{name}-{backend}"
                rc, _, err = cli("compile", path, "-t", board, "-b", backend, "-o", out, "--name", "m")
                if rc:
                    row[backend] = {"refused": err.strip().split(" (", 1)[-1][:120]}
                    continue
                rep = json.loads((out / "report.json").read_text())
                row[backend] = {k: rep[k] for k in ("arena_bytes", "estimated_flash_bytes", "estimated_ram_bytes")}
                if backend == "cgen":
                    row[backend]["measured_flash"], row[backend]["measured_static_ram"] = measured_cgen(out, "m")
            rows.append(row)
    print("| model | source | ops | board | cgen arena / est. RAM / est. flash (B) | cgen measured flash / static RAM, "
          "Cortex-M4 -Os (B) | tflm arena / est. RAM / est. flash (B) |")
    print("|---|---|---:|---|---:|---:|---:|")
    for r in rows:
        c, t = r["cgen"], r["tflm"]
        cg = (f"{c['arena_bytes']:,} / {c['estimated_ram_bytes']:,} / {c['estimated_flash_bytes']:,}"
              if "arena_bytes" in c else "refused")
        meas = f"{c['measured_flash']:,} / {c['measured_static_ram']:,}" if "measured_flash" in c else "-"
        tf = (f"{t['arena_bytes']:,} / {t['estimated_ram_bytes']:,} / {t['estimated_flash_bytes']:,}"
              if "arena_bytes" in t else f"refused: {t['refused']}")
        print(f"| {r['model']} | {r['package']} | {r['ops']} | {r['board']} | {cg} | {meas} | {tf} |")
    if "--json" in sys.argv:
        (REPO / "bench-out").mkdir(exist_ok=True)
        (REPO / "bench-out" / "third_party_models.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
