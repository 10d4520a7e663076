"""``example_projects/fleet-demo/demo.py`` end to end: the script as a user runs it.

It starts ``tinyml serve``, three ``tinyml device-agent --firmware`` (the module-cortex-m4
firmware in QEMU) and deploys the KWS module with ``tinyml fleet deploy``. The outputs it
prints for each device, read from the device's TinyML object, must be TensorFlow Lite
Micro's on the agents' probe input, computed here, not taken from the script's own verdict.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from agent_support import kws_module
from conftest import need_programs
from service_support import REPO

DEMO = REPO / "example_projects" / "fleet-demo" / "demo.py"


def test_fleet_demo_deploys_to_three_firmware_devices_that_compute_like_tflm(tmp_path):
    need_programs("arm-none-eabi-gcc", "qemu-system-arm")
    done = subprocess.run([sys.executable, str(DEMO), "--keep", str(tmp_path / "work")], capture_output=True,
                          text=True, timeout=150, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    golden = " ".join(str(v - 256 if v > 127 else v) for v in kws_module()[1])
    for ep in ("demo-0", "demo-1", "demo-2"):
        assert re.search(rf"^   {ep}: online, mps2-an386 cortex-m4, active slot -1 .*0 inference", out, re.M), out
        assert re.search(rf"^   {ep}: online, mps2-an386 cortex-m4, active slot 0 \(slot 0 main v1 active, "
                         r"slot 1 empty\), 1 inference\(s\), last error none$", out, re.M), out
        assert f"   {ep} outputs: {golden}  = TFLM\n" in out
        assert f"   {ep} firmware printed: firmware version 1.0.0 | slot A: ok | update from slot B: bad magic | running module version 1 " \
               f"| output: {golden}\n" in out
    assert re.search(r": succeeded, stage 1 of 1, module main v1, 3 device\(s\) \(3 succeeded\)", out), out
    assert out.rstrip().endswith("stopped 4 process(es)")
    assert "every device runs the module, outputs equal to TFLM's" in out
