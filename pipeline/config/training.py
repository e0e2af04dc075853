"""The ``model`` and ``training`` sections (text: text.py, images: image.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.config import model, text
from pipeline.config.errors import Reader


@dataclass(frozen=True)
class ModelConfig:
    hidden_units: tuple[int, ...] = (64, 32)
    embedding_dim: int = 8
    dropout: float = 0.1
    learning_rate: float = 0.001
    batch_size: int = 128
    sequence: dict[str, Any] | None = None  # text features' Embedding + LSTM (text.py)
    conv: dict[str, Any] | None = None  # image models: {filters, kernel_size, pool_size} (model.py Conv)


@dataclass(frozen=True)
class TrainingConfig:
    train_steps: int = 1000
    eval_steps: int = 100
    epochs: int = 5
    early_stopping_patience: int = 2
    augmentation: dict[str, Any] | None = None  # image models: train batches only (model.py Augmentation)


def parse_model(m: model.Model | None) -> ModelConfig:
    """Keys, types and bounds are the pydantic model's (model.py); this only builds the dataclass."""
    if m is None:
        return ModelConfig()
    return ModelConfig(hidden_units=tuple(m.hidden_units), embedding_dim=m.embedding_dim, dropout=float(m.dropout),
                       learning_rate=float(m.learning_rate), batch_size=m.batch_size,
                       sequence=text.parse_sequence(m.sequence) if m.sequence else None,
                       conv=m.conv.model_dump() if m.conv else None)


def parse_training(top: Reader, t: model.Training | None) -> TrainingConfig:
    if t is None:
        return TrainingConfig()
    if t.train_steps < t.epochs:
        raise top.child("training").fail("must be >= epochs (steps are divided among epochs)", "train_steps")
    return TrainingConfig(train_steps=t.train_steps, eval_steps=t.eval_steps, epochs=t.epochs,
                          early_stopping_patience=t.early_stopping_patience,
                          augmentation=t.augmentation.model_dump() if t.augmentation else None)
