"""Steps the model readers (one subpackage per format) share."""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError


def read_model_bytes(path: Path) -> bytes:
    """The contents of model file ``path``; a ModelError naming it when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ModelError(f"cannot read model file ({e.strerror})", where=str(path),
                         hint="Check the path in custom_tinyml_model / the command line") from None
