"""VariantComparison: one table comparing the trained model with its optimized variants."""

from components.variant_comparison.component import VariantComparison, VariantTable

__all__ = ["VariantComparison", "VariantTable"]
