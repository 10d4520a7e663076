"""No-change `pio run` cost of the integration, and the cold KWS compile time.

Prints (does not assert) and writes bench-out/pio_no_change.json:

* median of 5 no-change `pio run` of example_projects/kws-cortex-m4 (with the
  extra script) vs the same project with the generated C copied into src/ by
  hand and no extra script, and their ratio;
* the cold compile time of the KWS model (core.compile_cached into an empty folder);
* with ``--service``: a real ``tinyml serve`` on loopback and the project set to
  ``custom_tinyml_service``; median of 5 `pio run` after the generated model folder
  was removed, so each asks the service by key and unpacks its cached artifact
  (``[from the cache of URL]``), against the same project's no-change build, and
  their ratio (the service issue's goal: at most 1.2x).

Run: .venv/bin/python benchmarks/pio_no_change.py [--service]
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
GEN = Path(".pio") / "build" / ENV / "tinyml" / "kws"


def _pio(project: Path, environ: dict, expect: str | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "platformio", "run", "-d", str(project)], env=environ,
                          check=True, capture_output=True, text=True)
    took = time.perf_counter() - start
    if expect is not None and expect not in done.stdout + done.stderr:
        raise SystemExit(f"expected '{expect}' in the build log:\n{done.stdout}{done.stderr}")
    return took


def _service_hit(project: Path, environ: dict, tmp: Path) -> dict:
    """No-change build vs a build that takes the model from the service's cache, same project."""
    sys.path.insert(0, str(REPO / "tests"))
    from service_support import Server
    server = Server(tmp / "service", "--workers", "1").start()
    try:
        ini = project / "platformio.ini"
        ini.write_text(ini.read_text().rstrip("\n") + f"\ncustom_tinyml_service = {server.url}\n")
        env = {**environ, "TINYML_SERVICE_TOKEN": server.token("bench", "compile,read")}
        shutil.rmtree(project / GEN, ignore_errors=True)
        _pio(project, env, expect=f"[compiled by {server.url}]")      # the service compiles it once
        no_change = statistics.median(_pio(project, env, expect="[up to date]") for _ in range(RUNS))
        hits = []
        for _ in range(RUNS):
            shutil.rmtree(project / GEN)
            hits.append(_pio(project, env, expect=f"[from the cache of {server.url}]"))
        hit = statistics.median(hits)
    finally:
        server.stop()
    return {"service_no_change_s": round(no_change, 3), "service_hit_s": round(hit, 3),
            "service_hit_ratio": round(hit / no_change, 3)}


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
    service = "--service" in sys.argv[1:]
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
        if service:
            result.update(_service_hit(integrated, environ, tmp))
    for key, value in result.items():
        print(f"{key}: {value}")
    out = REPO / "bench-out" / "pio_no_change.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
