"""PlatformIO integration: offline core setup (offline.py) and the extra-script front end (build.py)."""

from .build import attach

__all__ = ["attach"]
