"""Text end to end: the spam config (pipeline/configs/spam/pipeline.yaml) on a subset of
data/spam/spam.csv, one run of the real pipeline (CsvExampleGen to Pusher, TFLite and TF.js
included) shared by every check below.

What would break each check: a tokenizer that differs between Transform and the Python / JS
references (ids compared on every test row); a served model that does not tokenize inside
(it is asked raw text over REST and gRPC); an LSTM that TFLite cannot run with built-in ops or
that answers differently on device; a demo page that cannot take typed text; a model that
learnt nothing (TFMA's accuracy and AUC against the config's floor).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from pipeline.pipeline_def import create_pipeline
from pipeline.summary import latest_output_uri, open_store, summarize
from tests.conftest import ROOT, newest_version
from tests.runs import SPAM_MAX_TOKENS
from tests.serving_fixtures import ServerProcess, http

pytestmark = [pytest.mark.e2e, pytest.mark.runs("spam")]

CONFIG = ROOT / "pipeline" / "configs" / "spam" / "pipeline.yaml"


@pytest.fixture(scope="module")
def run(pipeline_runs):
    """(config, stdout, seconds) of the one pipeline run every check here reads."""
    result = pipeline_runs.wait("spam")
    cfg, stdout, seconds = result.cfg, result.stdout, result.seconds
    print(f"\nspam pipeline run: {seconds:.0f} s\n" + "\n".join(
        line for line in stdout.splitlines() if " finished in " in line))
    return cfg, stdout, seconds


def _pushed(cfg, target: str) -> Path:
    return newest_version(cfg.pushed_dir(target))


def _examples(cfg) -> str:
    return latest_output_uri(open_store(cfg), cfg.name, "DataCleaner", "Examples")


def _test_split(cfg) -> tuple[list[bytes], dict, dict]:
    """Every serialized test example, the on-device rows of them (raw text + reference tokens) and the spec."""
    from ondevice import data

    spec = json.loads((_pushed(cfg, "mobile") / "preprocessing_spec.json").read_text())
    files = sorted(str(f) for f in (Path(_examples(cfg)) / "Split-test").glob("*"))
    serialized = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    rows = data.raw_rows(_examples(cfg), "test", len(serialized), spec)
    assert len(rows["text"]) == len(serialized) > 100
    return serialized, rows, spec


def test_every_component_completes_is_blessed_and_pushed(run):
    cfg, _, seconds = run
    print(f"\nspam pipeline run (CsvExampleGen to Pusher): {seconds:.0f} s")
    ids = [c.id for c in create_pipeline(cfg).components]
    summary = summarize(cfg, ids)
    assert {n.node_id: n.state for n in summary.nodes} == dict.fromkeys(ids, "COMPLETE")
    assert summary.blessed is True and summary.pushed is True
    for target in ("serving", "mobile", "web"):
        assert any(_pushed(cfg, target).iterdir()), target


def test_accuracy_and_auc_above_the_configs_floor(run):
    # TFMA's metrics of the trained LSTM on eval and test clear the config's lower bounds
    # (a model that always answers "ham" has accuracy ~0.69 and AUC 0.5).
    cfg, _, _ = run
    metrics = summarize(cfg, ["Evaluator"]).metrics
    floors = {t.metric: t.lower_bound for t in cfg.evaluation.thresholds}
    assert floors["auc"] >= 0.9 and floors["binary_accuracy"] >= 0.85
    assert list(metrics) == ["eval"]
    for split in metrics:
        assert metrics[split]["auc"] >= floors["auc"], (split, metrics[split])
        assert metrics[split]["binary_accuracy"] >= floors["binary_accuracy"], (split, metrics[split])
    shown = {s: {k: round(m[k], 4) for k in ("auc", "binary_accuracy")} for s, m in metrics.items()}
    print(f"\nTFMA: {json.dumps(shown)}")


def test_python_and_js_tokenizers_equal_transform_on_every_test_row(run, tmp_path):
    # Transform's ids (the served model's transform_features signature: the Transform graph) ==
    # the Python reference (tokens -> the spec's vocabulary) == web/src/text.js, row for row.
    from ondevice import reference

    cfg, _, _ = run
    serialized, rows, spec = _test_split(cfg)
    model = tf.saved_model.load(str(_pushed(cfg, "serving")))
    fn = model.signatures["transform_features"]
    transform_ids = np.concatenate([fn(examples=tf.constant(serialized[i:i + 256]))["text_xf"].numpy()
                                    for i in range(0, len(serialized), 256)])
    feature = next(f for f in spec["features"] if f["name"] == "text")
    python_ids = reference.transform_feature(feature, rows)["text_xf"]
    assert transform_ids.shape == python_ids.shape == (len(serialized), SPAM_MAX_TOKENS)
    np.testing.assert_array_equal(python_ids, transform_ids)
    # Not a vacuous match: real tokens, some padding, some out-of-vocabulary ids.
    vocab_size = len(next(s for s in feature["steps"] if s["op"] == "vocabulary")["keys"])
    assert (transform_ids > 0).mean() > 0.5 and (transform_ids == 0).any() and (transform_ids == vocab_size + 1).any()

    node = shutil.which("node")
    assert node, "node is needed for the JS tokenizer"
    path = tmp_path / "texts.json"
    path.write_text(json.dumps({"tokenize": next(s for s in feature["steps"] if s["op"] == "tokenize"),
                                "vocabulary": next(s for s in feature["steps"] if s["op"] == "vocabulary"),
                                "texts": [str(t) for t in rows["text"]]}))
    proc = subprocess.run([node, str(ROOT / "web" / "test" / "tokenize.js"), str(path)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT / "web")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["tokens"] == rows["text_tokens"].tolist()
    np.testing.assert_array_equal(np.array(out["ids"]), transform_ids)


def test_served_model_answers_raw_text_over_rest_and_grpc(run, tmp_path):
    # The model server is given the e-mail text itself (tf.Examples with one "text" string, and
    # serving_raw's one text tensor): the Transform layer inside tokenizes; both APIs answer
    # as the SavedModel does.
    import grpc
    from tensorflow_serving.apis import classification_pb2, prediction_service_pb2_grpc

    cfg, _, _ = run
    pushed = _pushed(cfg, "serving")
    model = tf.saved_model.load(str(pushed))
    _, rows, _ = _test_split(cfg)
    texts = [str(t) for t in rows["text"][:20]]
    examples = [tf.train.Example(features=tf.train.Features(feature={"text": tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[t.encode()]))})).SerializeToString() for t in texts]
    local = model.signatures["serving_default"](examples=tf.constant(examples))
    raw = model.signatures["serving_raw"](text=tf.constant(texts))
    np.testing.assert_allclose(raw["probabilities"].numpy(), local["probabilities"].numpy(), rtol=1e-6)
    expected = local["scores"].numpy()
    server = ServerProcess([f"--model_name={cfg.name}", f"--model_base_path={pushed.parent}"],
                           tmp_path / "server.log")
    try:
        status, body = http(server.rest, "POST", f"/v1/models/{cfg.name}:classify",
                            {"examples": [{"text": t} for t in texts]})
        assert status == 200, body
        got = np.array([[score for _, score in result] for result in body["results"]])
        np.testing.assert_allclose(got, expected, rtol=1e-5)
        status, body = http(server.rest, "POST", f"/v1/models/{cfg.name}:predict",
                            {"signature_name": "serving_raw", "instances": [{"text": t} for t in texts]})
        assert status == 200, body
        np.testing.assert_allclose(np.array([p["probabilities"] for p in body["predictions"]]).reshape(-1),
                                   raw["probabilities"].numpy().reshape(-1), rtol=1e-5)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(server.grpc))
        req = classification_pb2.ClassificationRequest()
        req.model_spec.name = cfg.name
        req.input.example_list.examples.extend(tf.train.Example.FromString(e) for e in examples)
        result = stub.Classify(req, timeout=60).result
        np.testing.assert_allclose([[c.score for c in r.classes] for r in result.classifications], expected,
                                   rtol=1e-5)
    finally:
        server.stop()


def test_tflite_and_tfjs_answer_like_the_saved_model(run):
    # The converters' own validation on the whole eval split (tokens from the Python reference
    # for TFLite, from web/src/text.js for TF.js) met the parity rules, and the shipped .tflite
    # uses built-in ops only (no Flex, no custom op).
    from ondevice import tflite

    cfg, _, _ = run
    mobile_dir, web_dir = _pushed(cfg, "mobile"), _pushed(cfg, "web")
    mobile = json.loads((mobile_dir / "metadata.json").read_text())
    web = json.loads((web_dir / "metadata.json").read_text())
    float32 = mobile["variants"]["float32"]
    assert float32["blessed"] and float32["agreement"] == 1.0 and float32["max_abs_diff"] <= 1e-5, float32
    assert float32["validation_examples"] >= 250
    quantized = mobile["variants"]["dynamic_range"]
    assert quantized["blessed"] and quantized["agreement"] >= 0.99, quantized
    assert web["validation"]["max_abs_diff"] <= 1e-5 and web["validation"]["agreement"] == 1.0, web["validation"]
    spec = json.loads((mobile_dir / "preprocessing_spec.json").read_text())
    assert [i["name"] for i in spec["inputs"]] == ["text_tokens"]
    assert spec["inputs"][0]["shape"] == [SPAM_MAX_TOKENS]
    ops = tflite.op_names((mobile_dir / "model_float32.tflite").read_bytes())
    assert "HASHTABLE_FIND" in ops and not [o for o in ops if "FLEX" in o.upper() or "CUSTOM" in o.upper()], ops
    print(f"\nTFLite float32 max|diff| {float32['max_abs_diff']:.2e}, dynamic_range {quantized['max_abs_diff']:.2e} "
          f"agreement {quantized['agreement']:.4f}; TF.js max|diff| {web['validation']['max_abs_diff']:.2e}")


def test_web_page_answers_typed_emails_like_the_saved_model_in_chromium(run):
    # The pushed page: real test e-mails typed into its textarea, tokenized by text.js in the
    # browser, answered by the graph model; compared with the SavedModel on the same text.
    from components.tfjs_converter import executor, runtime
    from ondevice import data

    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip(f"{chromium} is not installed")
    cfg, _, _ = run
    web = _pushed(cfg, "web")
    spec = json.loads((web / "preprocessing_spec.json").read_text())
    metadata = json.loads((web / "metadata.json").read_text())
    rows = data.raw_rows(_examples(cfg), "test", 6, spec)
    assert all(len(t) > 50 for t in rows["text"])  # real e-mails, not empty fields
    reference = data.reference_predictions(metadata["source_model"], rows, spec)
    out = runtime.browser_predict(str(web), rows, data.raw_columns(spec), str(chromium))
    assert out["errors"] == [] and not [c for c in out["console"] if c.startswith(("error", "pageerror"))], out
    predicted = np.array(out["predictions"], dtype=np.float64)
    assert predicted.shape == (6, 1)
    assert not executor.judge(executor.parity(spec["task"], reference, predicted), metadata["thresholds"])
