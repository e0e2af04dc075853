"""Text features without a pipeline: the one tokenizer definition gives the same tokens in TF
(what Transform runs), Python and JS; the config language's text keys are validated with
messages that name the key; the model builder makes an LSTM that TFLite converts to built-in ops."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import yaml

from features import feature_steps, text
from ondevice import text as ondevice_text
from pipeline.config import ConfigError, load_config
from tests.conftest import ROOT

SPAM_CONFIG = ROOT / "pipeline" / "configs" / "spam" / "pipeline.yaml"
# Where the three regex engines and lower-casing rules could disagree: \v and \f (not in JS's
# \s-free class by accident), non-ASCII letters and their case (É stays É, ß stays ß), non-ASCII
# whitespace (U+00A0, U+2003: not separators), ASCII control characters outside the class (\x01,
# \x7f: kept inside tokens), every ASCII punctuation character, a surrogate pair (emoji), runs of
# separators at both ends, an empty text, and more tokens than max_tokens.
TRICKY = [
    "Hello, WORLD!! It's 10:30 -- e-mail me@EXAMPLE.com?",
    "\tleading\x0bvertical\x0cform\rcarriage\nnew   trailing \n",
    "ÉCOLE Straße naïve CAFÉ déjà-vu ΑΒΓ Ωmega",
    "no\u00a0break\u2003em space\u3000ideographic",
    "ctrl\x01char del\x7fchar",
    "".join(chr(c) for c in range(0x21, 0x7F)),
    "emoji 😀 inside😀word",
    "",
    "   ...   ",
    " ".join(f"w{i}" for i in range(40)),
]
MAX_TOKENS = 12


def _tf_tokens(texts: list[str], max_tokens: int) -> list[list[str]]:
    import tensorflow as tf

    dense = text.tf_tokenize(tf.constant(texts), max_tokens).dense.numpy()
    return [[t.decode("utf-8") for t in row] for row in dense]


def test_python_tokenizer_follows_the_definition():
    # Lower-casing is ASCII only, separators are the explicit class, padding to max_tokens.
    assert text.tokenize("Hello, WORLD!! It's", 6) == ["hello", "world", "it", "s", "", ""]
    assert text.tokenize("ÉCOLE Straße", 3) == ["École", "straße", ""]
    assert text.tokenize("a\u00a0b c", 3) == ["a\u00a0b", "c", ""]  # U+00A0 is not a separator
    assert text.tokenize("x " * 20, 4) == ["x"] * 4
    assert text.tokenize("", 2) == ["", ""]


def test_tf_tokenizer_equals_python_reference_on_tricky_text():
    # Transform's tf.strings form (RE2 on UTF-8 bytes) gives the Python reference's tokens.
    assert _tf_tokens(TRICKY, MAX_TOKENS) == [text.tokenize(t, MAX_TOKENS) for t in TRICKY]


def test_js_tokenizer_equals_python_reference_on_tricky_text(tmp_path):
    # web/src/text.js (what the web page runs) gives the Python reference's tokens and ids.
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    step = ondevice_text.tokenize_step({"max_tokens": MAX_TOKENS})
    keys = ["hello", "world", "école", "straße", "w1"]
    vocabulary = {"op": "vocabulary", "keys": keys}
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"tokenize": step, "vocabulary": vocabulary, "texts": TRICKY}))
    proc = subprocess.run([node, str(ROOT / "web" / "test" / "tokenize.js"), str(path)], capture_output=True,
                          text=True, timeout=60, cwd=ROOT / "web")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    expected = [text.tokenize(t, MAX_TOKENS) for t in TRICKY]
    assert out["tokens"] == expected
    assert out["ids"] == [text.ids(t, keys) for t in expected]


def test_ids_reserve_zero_for_padding_and_one_oov_id():
    assert text.ids(["world", "hello", "unseen", ""], ["hello", "world"]) == [2, 1, 3, 0]


def test_text_feature_outputs_a_sequence_of_ids():
    f = feature_steps.FeatureDef("text", "string", (("tokenize", {"max_tokens": 50}),
                                                    ("vocabulary", {"top_k": 100})))
    (out,) = f.outputs()
    assert out == feature_steps.OutputSpec("text_xf", feature_steps.SEQUENCE, 102, (50,)) and out.length == 50
    assert feature_steps.check_steps("string", list(f.steps)) == []


def _spam(tmp_path, mutate):
    cfg = yaml.safe_load(SPAM_CONFIG.read_text())
    cfg["data"]["csv_dir"] = str(ROOT / "data" / "spam")
    mutate(cfg)
    path = tmp_path / "spam.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _steps(c, steps):
    c["features"][0]["steps"] = steps


BAD = {
    "tokens without a vocabulary": (lambda c: _steps(c, [{"tokenize": {"max_tokens": 10}}]),
                                    ["features[0] (text)", "must end in a vocabulary step"]),
    "tokenize a number": (lambda c: c["features"][0].update(type="float"),
                          ["features[0] (text)", "steps[0] (tokenize)", "expects a string column"]),
    "max_tokens missing": (lambda c: _steps(c, [{"tokenize": {}}, {"vocabulary": {"top_k": 5}}]),
                           ["features[0] (text)", "missing required argument 'max_tokens'"]),
    "max_tokens zero": (lambda c: _steps(c, [{"tokenize": {"max_tokens": 0}}, {"vocabulary": {"top_k": 5}}]),
                        ["features[0] (text)", "'max_tokens' must be > 0"]),
    "one-hot tokens": (lambda c: _steps(c, [{"tokenize": {"max_tokens": 5}},
                                            {"vocabulary": {"top_k": 5, "encoding": "one_hot"}}]),
                       ["features[0] (text)", "steps[1] (vocabulary)", "one_hot does not apply to text"]),
    "hashed OOV tokens": (lambda c: _steps(c, [{"tokenize": {"max_tokens": 5}},
                                               {"vocabulary": {"top_k": 5, "oov_buckets": 3}}]),
                          ["features[0] (text)", "oov_buckets: 1"]),
    "tokenize twice": (lambda c: _steps(c, [{"tokenize": {"max_tokens": 5}}, {"tokenize": {"max_tokens": 5}},
                                            {"vocabulary": {"top_k": 5}}]),
                       ["features[0] (text)", "steps[1] (tokenize)", "expects a string column"]),
    "sequence unknown key": (lambda c: c["model"]["sequence"].update(units=3),
                             ["model.sequence", "unknown key 'units'"]),
    "sequence bad units": (lambda c: c["model"]["sequence"].update(lstm_units=0),
                           ["model.sequence.lstm_units", "must be > 0"]),
    "sequence bidirectional not bool": (lambda c: c["model"]["sequence"].update(bidirectional="yes"),
                                        ["model.sequence.bidirectional", "must be bool"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_text_config_names_the_key(case, tmp_path):
    mutate, fragments = BAD[case]
    with pytest.raises(ConfigError) as err:
        load_config(_spam(tmp_path, mutate), check_data=False)
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)


def test_spam_config_loads_and_its_csv_scan_counts_every_email():
    # The config check reads data/spam/spam.csv with the CsvExampleGen reader: multi-line quoted
    # fields (e-mails with newlines, commas and quotes) are one row each: 6,046 e-mails.
    from csvio import reader

    cfg = load_config(SPAM_CONFIG)
    assert cfg.model.sequence == {"embedding_dim": 32, "lstm_units": 32, "bidirectional": True}
    assert cfg.trainer_custom_config()["model"]["sequence"]["bidirectional"] is True
    rows = list(reader.iter_dicts([str(ROOT / "data" / "spam" / "spam.csv")], cfg.csv_dialect))
    assert len(rows) == 6046
    assert sum(r["label"] == "spam" for r in rows) == 1896
    assert any("\n" in r["text"] and "," in r["text"] and '"' in r["text"] for r in rows)


def test_lstm_model_converts_to_tflite_builtin_ops(tmp_path):
    # build_model's Embedding(mask_zero) + bidirectional LSTM (unrolled) converts with
    # TFLITE_BUILTINS only and LiteRT answers as Keras on padded sequences.
    import tensorflow as tf

    from features import task
    from model import training
    from ondevice import tflite

    out = feature_steps.OutputSpec("text_xf", feature_steps.SEQUENCE, 30, (8,))
    hp = {"hidden_units": [4], "embedding_dim": 2, "learning_rate": 0.01,
          "sequence": {"embedding_dim": 4, "lstm_units": 4, "bidirectional": True}}
    head = task.head(task.Label("y", "y", task.BINARY, positive_class="1"), 2)
    model = training.build_model([out], hp, head)
    module = tf.Module()
    module.model = model
    module.serve = tf.function(lambda ids: {"p": module.model({"text_xf": ids})},
                               input_signature=[tf.TensorSpec([None, 8], tf.int64, name="ids")])
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.serve})
    content = tflite.convert(str(tmp_path / "sm"), "float32")
    assert not [op for op in tflite.op_names(content) if "FLEX" in op.upper() or "CUSTOM" in op.upper()]
    ids = np.array([[3, 5, 7, 0, 0, 0, 0, 0], [29, 1, 2, 3, 4, 5, 6, 7]], np.int64)
    (got,) = tflite.interpreter(content).get_signature_runner("serving_default")(ids=ids).values()
    np.testing.assert_allclose(got, model({"text_xf": ids}).numpy(), atol=1e-5)
