"""Text features: the one tokenizer definition, its TF (Transform) form and its Python form.

A text feature is a ``string`` column with the steps ``tokenize`` then ``vocabulary``::

    {name: text, type: string, steps: [{tokenize: {max_tokens: 100}}, {vocabulary: {top_k: 5000}}]}

Tokenization (exactly reproducible in TF's RE2, Python's ``re`` and JavaScript, see
web/src/text.js and ondevice/text.py):

1. lower-case ASCII only: A-Z -> a-z; every other character (non-ASCII included) unchanged;
2. split on runs of SEPARATORS, an explicitly spelled ASCII class of whitespace and punctuation
   (``\\s`` / ``\\w`` are not used: their meaning differs between RE2, Python and JS);
3. drop empty tokens, keep the first ``max_tokens``, pad with PADDING ("") to ``max_tokens``.

Separators and the lower-cased letters are ASCII, and in UTF-8 every byte of a non-ASCII
character is >= 0x80, so RE2 on bytes and Python / JS on characters split at the same places.

The vocabulary is a tf.Transform analyzer on the train split's tokens (``top_k`` most frequent,
``frequency_threshold``); ids are ``1 + vocabulary index``, ``1 + len(vocabulary)`` for an
unseen token (one OOV bucket) and 0 for padding (the Embedding's ``mask_zero``). The output kind
is SEQUENCE: int64 ids [batch, max_tokens].

Why tf.strings and not tensorflow-text: a SavedModel whose graph holds tensorflow-text ops needs
that custom-op library loaded (``import tensorflow_text``) in every process that loads it: TF
Serving (a custom build), TFMA's and Transform's Beam workers, the InfraValidator, any client
loading the model. tf.strings (lower, regex_replace, split) are core TF ops every TF runtime has.

TensorFlow is imported lazily so config validation stays light.
"""

from __future__ import annotations

import re
from typing import Any

# The separator class: \t \n \v \f \r, space, and the ASCII punctuation ranges
# ! to / (0x21-0x2F), : to @ (0x3A-0x40), [ to ` (0x5B-0x60), { to ~ (0x7B-0x7E).
SEPARATORS = "[\\t\\n\\x0b\\x0c\\r !-/:-@\\[-`{-~]+"
PADDING = ""
LOWERCASE = "ascii"  # A-Z -> a-z only
PADDING_ID = 0  # ids of real tokens start at 1
_SEPARATORS = re.compile(SEPARATORS)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

DEFAULT_SEQUENCE = {"embedding_dim": 32, "lstm_units": 32, "bidirectional": False}


# ------------------------------------------------------------------ Python form
def tokenize(text: str, max_tokens: int) -> list[str]:
    """The tokens of ``text``, padded with "" to ``max_tokens`` (the reference tokenizer)."""
    tokens = [t for t in _SEPARATORS.split(text.translate(_ASCII_LOWER)) if t]
    tokens = tokens[:max_tokens]
    return tokens + [PADDING] * (max_tokens - len(tokens))


def ids(tokens: list[str], keys: list[str]) -> list[int]:
    """Token ids from a vocabulary (its keys in order): 0 padding, 1 + index, 1 + len(keys) OOV."""
    lookup = {k: i + 1 for i, k in enumerate(keys)}
    return [PADDING_ID if t == PADDING else lookup.get(t, len(keys) + 1) for t in tokens]


def is_text(steps: Any) -> bool:
    """Whether a feature's steps (config pairs, or the spec's step dicts) tokenize."""
    return any((s[0] if isinstance(s, (tuple, list)) else s.get("op")) == "tokenize" for s in steps)


def vocabulary_problems(args: dict) -> list[str]:
    """What a vocabulary on tokens does not allow (config validation)."""
    problems = []
    if args.get("encoding", "index") != "index":
        problems.append("a token vocabulary gives ids (encoding: index); one_hot does not apply to text")
    if args.get("oov_buckets", 1) != 1:
        problems.append("a token vocabulary has one OOV id (oov_buckets: 1): more buckets need FarmHash, "
                        "which the on-device models have no built-in op for")
    return problems


# ---------------------------------------------------------------------- TF form
class Tokens:
    """Tokenized text inside preprocessing_fn: ragged (for the vocabulary analyzer) and padded."""

    def __init__(self, ragged: Any, dense: Any):
        self.ragged, self.dense = ragged, dense


def tf_tokenize(text: Any, max_tokens: int) -> Tokens:
    """Dense string [batch] -> Tokens (dense: [batch, max_tokens], padded with "")."""
    import tensorflow as tf

    lowered = tf.strings.lower(tf.reshape(text, [-1]))  # encoding "": ASCII only
    spaced = tf.strings.regex_replace(lowered, SEPARATORS, " ")
    pieces = tf.strings.split(spaced, sep=" ")
    ragged = tf.ragged.boolean_mask(pieces, tf.strings.length(pieces) > 0)[:, :max_tokens]
    dense = ragged.to_tensor(default_value=PADDING, shape=[None, max_tokens])
    return Tokens(ragged, dense)


def tf_vocabulary(tokens: Tokens, name: str, top_k: int, frequency_threshold: int = 0, **_: Any) -> Any:
    """Token ids [batch, max_tokens] int64 with the train vocabulary (file ``vocab_<name>``)."""
    import tensorflow as tf
    import tensorflow_transform as tft

    path = tft.vocabulary(tokens.ragged.flat_values, top_k=top_k, frequency_threshold=frequency_threshold or None,
                          vocab_filename=f"vocab_{name}")
    index = tft.apply_vocabulary(tokens.dense, path, num_oov_buckets=1)
    return tf.where(tf.equal(tokens.dense, PADDING), tf.zeros_like(index), index + 1)


def apply_step(col: Any, step: str, args: dict, name: str) -> Any:
    """feature_steps.apply_steps' hook for ``tokenize`` and a vocabulary on tokens."""
    if step == "tokenize":
        return tf_tokenize(col, args["max_tokens"])
    return tf_vocabulary(col, name, **args)


# ----------------------------------------------------------------- Keras model
def sequence_hp(hp: dict) -> dict:
    return {**DEFAULT_SEQUENCE, **(hp.get("sequence") or {})}


def sequence_input(out: Any, hp: dict, keras: Any) -> tuple[Any, Any]:
    """(Input, encoded part) for a SEQUENCE output: Embedding(mask_zero) + LSTM (optionally
    bidirectional). ``unroll=True``: over the fixed ``max_tokens`` the LSTM is plain matmuls,
    which TFLite converts to built-in ops (the loop form with a mask needs TensorList ops, which
    only Flex has) and TF.js runs without control flow."""
    seq = sequence_hp(hp)
    inp = keras.Input(shape=(out.length,), dtype="int64", name=out.name)
    x = keras.layers.Embedding(out.size, seq["embedding_dim"], mask_zero=True, name=f"{out.name}_embedding")(inp)
    lstm = keras.layers.LSTM(seq["lstm_units"], unroll=True, name=f"{out.name}_lstm")
    x = keras.layers.Bidirectional(lstm, name=f"{out.name}_bilstm")(x) if seq["bidirectional"] else lstm(x)
    return inp, x
