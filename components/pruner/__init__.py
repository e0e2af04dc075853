"""Pruner: magnitude pruning of a trained model to a target sparsity (tensorflow-model-optimization)."""

from components.pruner.component import Pruner

__all__ = ["Pruner"]
