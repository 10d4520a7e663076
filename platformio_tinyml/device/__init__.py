"""Device layer: a PlatformIO board manifest in, a ``DeviceProfile`` out.

This is the bottom layer; it imports nothing else from the package but
``errors``. Past it, every layer sees the board only as a ``DeviceProfile``.
"""

from .profile import DeviceProfile, profile_from_manifest
from .search import list_boards, load_profile

__all__ = ["DeviceProfile", "list_boards", "load_profile", "profile_from_manifest"]
