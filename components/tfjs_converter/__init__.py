"""TF.js conversion of the pipeline's models (TFJSConverter) and their web deployment."""

from components.tfjs_converter.component import TFJSConverter

__all__ = ["TFJSConverter"]
