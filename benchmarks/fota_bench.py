"""FOTA over LwM2M object 5: whole firmware images pushed to a ``--firmware`` device.

    .venv/bin/python benchmarks/fota_bench.py [--repeat 3] [--block 1024]

Starts a real ``tinyml serve`` and one ``tinyml device-agent --firmware
example_projects/module-cortex-m4`` process (one device, its MCU the example firmware
in QEMU), pushes the KWS module (so every firmware update reboots with a running module
its loader must accept), then updates the firmware ``--repeat`` times each way between
the example built as is (``1.0.0``) and with ``FIRMWARE_VERSION "2.0.0"``, as the ELF the
build writes and stripped (``arm-none-eabi-strip``). Per update: bytes, blocks, the
block-wise transfer's wall time, the time from the last block to Update Result 1 and
``/3/0/3`` read (State check, Execute Update: a QEMU boot of the new firmware, State
followed, Firmware Version, capabilities), and the whole delivery; the agent's CPU
(with its QEMU runs) over all updates. Prints a table and writes
``bench-out/fota_bench.json``. Builds the two firmwares once (cached, like the tests).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from agent_support import KWS_KERNELS, kws_firmware_module, public_key_pem, push  # noqa: E402
from lwm2m_support import free_udp_port  # noqa: E402
from module_support import fixed_key  # noqa: E402
from service_support import Server, interrupt, tinyml, wait_for  # noqa: E402

EXAMPLE = REPO / "example_projects" / "module-cortex-m4"


def _images(tmp: Path) -> dict[str, bytes]:
    from platformio_tinyml.module.firmware import KernelSet
    from platformio_tinyml.module.keys import public_key_bytes
    from platformio_tinyml.module.qemu import build_example_firmware
    kset, key = KernelSet.of(KWS_KERNELS), public_key_bytes(fixed_key().public_key())
    main_v2 = tmp / "main.c"
    main_v2.write_text('#define FIRMWARE_VERSION "2.0.0"\n' + (EXAMPLE / "src" / "main.c").read_text())
    out = {}
    for name, elf in (("1.0.0", build_example_firmware(kset, key)), ("2.0.0", build_example_firmware(kset, key,
                                                                                                      main_v2))):
        out[f"{name} elf"] = elf.read_bytes()
        stripped = tmp / f"{name}.elf"
        stripped.write_bytes(out[f"{name} elf"])
        subprocess.run(["arm-none-eabi-strip", str(stripped)], check=True)
        out[f"{name} stripped"] = stripped.read_bytes()
    return out


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its ended children (the QEMU runs)."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in f[11:15]) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--block", type=int, default=1024)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fota-bench-"))
    images = _images(tmp)
    port = free_udp_port()
    srv = Server(tmp / "data", "--lwm2m-port", port)
    token = srv.token("fleet", "read,deploy")
    tinyml("service", "devices", "allow", "--project", "fleet", "--pattern", "ota*", "--data", srv.data)
    srv.start()
    srv.reader = srv.deployer = srv.client(token)
    log = tmp / "agent.log"
    agent = subprocess.Popen([sys.executable, "-m", "platformio_tinyml.cli.main", "device-agent", "--server",
                              f"coap://127.0.0.1:{port}", "--endpoint", "ota", "--public-key",
                              str(public_key_pem(tmp / "key.pub")), "--kernels", ",".join(KWS_KERNELS),
                              "--firmware", str(EXAMPLE), "-v"], stdout=subprocess.DEVNULL, stderr=open(log, "w"),
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    rows = []
    try:
        wait_for(lambda: srv.reader.get("/v1/devices/ota").json().get("capabilities"), "ota registered", 60, log)
        assert push(srv, "ota", kws_firmware_module(1).data)["state"] == "active"
        cpu0 = _cpu_s(agent.pid)
        for kind in ("elf", "stripped"):
            for k in range(2 * args.repeat):
                name = f"{'2.0.0' if k % 2 == 0 else '1.0.0'} {kind}"
                st = push(srv, "ota", images[name], what="firmware", timeout=120, block_size=args.block)
                assert st["state"] == "updated" and st["firmware_after"].startswith(name.split()[0]), st
                total = st["finished"] - st["started"]
                rows.append({"image": name, "bytes": st["size"], "blocks": st["blocks_done"],
                             "transfer_s": st["transfer_s"], "update_s": round(total - st["transfer_s"], 4),
                             "total_s": round(total, 4)})
        cpu = _cpu_s(agent.pid) - cpu0
    finally:
        interrupt(agent, timeout=15)
        srv.stop()
    print(f"{'image':<16} {'bytes':>9} {'blocks':>6} {'transfer s':>10} {'update s':>9} {'total s':>8}")
    for kind in ("elf", "stripped"):
        sel = [r for r in rows if r["image"].endswith(kind)]
        med = {k: statistics.median(r[k] for r in sel) for k in ("transfer_s", "update_s", "total_s")}
        print(f"{kind + ' (median)':<16} {sel[0]['bytes']:>9,} {sel[0]['blocks']:>6} {med['transfer_s']:>10.3f} "
              f"{med['update_s']:>9.3f} {med['total_s']:>8.3f}")
    print(f"agent CPU over {len(rows)} updates (with QEMU): {cpu:.2f} s; load {os.getloadavg()[0]:.1f}")
    out = REPO / "bench-out"
    out.mkdir(exist_ok=True)
    (out / "fota_bench.json").write_text(json.dumps({"rows": rows, "agent_cpu_s": cpu, "block": args.block,
                                                     "load": os.getloadavg()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
