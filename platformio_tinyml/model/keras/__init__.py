"""Keras (``.keras``, ``.h5``) and SavedModel import via the TFLite converter.

TensorFlow is an optional extra (``pip install 'platformio-tinyml[keras]'``).
"""
from .converter import convert_keras, load_keras

__all__ = ["convert_keras", "load_keras"]
