"""C-identifier naming of models (no heavy imports: used on the fast build path)."""

from __future__ import annotations

import re
from pathlib import Path


def default_name(model_path: Path) -> str:
    """A C identifier from a model file name: 'kws_ref_model.tflite' -> 'kws_ref_model'."""
    stem = re.sub(r"[^A-Za-z0-9_]", "_", Path(model_path).stem).strip("_").lower() or "model"
    return stem if stem[0].isalpha() else "m_" + stem
