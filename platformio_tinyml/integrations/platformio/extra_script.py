"""PRE extra script of platformio-tinyml, usable by path.

A project normally commits a three-line copy of this (``tinyml_pio.py``, see
docs/platformio.md) and lists it as ``extra_scripts = pre:tinyml_pio.py``.
This file does the same in place, for example as
``extra_scripts = pre:${sysenv.TINYML_PIO_SCRIPT}``. When PlatformIO's Python
lacks platformio-tinyml, the copy this file belongs to goes on ``sys.path``.
Run by SCons (``SConscript``), not imported.
"""

import sys
from pathlib import Path

Import("env")  # noqa: F821  (SConscript builtin)

try:
    from platformio_tinyml.integrations.platformio.build import attach
except ImportError:
    # SCons runs SConscripts with __file__ set to the script's path.
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    try:
        from platformio_tinyml.integrations.platformio.build import attach
    except ImportError as exc:
        sys.stderr.write(f"Error: [env:{env['PIOENV']}] cannot import platformio_tinyml ({exc}). "  # noqa: F821
                         f"Install it into PlatformIO's Python: {sys.executable} -m pip install platformio-tinyml\n")
        env.Exit(1)  # noqa: F821

attach(env)  # noqa: F821
