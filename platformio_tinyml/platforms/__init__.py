"""Local PlatformIO development platforms (tinyml-qemu-arm, tinyml-simavr) and
the SCons tool their builders share (emuboard.py). Registered in a PlatformIO
core dir by platformio_tinyml.integrations.platformio.offline."""
