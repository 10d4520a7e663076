"""PlatformIO integration: offline core setup (offline.py) and, from other modules, the extra-script."""
