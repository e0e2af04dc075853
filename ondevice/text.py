"""Text features on device: the app tokenizes, the model looks the tokens up and runs the LSTM.

Tokenization (features/text.py) has no TFLite built-in op (regex split, ragged tensors), so the
preprocessing spec marks the ``tokenize`` step ``"on_device": "app"`` with the exact definition
(separator regex, ASCII lower-casing, ``max_tokens``, padding value), and the on-device model's
input for the feature is ``<name>_tokens``: strings [batch, max_tokens], what the tokenizer
returns. The vocabulary lookup runs inside the model with the constant-initialized string hash
table every built-in string vocabulary uses (builtin.vocabulary_tables): id = 1 + index,
1 + len(keys) for an unseen token, 0 for padding ("").

The reference tokenizers: ``features.text.tokenize`` (Python, used here) and web/src/text.js
(JS, used by the web runtime); both are tested equal to Transform's ids on the test split.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from features import text

TOKENS_SUFFIX = "_tokens"


def is_text(feature: dict[str, Any]) -> bool:
    return text.is_text(feature["steps"])


def tokens_input(feature: dict[str, Any]) -> str:
    return f"{feature['name']}{TOKENS_SUFFIX}"


def tokenize_step(args: dict) -> dict[str, Any]:
    """The spec's ``tokenize`` step: everything an app needs to reproduce Transform's tokens."""
    return {"op": "tokenize", "on_device": "app", "max_tokens": args["max_tokens"],
            "lowercase": text.LOWERCASE, "separators": text.SEPARATORS, "padding": text.PADDING,
            "rule": "replace A-Z by a-z (nothing else); split on runs of `separators` (a regex, the same in "
                    "RE2, Python and JavaScript); drop empty tokens; keep the first max_tokens; pad with "
                    "`padding` to max_tokens"}


def vocabulary_step(step: dict[str, Any]) -> dict[str, Any]:
    """A token vocabulary's spec step: ids shifted by one (0 = padding), one more id."""
    return {**step, "size": step["size"] + 1, "padding_id": text.PADDING_ID, "id_offset": 1,
            "ids": "1 + index in keys; 1 + len(keys) for an unseen token; 0 for padding"}


def text_inputs(inputs: list[dict[str, Any]], features: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The spec's inputs with every text feature taking ``<name>_tokens`` [max_tokens] strings
    instead of its raw column (kept if another feature reads it)."""
    texts = [f for f in features if is_text(f)]
    if not texts:
        return inputs
    text_columns = {f["source"]["column"] for f in texts}
    other = {c for f in features if not is_text(f)
             for c in (f["source"].get("ratio") or f["source"].get("cross") or [f["source"].get("column")])}
    out = [i for i in inputs if i.get("transformed") or i["name"] not in text_columns or i["name"] in other]
    for f in texts:
        step = next(s for s in f["steps"] if s["op"] == "tokenize")
        out.append({"name": tokens_input(f), "dtype": "string", "shape": [step["max_tokens"]],
                    "missing": text.PADDING, "tokens_of": f["source"]["column"], "feature": f["name"]})
    return out


def tokenize_column(values: np.ndarray, max_tokens: int) -> np.ndarray:
    """Object array [n] of texts -> object array [n, max_tokens] of tokens (the Python reference)."""
    out = np.empty((len(values), max_tokens), dtype=object)
    for i, v in enumerate(values):
        out[i] = text.tokenize(str(v), max_tokens)
    return out


def token_inputs(spec: dict[str, Any], rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The ``<name>_tokens`` inputs of ``rows`` (raw columns), tokenized by the reference."""
    out = {}
    for f in spec["features"]:
        if is_text(f):
            step = next(s for s in f["steps"] if s["op"] == "tokenize")
            out[tokens_input(f)] = tokenize_column(rows[f["source"]["column"]], step["max_tokens"])
    return out


def reference_feature(feature: dict[str, Any], rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Token ids [n, max_tokens] int64 from the raw text column (reference.transform_feature)."""
    step = next(s for s in feature["steps"] if s["op"] == "tokenize")
    keys = next(s for s in feature["steps"] if s["op"] == "vocabulary")["keys"]
    tokens = tokenize_column(rows[feature["source"]["column"]], step["max_tokens"])
    return {f"{feature['name']}_xf": np.array([text.ids(list(t), keys) for t in tokens], dtype=np.int64)}


def builtin_feature(feature: dict[str, Any], inputs: dict[str, Any], table: Any) -> dict[str, Any]:
    """Token strings [batch, max_tokens] -> ids (int32: TF.js has no int64), built-in ops only:
    HASHTABLE_FIND on the flattened tokens, ADD, EQUAL against "", SELECT."""
    import tensorflow as tf

    tokens = inputs[tokens_input(feature)]
    step = next(s for s in feature["steps"] if s["op"] == "tokenize")
    flat = tf.reshape(tokens, [-1])
    index = tf.cast(table.lookup(flat), tf.int32) + 1
    ids = tf.where(tf.equal(flat, text.PADDING), tf.zeros_like(index), index)
    return {f"{feature['name']}_xf": tf.reshape(ids, [-1, step["max_tokens"]])}
