"""ModelCardGenerator: model_card.md / model_card.html beside every pushed model version."""

from components.model_card_generator.component import ModelCard, ModelCardGenerator

__all__ = ["ModelCard", "ModelCardGenerator"]
