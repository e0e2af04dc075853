"""Images end to end: the shipped digits config (pipeline/configs/digits) on a subset of the real
PNGs in data/digits, one real pipeline run (`python -m pipeline run`: ImageExampleGen to Pusher,
TFLite and TF.js included), shared by every check here. The checks compare each form of the
model with the SavedModel on real test-split images: Transform's output with the on-device
reference, the model server (REST b64 and gRPC), TFLite float32 / int8 in LiteRT, TF.js in Node
and the pushed demo page in Chromium (uploading the PNG files).
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import ROOT, newest_version
from tests.serving_fixtures import ServerProcess, http

pytestmark = [pytest.mark.e2e, pytest.mark.runs("digits")]

CONFIG = ROOT / "pipeline" / "configs" / "digits" / "pipeline.yaml"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def run(pipeline_runs) -> dict:
    """The loaded config, the run's stdout and its wall time, once the run has finished."""
    result = pipeline_runs.wait("digits")
    cfg, stdout, seconds = result.cfg, result.stdout, result.seconds
    print(f"\ndigits pipeline run: {seconds:.0f} s")
    return {"cfg": cfg, "stdout": stdout, "seconds": seconds}


def _artifact(cfg, component: str, output: str) -> Path:
    return newest_version(cfg.pipeline_root / component / output)


@pytest.fixture(scope="module")
def held_out(run) -> dict:
    """The first 120 test-split images as the converters read them: pixels (what apps feed),
    the encoded bytes (what the server takes), the spec, and the SavedModel's own probabilities."""
    from ondevice import data
    from ondevice.image import encoded_key

    cfg = run["cfg"]
    web = newest_version(cfg.pushed_dir("web"))
    spec = json.loads((web / "preprocessing_spec.json").read_text())
    examples = _artifact(cfg, "DataCleaner", "cleaned_examples")
    rows = data.raw_rows(str(examples), "test", 120, spec)
    model = newest_version(cfg.pushed_dir("serving"))
    loaded = tf.saved_model.load(str(model))
    reference = loaded.signatures["serving_raw"](image=tf.constant(list(rows[encoded_key("image")])))
    return {"spec": spec, "rows": rows, "encoded": list(rows[encoded_key("image")]), "model_dir": model,
            "probabilities": reference["probabilities"].numpy(), "classes": reference["classes"].numpy(),
            "examples": examples}


def test_run_completes_blessed_pushed_and_above_the_accuracy_floor(run):
    # Checks: every component COMPLETE, the model blessed and pushed to serving, mobile and web;
    # TFMA's accuracy (Evaluator, eval and test splits) at or above the config's lower bound.
    from pipeline.pipeline_def import create_pipeline
    from pipeline.summary import summarize

    cfg = run["cfg"]
    ids = [c.id for c in create_pipeline(cfg).components]
    assert ids[0] == "ImageExampleGen"
    summary = summarize(cfg, ids)
    assert {n.node_id: n.state for n in summary.nodes} == dict.fromkeys(ids, "COMPLETE")
    assert summary.blessed is True and summary.pushed is True
    for target in ("serving", "mobile", "web"):
        assert any(newest_version(cfg.pushed_dir(target)).iterdir()), target
    (floor,) = [t.lower_bound for t in cfg.evaluation.thresholds if t.metric == "accuracy"]
    for split in ("eval", "test"):
        accuracy = summary.metrics[split]["accuracy"]
        print(f"TFMA accuracy {split}: {accuracy:.4f} (floor {floor})")
        assert floor <= accuracy <= 1.0, (split, accuracy)
    assert sorted(summary.classes) == [str(d) for d in range(10)]  # Transform's order: by frequency


def test_statistics_see_image_sizes_and_the_schema_pins_them(run):
    # Checks: StatisticsGen saw the height/width/channels ImageExampleGen wrote (28 x 28 x 1 for
    # every file), and ExampleValidator found no anomaly against the reviewed schema's domains.
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    cfg = run["cfg"]
    stats = tfdv.load_stats_binary(str(_artifact(cfg, "StatisticsGen", "statistics") / "Split-train"
                                       / "FeatureStats.pb"))
    numeric = {f.path.step[0]: f.num_stats for f in stats.datasets[0].features if f.HasField("num_stats")}
    assert (numeric["height"].min, numeric["height"].max, numeric["width"].max, numeric["channels"].max) == (
        28, 28, 28, 1)
    anomalies = _artifact(cfg, "ExampleValidator", "anomalies")
    for split in ("train", "eval", "test"):
        found = anomalies_pb2.Anomalies.FromString((anomalies / f"Split-{split}" / "SchemaDiff.pb").read_bytes())
        assert not found.anomaly_info, (split, found.anomaly_info)


def test_wrong_size_image_is_an_anomaly_of_the_digits_schema(tmp_path):
    # Checks: a 32 x 32 RGB PNG among 28 x 28 digits violates the shipped schema's int_domain
    # (height, width, channels): what ExampleValidator reports and AnomalyGate stops a run on.
    import tensorflow_data_validation as tfdv
    from PIL import Image

    from components.image_example_gen.executor import to_example

    files = sorted((ROOT / "data" / "digits" / "3").glob("*.png"))[:5]
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8), "RGB").save(big)
    records = tmp_path / "examples.tfrecord"
    with tf.io.TFRecordWriter(str(records)) as writer:
        for f, label in [*((str(f), "3") for f in files), (str(big), "3")]:
            writer.write(to_example((f, label)).SerializeToString())
    stats = tfdv.generate_statistics_from_tfrecord(str(records), pipeline_options=None)
    schema = tfdv.load_schema_text(str(CONFIG.parent / "schema.pbtxt"))
    anomalies = tfdv.validate_statistics(stats, schema)
    assert set(anomalies.anomaly_info) == {"height", "width", "channels"}, anomalies.anomaly_info


def test_transform_output_equals_the_on_device_reference(run, held_out):
    # Checks: Transform's graph (decode, scale, per-channel standardize with its fitted train
    # mean/std) on test images equals the NumPy reference of the pushed preprocessing spec fed
    # the decoded pixels an app feeds; and the spec's constants are Transform's own.
    import tensorflow_transform as tft

    from features.fitted import fitted_values
    from ondevice import reference

    cfg = run["cfg"]
    tft_output = tft.TFTransformOutput(str(_artifact(cfg, "Transform", "transform_graph")))
    raw_spec = tft_output.raw_feature_spec()
    examples = [tf.train.Example(features=tf.train.Features(feature={
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[e])),
        "label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"0"])),
        **{k: tf.train.Feature(int64_list=tf.train.Int64List(value=[28 if k != "channels" else 1]))
           for k in ("height", "width", "channels")}})).SerializeToString() for e in held_out["encoded"]]
    parsed = tf.io.parse_example(tf.constant(examples), raw_spec)
    transformed = tft_output.transform_features_layer()(parsed)["image_xf"].numpy()
    spec = held_out["spec"]
    expected = reference.transform(spec, held_out["rows"])["image_xf"]
    assert transformed.shape == expected.shape == (len(examples), 28, 28, 1)
    np.testing.assert_allclose(transformed, expected, atol=1e-5)
    (image,) = [f for f in spec["features"] if f["type"] == "image"]
    fitted = fitted_values(tft_output.transform_savedmodel_dir)
    std_step = next(s for s in image["steps"] if s["op"] == "per_channel_standardize")
    np.testing.assert_allclose(std_step["mean"], fitted[("image", 1, "mean")].reshape(-1), rtol=1e-6)
    assert 0.05 < std_step["mean"][0] < 0.3 and 0.2 < std_step["std"][0] < 0.45  # MNIST: ~0.13, ~0.31
    assert spec["inputs"] == [{"name": "image", "dtype": "float32", "shape": [28, 28, 1], "pixels": True,
                               "missing": "none (an image is required)"}]


def test_model_server_answers_b64_images_like_the_saved_model(run, held_out, tmp_path):
    # Checks: the pushed model served by our server takes encoded PNG bytes: REST predict on
    # serving_raw with {"b64": ...} instances, REST classify with tf.Examples whose image is
    # {"b64": ...}, and gRPC Predict with a string tensor, all answer the SavedModel's probabilities.
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    model_dir = held_out["model_dir"]
    encoded = held_out["encoded"][:16]
    expected = held_out["probabilities"][:16]
    server = ServerProcess(["--model_name=digits", f"--model_base_path={model_dir.parent}"], tmp_path / "server.log")
    try:
        b64 = [{"b64": base64.b64encode(e).decode()} for e in encoded]
        status, body = http(server.rest, "POST", "/v1/models/digits:predict",
                            {"signature_name": "serving_raw", "instances": b64})
        assert status == 200, body
        got = np.array([p["probabilities"] for p in body["predictions"]])
        np.testing.assert_allclose(got, expected, atol=1e-6)
        status, body = http(server.rest, "POST", "/v1/models/digits:classify",
                            {"examples": [{"image": b} for b in b64]})
        assert status == 200, body
        scores = np.array([[s for _, s in r] for r in body["results"]])
        np.testing.assert_allclose(scores, expected, atol=1e-6)
        assert [c for c, _ in body["results"][0]] == held_out["classes"][0].astype(str).tolist()
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(server.grpc))
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = "digits", "serving_raw"
        request.inputs["image"].CopyFrom(tf.make_tensor_proto(encoded, dtype=tf.string))
        response = stub.Predict(request, timeout=60)
        np.testing.assert_allclose(tf.make_ndarray(response.outputs["probabilities"]), expected, atol=1e-6)
    finally:
        server.stop()


def test_tflite_float32_and_int8_answer_like_the_saved_model_with_builtin_ops(run, held_out):
    # Checks: the pushed .tflite files run in LiteRT (ai-edge-litert) on decoded pixels of test
    # images: float32 within 1e-5 of the SavedModel (bytes in), int8 the same class on >= 99% of
    # the test split (the converter's own measurement, and again here); built-in ops only.
    from ondevice import tflite as lite

    cfg = run["cfg"]
    mobile = newest_version(cfg.pushed_dir("mobile"))
    metadata = json.loads((mobile / "metadata.json").read_text())
    pixels = held_out["rows"]["image"]
    expected = held_out["probabilities"]
    for variant in ("float32", "int8"):
        measured = metadata["variants"][variant]
        print(f"TFLite {variant}: {measured['bytes']:,} B, max |diff| {measured['max_abs_diff']:.2e}, "
              f"agreement {measured['agreement']:.4f} on {measured['validation_examples']} test images")
        assert measured["blessed"], measured
        content = (mobile / f"model_{variant}.tflite").read_bytes()
        ops = lite.op_names(content)
        assert "CONV_2D" in ops and not [o for o in ops if "FLEX" in o.upper() or o == "CUSTOM"], ops
        got = lite.predict(content, {"image": pixels})
        agreement = float(np.mean(got.argmax(axis=1) == expected.argmax(axis=1)))
        if variant == "float32":
            assert measured["max_abs_diff"] <= 1e-5
            np.testing.assert_allclose(got, expected, atol=1e-5)
        else:
            assert measured["agreement"] >= 0.99 and agreement >= 0.99, (measured["agreement"], agreement)
            assert "CONV_2D" in measured["quantized_ops"] and "FULLY_CONNECTED" in measured["quantized_ops"]
            assert measured["bytes"] < 0.4 * metadata["variants"]["float32"]["bytes"]


def test_tfjs_in_node_answers_like_the_saved_model(run, held_out):
    # Checks: the pushed TF.js graph model, run by web/src/predict.js (model_runtime.js) in Node on
    # decoded pixels of test images, gives the SavedModel's probabilities (bytes in) within 1e-5.
    from components.tfjs_converter import runtime

    web = newest_version(run["cfg"].pushed_dir("web"))
    out = runtime.node_predict(str(web), {"image": held_out["rows"]["image"]}, ["image"])
    got = np.array(out["predictions"]).reshape(held_out["probabilities"].shape)
    np.testing.assert_allclose(got, held_out["probabilities"], atol=1e-5)
    metadata = json.loads((web / "metadata.json").read_text())
    assert metadata["validation"]["blessed"] and metadata["validation"]["agreement"] == 1.0


def test_demo_page_in_chromium_classifies_uploaded_test_pngs_like_the_saved_model(run, held_out, tmp_path):
    # Checks: the pushed page in headless Chromium, given real test-split PNG files through its
    # file input (the browser decodes them), shows the SavedModel's class probabilities; and a
    # mouse stroke on its drawing pad gets an answer.
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    import functools
    import http.server
    import threading

    from components.tfjs_converter import runtime

    web = newest_version(run["cfg"].pushed_dir("web"))
    files = []
    for k, data in enumerate(held_out["encoded"][:10]):
        path = tmp_path / f"test_{k}.png"
        path.write_bytes(data)
        files.append(str(path))
    (tmp_path / "files.json").write_text(json.dumps(files))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(web)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        proc = subprocess.run(
            [runtime.node(), str(runtime.WEB_DIR / "test" / "browser_image_predict.js"), "--url",
             f"http://127.0.0.1:{server.server_port}/index.html", "--files", str(tmp_path / "files.json"),
             "--out", str(tmp_path / "out.json"), "--chromium", str(CHROMIUM), "--screenshot",
             str(tmp_path / "page.png")], capture_output=True, text=True, timeout=300, cwd=str(runtime.WEB_DIR),
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["errors"] == [] and out["backend"] == "cpu", out
    assert not [c for c in out["console"] if c.startswith(("error", "pageerror"))], out["console"]
    assert "Model loaded" in out["subtitle"]
    got = np.array(out["predictions"], dtype=np.float64)
    expected = held_out["probabilities"][:10]
    assert got.shape == (10, 10)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()
    # A stroke drawn with the mouse on the pad is classified too (ten probabilities summing to 1).
    drawn = np.array(out["drawn"])
    assert drawn.shape == (10,) and abs(drawn.sum() - 1.0) < 1e-4, out["drawn"]


def test_augmentation_is_not_in_the_served_model(run, held_out):
    # Checks: the exported model has no random (augmentation) layer and answers the same image
    # identically twice: augmentation ran on train batches only.
    loaded = tf.saved_model.load(str(held_out["model_dir"]))
    names = [v.name for v in loaded.variables]
    assert not [n for n in names if "random" in n.lower()], names
    fn = loaded.signatures["serving_raw"]
    image = tf.constant(held_out["encoded"][:4])
    np.testing.assert_array_equal(fn(image=image)["probabilities"].numpy(), fn(image=image)["probabilities"].numpy())
    assert "augmentation" in json.dumps(run["cfg"].trainer_custom_config()["training"])
