"""ModelCardGenerator's executor on small real artifacts: TFDV statistics, a TFMA evaluation computed
by TFMA itself (predictions in the examples, no model), a PushedModel whose version folder exists."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.proto import config_pb2
from tfx.types import standard_artifacts

from components.feature_selector.component import FeatureScores
from components.model_card_generator import executor
from components.model_card_generator.component import ModelCard

PARAMS = {"pipeline": "cards", "label": "tips", "task": "binary_classification", "target": "serving",
          "model_name": "trained", "description": "Predicts whether a taxi trip's tip is over 20%.",
          "timestamp_column": "ts"}


def _frame(n: int, seed: int) -> pd.DataFrame:
    """Group 'a': predictions follow the label; group 'b': they are noise (the weakest slice)."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    group = np.where(np.arange(n) % 3 == 0, "b", "a")
    pred = np.where(group == "a", 0.2 + 0.6 * label + rng.normal(0, 0.15, n), rng.uniform(0, 1, n))
    return pd.DataFrame({"tips": label, "pred": np.clip(pred, 0, 1), "group": group,
                         "ts": 1_600_000_000 + rng.integers(0, 86_400 * 30, n)})


def _statistics(tmp: Path, splits: dict[str, pd.DataFrame]) -> standard_artifacts.ExampleStatistics:
    stats = standard_artifacts.ExampleStatistics()
    stats.uri = str(tmp / "statistics")
    for split, df in splits.items():
        folder = Path(stats.uri) / f"Split-{split}"
        folder.mkdir(parents=True)
        (folder / "FeatureStats.pb").write_bytes(tfdv.generate_statistics_from_dataframe(df).SerializeToString())
    return stats


def _evaluation(tmp: Path, df: pd.DataFrame) -> standard_artifacts.ModelEvaluation:
    """A real TFMA run over examples that carry their prediction (TFMA needs no model for that)."""
    data = tmp / "eval.tfrecord"
    with tf.io.TFRecordWriter(str(data)) as writer:
        for row in df.itertuples():
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                "tips": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(row.tips)])),
                "pred": tf.train.Feature(float_list=tf.train.FloatList(value=[float(row.pred)])),
                "group": tf.train.Feature(bytes_list=tf.train.BytesList(value=[row.group.encode()])),
            })).SerializeToString())
    threshold = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(lower_bound={"value": 0.6}))
    config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="tips", prediction_key="pred")],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="AUC", config='"name": "auc"', per_slice_thresholds=[
                config_pb2.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)]),
            tfma.MetricConfig(class_name="BinaryAccuracy", config='"name": "accuracy"')],
            example_weights=config_pb2.ExampleWeightOptions(unweighted=True))],
        options=config_pb2.Options(include_default_metrics={"value": False}),
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=["group"])])
    evaluation = standard_artifacts.ModelEvaluation()
    evaluation.uri = str(tmp / "evaluation")
    tfma.run_model_analysis(eval_config=config, data_location=str(data), output_path=evaluation.uri,
                            file_format="tfrecords")
    return evaluation


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("card")
    train, evaluated = _frame(600, 1), _frame(300, 2)
    blessing = standard_artifacts.ModelBlessing()
    blessing.set_int_custom_property("blessed", 1)
    examples = standard_artifacts.Examples()
    examples.set_string_custom_property("input_fingerprint", "split:single_split,num_files:1,total_bytes:4242,"
                                                             "xor_checksum:1795000000,sum_checksum:1795000000")
    scores = FeatureScores()
    scores.uri = str(tmp / "scores")
    Path(scores.uri).mkdir()
    (Path(scores.uri) / "scores.json").write_text(json.dumps([
        {"feature": "fare", "selected": True}, {"feature": "pickup_community_area", "selected": False}]))
    return {"tmp": tmp, "train": train, "eval": evaluated, "blessing": blessing, "examples": examples,
            "scores": scores, "statistics": _statistics(tmp, {"train": train, "eval": evaluated}),
            "evaluation": _evaluation(tmp, evaluated)}


def _pushed(tmp: Path, target: str, pushed: bool = True, metadata: dict | None = None
            ) -> standard_artifacts.PushedModel:
    model = standard_artifacts.PushedModel()
    model.uri = str(tmp / f"pushed_model_{target}")
    Path(model.uri).mkdir()
    version = tmp / "pushed" / target / "1795000000"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"model")
    if metadata is not None:
        (Path(model.uri) / "metadata.json").write_text(json.dumps(metadata))
    model.set_int_custom_property("pushed", int(pushed))
    if pushed:
        model.set_string_custom_property("pushed_destination", str(version))
        model.set_string_custom_property("pushed_version", version.name)
    return model


def _card(tmp: Path, name: str) -> ModelCard:
    card = ModelCard()
    card.uri = str(tmp / name)
    return card


def _run(a: dict, pushed: standard_artifacts.PushedModel, name: str, **params) -> ModelCard:
    card = _card(a["tmp"], name)
    executor.run(pushed, card, {**PARAMS, **params}, model_blessing=a["blessing"], evaluation=a["evaluation"],
                 statistics=a["statistics"], examples=a["examples"], feature_scores=a["scores"])
    return card


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_card_beside_pushed_version_carries_the_runs_real_numbers(artifacts):
    # Checks: the card lands in the pushed version folder, and its numbers are the artifacts' (TFMA's
    # overall and per-slice AUC read back independently, TFDV's row counts and time range, the
    # thresholds of the eval config, the input fingerprint, the weakest slice, the dropped feature).
    a = artifacts
    pushed = _pushed(a["tmp"], "serving")
    card = _run(a, pushed, "card_serving")
    version = Path(pushed.get_string_custom_property("pushed_destination"))
    assert {CARD for CARD in (executor.CARD_MD, executor.CARD_HTML)} <= {p.name for p in version.iterdir()}
    assert not [p for p in version.iterdir() if ".tmp-" in p.name]
    assert card.get_int_custom_property("written") == 1
    facts = json.loads((Path(card.uri) / "card.json").read_text())

    result = tfma.load_eval_result(a["evaluation"].uri)
    by_slice = {k: m[""][""] for k, m in result.slicing_metrics}
    auc = by_slice[()]["auc"]["doubleValue"]
    auc_b = by_slice[(("group", "b"),)]["auc"]["doubleValue"]
    assert facts["evaluation"]["overall"]["auc"] == pytest.approx(auc)
    assert 0.6 < auc < 0.99 and auc_b < 0.65  # the data makes group b the weak one
    assert facts["evaluation"]["weakest"][0] == {"slice": "group=b", "auc": pytest.approx(auc_b)}
    assert facts["evaluation"]["thresholds"] == [
        {"metric": "auc", "kind": "value", "op": ">=", "bound": 0.6, "applied": True}]
    assert facts["evaluation"]["validation_ok"] is True and facts["blessed"] is True
    assert facts["data"]["splits"]["train"]["rows"] == len(a["train"])
    assert facts["data"]["splits"]["eval"]["rows"] == len(a["eval"])
    assert facts["data"]["splits"]["eval"]["time_range"] == [a["eval"].ts.min(), a["eval"].ts.max()]
    assert facts["version"] == "1795000000" and facts["pushed_destination"] == str(version)
    assert facts["stack"]["tfx"] == importlib_metadata.version("tfx")
    assert facts["stack"]["tensorflow-model-analysis"] == tfma.__version__

    md = (version / executor.CARD_MD).read_text()
    assert PARAMS["description"] in md and "Label `tips`" in md
    assert f"| auc | {auc:.4g} |" in md
    assert re.search(rf"\| group=b \| [^|]+ \| {auc_b:.4g} \|", md)  # columns: accuracy, auc
    assert "| auc | value | >= 0.6 | yes |" in md
    assert "total_bytes:4242" in md
    assert "not selected by feature selection: pickup_community_area" in md
    first = datetime.fromtimestamp(int(a["eval"].ts.min()), tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    assert f"| eval | {len(a['eval'])} | {first} .. " in md
    # The artifact's copy is the same card.
    assert (Path(card.uri) / executor.CARD_MD).read_text() == md


def _tfma_metrics(output_path: str) -> dict[tuple, dict[str, float]]:
    """TFMA's own numbers, straight from the MetricsForSlice records it wrote (not the card code's
    reader, not load_eval_result): {((column, value), ...): {metric: value}}; () is overall."""
    out: dict[tuple, dict[str, float]] = {}
    for record in tfma.load_metrics(output_path):
        key = tuple((s.column, s.bytes_value.decode() if s.HasField("bytes_value") else
                     s.int64_value if s.HasField("int64_value") else s.float_value)
                    for s in record.slice_key.single_slice_keys)
        out[key] = {kv.key.name: kv.value.double_value.value for kv in record.metric_keys_and_values
                    if kv.value.HasField("double_value")}
    return out


def test_html_card_is_self_contained(artifacts):
    # Checks: nothing in the HTML card loads from elsewhere (no src/href, no external script or CSS),
    # and both cards of the push (HTML and Markdown) show TFMA's own AUC and accuracy, overall and for
    # the weak slice, read from the metrics file TFMA wrote (independently of the card code).
    a = artifacts
    pushed = _pushed(a["tmp"], "serving_selfcontained")
    _run(a, pushed, "card_html")
    version = Path(pushed.get_string_custom_property("pushed_destination"))
    page = (version / executor.CARD_HTML).read_text()
    md = (version / executor.CARD_MD).read_text()
    parser = _Tags()
    parser.feed(page)
    assert {t for t, _ in parser.tags} >= {"html", "table", "style", "h2"}
    assert not [(t, attrs) for t, attrs in parser.tags if "src" in attrs or "href" in attrs or t == "link"]
    assert "@import" not in page and "url(" not in page
    auc = tfma.load_eval_result(a["evaluation"].uri).slicing_metrics[0]
    facts = json.loads(re.search(r'<script type="application/json" id="card">(.*?)</script>', page, re.S)
                       .group(1).replace("&quot;", '"').replace("&#x27;", "'").replace("&lt;", "<")
                       .replace("&gt;", ">").replace("&amp;", "&"))
    assert f"<td>{facts['evaluation']['overall']['auc']:.4g}</td>" in page and auc

    tfma_metrics = _tfma_metrics(a["evaluation"].uri)
    overall, weak = tfma_metrics[()], tfma_metrics[(("group", "b"),)]
    assert 0.6 < overall["auc"] < 0.99 and weak["auc"] < 0.65  # the fixture's data: group b is the weak one
    assert facts["evaluation"]["overall"]["auc"] == pytest.approx(overall["auc"])
    # The "Metrics overall" table row and the "Metrics per slice" row (columns: accuracy, auc).
    assert f"<tr><td>auc</td><td>{overall['auc']:.4g}</td></tr>" in page
    assert f"<tr><td>accuracy</td><td>{overall['accuracy']:.4g}</td></tr>" in page
    assert f"<tr><td>group=b</td><td>{weak['accuracy']:.4g}</td><td>{weak['auc']:.4g}</td></tr>" in page
    assert f"| auc | {overall['auc']:.4g} |" in md
    assert f"| accuracy | {overall['accuracy']:.4g} |" in md
    assert f"| group=b | {weak['accuracy']:.4g} | {weak['auc']:.4g} |" in md


def test_no_card_for_a_model_that_was_not_pushed(artifacts):
    # Checks: a Pusher that did not push (not blessed) gets no card anywhere: the version folder a
    # push would have used stays as it was and the artifact says written=0.
    a = artifacts
    pushed = _pushed(a["tmp"], "serving_rejected", pushed=False)
    card = _run(a, pushed, "card_rejected")
    version = a["tmp"] / "pushed" / "serving_rejected" / "1795000000"
    assert sorted(p.name for p in version.iterdir()) == ["saved_model.pb"]
    assert card.get_int_custom_property("written") == 0
    assert not Path(card.uri).exists() or not any(Path(card.uri).iterdir())


def test_mobile_card_lists_on_device_differences(artifacts):
    # Checks: a TFLite push's card shows each variant's parity numbers from the converter's metadata.json.
    a = artifacts
    variants = {"float32": {"bytes": 12345, "max_abs_diff": 3.2e-7, "agreement": 1.0, "blessed": True},
                "int8": {"bytes": 4321, "max_abs_diff": 0.0213, "agreement": 0.987, "blessed": True}}
    pushed = _pushed(a["tmp"], "mobile", metadata={"variants": variants})
    _run(a, pushed, "card_mobile", target="mobile")
    md = (Path(pushed.get_string_custom_property("pushed_destination")) / executor.CARD_MD).read_text()
    assert "On-device differences vs the SavedModel (TFLite" in md
    assert "| int8 | 4321 | 0.0213 | - | 0.987 | True |" in md
    assert "| float32 | 12345 | 3.2e-07 | - | 1 | True |" in md


def test_a_failed_write_leaves_no_partial_card(tmp_path, monkeypatch):
    # Checks: the card is written aside and renamed: when the rename fails (as a crash before it
    # would), no model_card.md exists, partial or whole, and an existing card stays intact.
    (tmp_path / executor.CARD_MD).write_text("old card\n")
    executor.write_aside(tmp_path, executor.CARD_HTML, "<html>new</html>")
    assert (tmp_path / executor.CARD_HTML).read_text() == "<html>new</html>"

    def crash(src, dst):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        executor.write_aside(tmp_path, executor.CARD_MD, "new card, " * 10_000)
    assert (tmp_path / executor.CARD_MD).read_text() == "old card\n"
    # The staging file is hidden (a dot name, never an all-digit version folder).
    assert all(p.name.startswith(".") for p in tmp_path.iterdir() if ".tmp-" in p.name)
