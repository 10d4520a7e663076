"""No-change `pio run` cost of the integration, and the cold KWS compile time.

Prints (does not assert) and writes bench-out/pio_no_change.json:

* median of 5 no-change `pio run` of example_projects/kws-cortex-m4 (with the
  extra script) vs the same project with the generated C copied into src/ by
  hand and no extra script, and their ratio;
* the cold compile time of the KWS model (core.compile_cached into an empty folder).

Run: .venv/bin/python benchmarks/pio_no_change.py
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from platformio_tinyml.device import load_profile  # noqa: E402
from platformio_tinyml.integrations import core  # noqa: E402
from platformio_tinyml.integrations.platformio.offline import setup_offline  # noqa: E402

RUNS = 5
ENV = "mps2-an386"


def _pio(project: Path, environ: dict) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "platformio", "run", "-d", str(project)], env=environ,
                   check=True, capture_output=True)
    return time.perf_counter() - start


def _median_no_change(project: Path, environ: dict) -> float:
    _pio(project, environ)  # first build
    return statistics.median(_pio(project, environ) for _ in range(RUNS))


def _hand_copy(integrated: Path, dest: Path) -> Path:
    """The same firmware with the generated files checked into src/ and no extra script."""
    shutil.copytree(integrated, dest, ignore=shutil.ignore_patterns(".pio"))
    gen = integrated / ".pio" / "build" / ENV / "tinyml" / "kws"
    for f in gen.iterdir():
        if f.is_file() and f.suffix in (".c", ".h"):
            shutil.copy(f, dest / "src" / f.name)
    ini = dest / "platformio.ini"
    ini.write_text("\n".join(line for line in ini.read_text().splitlines()
                             if not line.startswith(("extra_scripts", "custom_tinyml"))) + "\n")
    return dest


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        environ = setup_offline(tmp / "core").environ()
        integrated = tmp / "kws-cortex-m4"
        shutil.copytree(REPO / "example_projects" / "kws-cortex-m4", integrated,
                        ignore=shutil.ignore_patterns(".pio"))
        with_script = _median_no_change(integrated, environ)
        by_hand = _median_no_change(_hand_copy(integrated, tmp / "by-hand"), environ)
        device = load_profile(ENV)
        spec = core.ModelSpec.make(integrated / "kws_ref_model.tflite", name="kws")
        start = time.perf_counter()
        core.compile_cached(spec, device, tmp / "cold")
        cold = time.perf_counter() - start
    result = {"runs": RUNS, "no_change_with_integration_s": round(with_script, 3),
              "no_change_hand_copied_s": round(by_hand, 3), "ratio": round(with_script / by_hand, 3),
              "kws_cold_compile_s": round(cold, 3)}
    for key, value in result.items():
        print(f"{key}: {value}")
    out = REPO / "bench-out" / "pio_no_change.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
