"""QuantizationAwareTrainer: int8 quantization-aware fine-tuning (tensorflow-model-optimization)."""

from components.quantization.component import QuantizationAwareTrainer

__all__ = ["QuantizationAwareTrainer"]
