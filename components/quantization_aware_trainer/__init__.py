"""QuantizationAwareTrainer: int8 quantization-aware fine-tuning (tensorflow-model-optimization)."""

from components.quantization_aware_trainer.component import QuantizationAwareTrainer

__all__ = ["QuantizationAwareTrainer"]
