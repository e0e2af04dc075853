"""TFLiteConverter: on-device models with Transform's preprocessing embedded in built-in ops."""

from components.tflite_converter.component import TFLiteConverter

__all__ = ["TFLiteConverter"]
