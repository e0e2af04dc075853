"""The config's text keys: ``model.sequence`` (Embedding + LSTM of tokenized text features).

    model:
      sequence: {embedding_dim: 32, lstm_units: 32, bidirectional: true}

Defaults (features/text.py DEFAULT_SEQUENCE) apply when a text feature is configured without it.
"""

from __future__ import annotations

from typing import Any

from features.text import DEFAULT_SEQUENCE


def parse_sequence(m: Any) -> dict[str, Any]:
    """``m``: the model section's reader (pipeline.config._Reader); errors name model.sequence.<key>."""
    s = m.child("sequence")
    s.mapping(set(DEFAULT_SEQUENCE))

    def positive(v: Any) -> str | None:
        return None if v > 0 else "must be > 0"

    return {"embedding_dim": s.get("embedding_dim", (int,), DEFAULT_SEQUENCE["embedding_dim"], positive),
            "lstm_units": s.get("lstm_units", (int,), DEFAULT_SEQUENCE["lstm_units"], positive),
            "bidirectional": s.get("bidirectional", (bool,), DEFAULT_SEQUENCE["bidirectional"])}
