"""TFLite flatbuffer import."""
from .reader import load_tflite

__all__ = ["load_tflite"]
