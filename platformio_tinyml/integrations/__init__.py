"""Build-system front ends (PlatformIO, SCons) over one shared core (:mod:`.core`)."""
