"""The config's text keys: ``model.sequence`` (Embedding + LSTM of tokenized text features).

    model:
      sequence: {embedding_dim: 32, lstm_units: 32, bidirectional: true}

Defaults (features/text.py DEFAULT_SEQUENCE) apply when a text feature is configured without it.
"""

from __future__ import annotations

from typing import Any

from features.text import DEFAULT_SEQUENCE
from pipeline.config import model


def parse_sequence(s: model.Sequence) -> dict[str, Any]:
    """Keys, types and bounds: model.Sequence (its defaults are DEFAULT_SEQUENCE's, asserted in tests)."""
    return {k: getattr(s, k) for k in DEFAULT_SEQUENCE}
