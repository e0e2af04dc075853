"""The run report outputs/<name>/report/index.html (pipeline/report/): fast tests of the HTML
builders on small inputs, the Chromium driver's network detector, and one tiny pipeline run
(then a second one with other training steps) whose page is opened in headless Chromium and
read back against ML Metadata and the artifacts."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
from pathlib import Path

import pytest

from pipeline.report import html as h
from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = ROOT / "tests" / "report_page.cjs"
def open_in_chromium(page: Path, tmp: Path) -> dict:
    """What headless Chromium shows of ``page`` (tests/report_page.cjs), with a kept screenshot."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (`make system-deps` installs Debian's chromium as root)")
    out, shot = tmp / "seen.json", tmp / "report.png"
    proc = subprocess.run(["node", str(DRIVER), "--page", str(page), "--out", str(out), "--screenshot", str(shot),
                           "--chromium", str(CHROMIUM)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"screenshot: {shot}")
    return {**json.loads(out.read_text()), "screenshot": shot}


# ------------------------------------------------------------------------------ fast tests --

def test_binary_confusion_reproduces_the_metrics_it_came_from():
    # Checks the algebra: the matrix rebuilt from (n, accuracy, precision, recall) is the one they were
    # computed from; a constant or transposed matrix would not match.
    tn, fp, fn, tp = 111, 9, 12, 15
    n = tn + fp + fn + tp
    m = h.binary_confusion(n, (tp + tn) / n, tp / (tp + fp), tp / (tp + fn))
    assert m == [[tn, fp], [fn, tp]]
    assert h.binary_confusion(10, 0.5, 0.0, 0.0) is None  # nothing predicted positive: undetermined


def test_lineage_layers_follow_the_edges():
    # Checks the layered layout: every edge points rightwards (a producer left of what it produced),
    # and every node is drawn once; a layout ignoring the edges puts b and c in the first column.
    nodes = {"a": {"label": "Examples", "kind": "artifact"}, "x": {"label": "Gen", "kind": "execution"},
             "b": {"label": "Schema", "kind": "artifact"}, "y": {"label": "Trainer", "kind": "execution"},
             "c": {"label": "Model", "kind": "artifact"}}
    edges = [("x", "a"), ("a", "y"), ("b", "y"), ("y", "c")]
    svg = h.lineage_svg(nodes, edges)
    xs = {m.group(1): float(m.group(2)) for m in re.finditer(r'data-node="(\w)"><title>[^<]*</title><rect x="([\d.]+)"',
                                                             svg)}
    assert sorted(xs) == sorted(nodes)
    for a, b in edges:
        assert xs[a] < xs[b], (a, b, xs)
    assert svg.count('class="execution"') == 2 and svg.count('class="artifact"') == 3


def test_threshold_table_shows_the_failed_metric_and_the_rejection():
    # Checks that a failing threshold is shown as failed with its value, and the decision as REJECTED;
    # a builder that always printed "passed" fails here.
    checks = [{"metric": "auc", "lower_bound": 0.7, "max_decrease": 0.01, "value": 0.65, "baseline_diff": -0.02,
               "passed": False},
              {"metric": "binary_accuracy", "lower_bound": 0.6, "value": 0.81, "passed": True}]
    page = h.thresholds_html(checks, validation_ok=False)
    assert 'data-check="threshold/auc/passed">failed<' in page
    assert 'data-check="threshold/binary_accuracy/passed">passed<' in page
    assert 'data-check="threshold/auc/value">0.6500<' in page
    assert "REJECTED" in page and "BLESSED" not in page


def test_statistics_and_changes_show_their_numbers():
    # Checks that the builders print the given numbers under their data-check keys (the keys the
    # Chromium test reads back): a wrong split, feature or delta shows up as a different value.
    stats = {"train": {"rows": 1213, "features": {"fare": {"type": "float", "missing": 3, "mean": 11.96,
                                                            "histogram": [5, 10, 0]},
                                                   "company": {"type": "string", "missing": 0, "unique": 19,
                                                               "histogram": [7, 2]}}},
             "eval": {"rows": 148, "features": {"fare": {"type": "float", "missing": 1, "mean": 16.4,
                                                          "histogram": [1]}}}}
    page = h.statistics_html(stats)
    assert 'data-check="rows/train">1,213<' in page and 'data-check="rows/eval">148<' in page
    assert 'data-check="missing/train/fare">3<' in page and 'data-check="missing/eval/fare">1<' in page
    assert 'data-check="unique/train/company">19<' in page
    assert page.count("<rect") == 6  # 3 + 2 + 1 histogram bars
    changes = h.changes_html({"run": "r1", "metrics": {"auc": (0.90, 0.93)},
                              "schema": {"added": ["tips"], "removed": [], "changed": {}},
                              "config": {"training.train_steps": (40, 60)}})
    assert 'data-check="changes/metric/auc">0.0300<' in changes
    assert "added: tips" in changes and "training.train_steps" in changes and ">60<" in changes


def test_histogram_bars_are_proportional():
    # Checks the inline histogram: the tallest bucket fills the height, a half bucket half of it.
    svg = h.histogram_svg([10, 5, 0], width=30, height=20)
    heights = [float(x) for x in re.findall(r'height="([\d.]+)" fill', svg)]
    assert heights == [20.0, 10.0, 0.0]


def test_page_is_self_contained_and_escapes_names():
    # Checks the page shell: a CSP that forbids every fetch, no http(s) reference, names escaped (a
    # feature called "<script>" is text, not markup), and empty sections left out of page and nav.
    doc = h.page("Run report: <x>", "desc", [("data", "Data", h.anomalies_html({"eval": [("<script>", "bad")]})),
                                             ("model", "Model", "")])
    assert "default-src 'none'" in doc
    assert not re.search(r"(src|href)=\"https?:", doc)
    assert "<script>" not in doc and "&lt;script&gt;" in doc
    assert 'id="data"' in doc and 'id="model"' not in doc and 'href="#model"' not in doc


def test_schema_diff_names_added_removed_and_retyped_features():
    # Checks the schema comparison on three kinds of change at once.
    from pipeline.report.page import schema_diff

    diff = schema_diff({"a": "FLOAT", "b": "INT", "c": "BYTES"}, {"a": "FLOAT", "b": "FLOAT", "d": "INT"})
    assert diff == {"added": ["d"], "removed": ["c"], "changed": {"b": ("INT", "FLOAT")}}


def test_statistics_reader_counts_empty_values_as_missing(tmp_path):
    # Checks the reader on a real TFDV proto: a single-valued feature with 3 of 10 examples empty (TFDV:
    # num_missing 0, tot_num_values 7) is shown with 3 missing; a constant num_missing would show 0.
    from tensorflow_metadata.proto.v0 import statistics_pb2

    from pipeline.report.page import feature_statistics

    stats = statistics_pb2.DatasetFeatureStatisticsList()
    dataset = stats.datasets.add(num_examples=10)
    company = dataset.features.add(type=statistics_pb2.FeatureNameStatistics.STRING)
    company.path.step.append("company")
    company.string_stats.common_stats.num_non_missing = 10
    company.string_stats.common_stats.tot_num_values = 7
    company.string_stats.common_stats.max_num_values = 1
    company.string_stats.unique = 4
    fare = dataset.features.add(type=statistics_pb2.FeatureNameStatistics.FLOAT)
    fare.path.step.append("fare")
    fare.num_stats.common_stats.num_missing = 2
    fare.num_stats.common_stats.tot_num_values = 8
    fare.num_stats.common_stats.max_num_values = 1
    fare.num_stats.mean = 12.5
    (tmp_path / "Split-train").mkdir()
    (tmp_path / "Split-train" / "FeatureStats.pb").write_bytes(stats.SerializeToString())
    got = feature_statistics(str(tmp_path))["train"]
    assert got["rows"] == 10
    assert got["features"]["company"]["missing"] == 3 and got["features"]["company"]["unique"] == 4
    assert got["features"]["fare"]["missing"] == 2 and got["features"]["fare"]["mean"] == 12.5


def test_tuning_drift_and_deployment_builders_show_their_inputs(tmp_path):
    # Checks the sections the tiny e2e run does not produce (no Tuner, spans or on-device models), on
    # inputs in the exact shape their components write: TFX Tuner's tuner_results.json, DriftSkewGate's
    # report.json, TFLiteConverter's validation.json variants, InfraValidator and Pusher outcomes.
    from pipeline.report.page import tuner_trials

    (tmp_path / "tuner_results.json").write_text(json.dumps(
        [{"trial_id": "03", "score": 0.91, "learning_rate": 0.003, "hidden_units": 64},
         {"trial_id": "01", "score": 0.88, "learning_rate": 0.01, "hidden_units": 32}]))
    trials = tuner_trials(str(tmp_path))
    assert [t["trial_id"] for t in trials] == ["03", "01"]
    assert trials[0]["hyperparameters"] == {"learning_rate": 0.003, "hidden_units": 64}
    tuning = h.tuning_html({"learning_rate": 0.003}, trials)
    assert 'data-check="tuned/learning_rate">0.0030<' in tuning and "0.9100" in tuning and ">64<" in tuning

    drift = h.drift_html({"split": "train", "passed": False, "exceeded": ["drift: column 'fare': L-infinity 0.4 > 0.1"],
                          "comparisons": {"drift": {"baseline": "previous span", "compared": True, "note": "",
                                                    "features": {"fare": {"kind": "numeric", "metric": "jensen_shannon",
                                                                          "measured": 0.4, "threshold": 0.1,
                                                                          "exceeded": True}}},
                                          "skew": {"baseline": "training data", "compared": False,
                                                   "note": "no training data statistics given: nothing compared",
                                                   "features": {}}},
                          "skipped": []})
    assert 'data-check="drift/passed">failed<' in drift and 'data-check="drift/drift/fare">0.4000<' in drift
    assert "EXCEEDED" in drift and "nothing compared" in drift

    tflite = h.ondevice_html("TFLite", {"trained": {"float16": {"bytes": 52_100, "max_abs_diff": 3.1e-4,
                                                                "agreement": 0.995, "tfma": {"auc": 0.912},
                                                                "blessed": True}}}, "auc")
    assert 'data-check="TFLite/trained/float16/bytes">52,100<' in tflite
    assert 'data-check="TFLite/trained/float16/max_abs_diff">0.000310<' in tflite and "0.9120" in tflite
    pushes = h.pushes_html([("Pusher", True, "/o/pushed/serving/17"), ("Pusher_mobile", False, None)],
                           [("InfraValidator", False)])
    assert 'data-check="pushed/Pusher">/o/pushed/serving/17<' in pushes
    assert 'data-check="pushed/Pusher_mobile">—<' in pushes and 'data-check="infra/InfraValidator">failed<' in pushes


def test_chromium_driver_reports_a_network_request(tmp_path):
    # Checks the detector the e2e test relies on for "no network request": a page that loads an image
    # over http is reported (with its console error), so an empty list there means none was made.
    page = tmp_path / "index.html"
    page.write_text('<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/x.png"><section id="s">hi</section>'
                    "</body></html>")
    seen = open_in_chromium(page, tmp_path)
    assert seen["requests"] == ["http://127.0.0.1:9/x.png"], seen
    assert seen["sections"] == {"s": "hi"}


# ------------------------------------------------------------------------------ one real run --

@pytest.fixture(scope="module")
def report_run(pipeline_runs):
    """The shared tiny run and its second run on the same store (tests/runs.py tiny, tiny_second:
    more training steps and a bound it cannot pass; Transform and what precedes it cached). The
    first run's page was kept before the second run replaced it."""
    first, second = pipeline_runs.wait("tiny"), pipeline_runs.wait("tiny_second")
    return second.cfg, first.facts["page"], second.stdout


def _records(split_dir: Path) -> list:
    """The tf.Examples of one split (gzipped TFRecords), parsed without TensorFlow's reader."""
    import struct

    from tensorflow.core.example import example_pb2

    examples = []
    for path in sorted(split_dir.glob("*.gz")):
        data, i = gzip.decompress(path.read_bytes()), 0
        while i < len(data):
            (length,) = struct.unpack("<Q", data[i:i + 8])
            example = example_pb2.Example()
            example.ParseFromString(data[i + 12:i + 12 + length])
            examples.append(example)
            i += 12 + length + 4
    return examples


@pytest.mark.e2e
@pytest.mark.runs("tiny")
def test_report_page_shows_the_runs_real_numbers(report_run, tmp_path):
    # Checks every section against a source read independently of the page: row counts and missing
    # values counted in the Examples themselves, metrics and blessing from ML Metadata
    # (pipeline/lineage.py), the threshold decision from TFMA's validation result, cleaning and
    # feature scores from the components' files, the lineage drawing against the run's executions,
    # and the changes against the first run; in Chromium from file:// with no console error and no
    # request. A page showing the first run's numbers, or a constant, fails.
    import tensorflow_model_analysis as tfma

    from pipeline import lineage
    from pipeline.summary import latest_output_uri, open_store

    cfg, first_page, stdout = report_run
    page = cfg.output_dir / "report" / "index.html"
    assert f"report:  {page}" in stdout
    seen = open_in_chromium(page, tmp_path)
    assert seen["console"] == [] and seen["requests"] == [], (seen["console"], seen["requests"])
    assert all(i["ok"] for i in seen["images"]) and len(seen["images"]) >= 2, seen["images"]
    assert seen["screenshot"].stat().st_size > 50_000
    assert set(seen["sections"]) >= {"run", "data", "model", "deployment", "lineage", "changes"}
    checks = seen["checks"]

    def number(key: str) -> float:
        return float(checks[key].replace(",", ""))

    store = open_store(cfg)
    runs = lineage.runs(store, cfg.name)
    first, this = runs[0], runs[-1]
    assert len(runs) == 2 and first.blessed

    # data: rows and missing values per split, counted in CsvExampleGen's examples
    examples = Path(latest_output_uri(store, cfg.name, "CsvExampleGen", "Examples"))
    for split in ("train", "eval", "test"):
        records = _records(examples / f"Split-{split}")
        assert number(f"rows/{split}") == len(records)
        for feature in ("fare", "company", "pickup_census_tract"):
            missing = sum(1 for r in records if not _has_value(r, feature))
            assert number(f"missing/{split}/{feature}") == missing, (split, feature)
    cleaning = json.loads((Path(latest_output_uri(store, cfg.name, "DataCleaner", "CleaningReport"))
                           / "report.json").read_text())
    assert number("cleaning/train/out") == cleaning["totals"]["train"]["rows_out"]
    scores = json.loads((Path(latest_output_uri(store, cfg.name, "FeatureSelector", "FeatureScores"))
                         / "scores.json").read_text())
    for s in scores:
        assert abs(number(f"score/{s['feature']}") - s["mutual_information"]) < 5e-5

    # model: metrics, blessing and the threshold decision
    for metric in ("auc", "binary_accuracy", "precision", "recall"):
        assert abs(number(f"metric/eval/{metric}") - this.metrics[metric]) < 5e-5, metric
    assert checks["blessed"] == ("yes" if this.blessed else "no")
    evaluation = latest_output_uri(store, cfg.name, "Evaluator", "ModelEvaluation")
    ok = tfma.load_validation_result(evaluation).validation_ok
    assert ok == this.blessed and checks["decision"].startswith("BLESSED" if ok else "REJECTED")
    assert abs(number("threshold/auc/value") - this.metrics["auc"]) < 5e-5
    n = sum(number(f"confusion/{i}/{j}") for i in (0, 1) for j in (0, 1))
    assert n == this.metrics["example_count"]
    # The cells (rows: actual, columns: predicted) imply the precision and recall MLMD recorded; a
    # transposed or made-up matrix does not (tn is derived from the other three, so n alone cannot tell).
    tp, fp, fn = number("confusion/1/1"), number("confusion/0/1"), number("confusion/1/0")
    assert tp + fp > 0 and tp + fn > 0
    assert abs(tp / (tp + fp) - this.metrics["precision"]) < 2e-3, (tp, fp, this.metrics["precision"])
    assert abs(tp / (tp + fn) - this.metrics["recall"]) < 2e-3, (tp, fn, this.metrics["recall"])

    # deployment: what was pushed where
    summary = json.loads((cfg.output_dir / "report" / "summary.json").read_text())
    assert checks["pushed/Pusher"] == (summary["pushed_path"] if summary["pushed"] else "—")
    assert checks["infra/InfraValidator"] == "passed"

    # lineage: one box per execution of this run, named by its node
    _, executions, _ = lineage.run_graph(store, this.run_id)
    assert seen["lineage"]["executions"] == len(executions) == len(this.nodes)
    assert sorted(seen["lineage"]["labels"]) == sorted(this.nodes)
    # ... and those executions are this run's, not the first run's (both runs have the same nodes).
    drawn = {int(i) for i in re.findall(r'<g class="execution" data-node="e(\d+)"', page.read_text())}
    assert drawn == {e.id for e in executions}, (drawn, sorted(e.id for e in executions))
    assert drawn.isdisjoint(e.id for e in lineage.run_graph(store, first.run_id)[1])

    # since the last blessed run (the first): metric deltas and the training-steps change
    assert checks["changes/run"] == first.run_id
    assert abs(number("changes/metric/auc") - (this.metrics["auc"] - first.metrics["auc"])) < 1e-4
    assert "training.train_steps" in seen["sections"]["changes"]
    assert re.search(r"training\.train_steps\s+40\s+90", seen["sections"]["changes"])
    assert checks["changes/schema"] == "no change"

    # the first run's page: nothing blessed before it, so no changes section
    first_html = first_page.read_text()
    assert 'id="changes"' not in first_html and 'id="lineage"' in first_html


def _has_value(example, feature: str) -> bool:
    f = example.features.feature.get(feature)
    if f is None:
        return False
    kind = f.WhichOneof("kind")
    return kind is not None and len(getattr(f, kind).value) > 0
