"""C-identifier naming of models (no heavy imports: used on the fast build path)."""

from __future__ import annotations

from pathlib import Path

from .compilers.ctext import c_identifier


def default_name(model_path: Path) -> str:
    """A C identifier from a model file name: 'kws_ref_model.tflite' -> 'kws_ref_model'
    (lower case; a keyword or reserved name is changed: 'int.tflite' -> 'int_m')."""
    return c_identifier(Path(model_path).stem.lower(), fallback="model")
