"""Model cards beside every pushed model, and the webhook's blessed event, from one tiny real pipeline
run (1,500 taxi rows, TINY_TRAINING, LIGHT_FEATURES, a float32 TFLite target, a local HTTP receiver as
the config's webhook). The card generator itself is tested fast in
components/model_card_generator/executor_test.py; the webhook in tests/test_notify.py."""

from __future__ import annotations

import json
import re
from importlib import metadata as importlib_metadata

import pytest

from components.model_card_generator.executor import CARD_HTML, CARD_MD
from tests.conftest import newest_version
from tests.runs import TINY_DESCRIPTION, TINY_ROWS

pytestmark = [pytest.mark.e2e, pytest.mark.runs("tiny")]


@pytest.fixture(scope="module")
def run(pipeline_runs):
    """The shared tiny run (tests/runs.py ``tiny``): its config, stdout, summary.json and the webhook
    posts it made, all as they were before the family's second (rejected) run."""
    first = pipeline_runs.wait("tiny")
    return {"cfg": first.cfg, "stdout": first.stdout, "seconds": first.seconds, "summary": first.facts["summary"],
            "posts": first.facts["posts"]}


def test_every_pushed_model_has_a_card_with_the_runs_numbers(run):
    # Checks: serving and mobile pushes each carry model_card.md/.html in their version folder, and the
    # card's numbers are the run's: metrics equal summary.json's (read from MLMD by pipeline/summary.py),
    # rows add up to the CSV's, the fingerprint names the CSV's byte size, slices and threshold listed.
    cfg, summary = run["cfg"], run["summary"]
    assert summary["blessed"] is True and summary["pushed"] is True, run["stdout"][-2000:]
    csv = cfg.data_dir / "data.csv"
    for target in ("serving", "mobile"):
        version = newest_version(cfg.pushed_dir(target))
        assert {CARD_MD, CARD_HTML} <= {p.name for p in version.iterdir()}, target
        assert not [p for p in version.iterdir() if ".tmp-" in p.name]
        md = (version / CARD_MD).read_text()
        assert f"# Model card: tiny / {target} version {version.name}" in md
        assert TINY_DESCRIPTION in md and "Label `big_tipper`, task binary_classification" in md
        for name in ("auc", "binary_accuracy"):
            assert f"| {name} | {summary['metrics']['eval'][name]:.4g} |" in md, (target, name)
        rows = [int(n) for n in re.findall(r"^\| (?:train|eval|test) \| (\d+) \|", md, re.M)]
        assert sum(rows) == TINY_ROWS and len(rows) == 3, rows
        assert f"total_bytes:{csv.stat().st_size}" in md
        assert re.search(r"^\| payment_type=Cash \|", md, re.M), "no per-slice row"
        assert "| auc | value | >= 0.5 | yes |" in md
        assert "Weakest slices by auc: " in md
        assert f"| tfx | {importlib_metadata.version('tfx')} |" in md
        html_card = (version / CARD_HTML).read_text()
        assert "<script src" not in html_card and "<link" not in html_card
        assert f"<td>{summary['metrics']['eval']['auc']:.4g}</td>" in html_card
    mobile = newest_version(cfg.pushed_dir("mobile"))
    parity = json.loads((mobile / "metadata.json").read_text())["variants"]["float32"]
    md = (mobile / CARD_MD).read_text()
    assert "On-device differences vs the SavedModel (TFLite" in md
    assert f"| float32 | {parity['bytes']} | {parity['max_abs_diff']:.4g} |" in md


def test_blessed_push_calls_the_webhook_once_with_the_run(run):
    # Checks: the passing run POSTed exactly one event, "blessed", whose pushed versions are the
    # folders on disk, whose metrics are summary.json's, and whose run_id is the Pusher execution's
    # pipeline run in ML Metadata.
    from pipeline.summary import open_store

    cfg, summary, posts = run["cfg"], run["summary"], run["posts"]
    assert [p["body"]["event"] for p in posts] == ["blessed"], posts
    body = posts[0]["body"]
    assert body["pipeline"] == "tiny"
    assert body["pushed"] == {"serving": newest_version(cfg.pushed_dir("serving")).name,
                              "mobile": newest_version(cfg.pushed_dir("mobile")).name}
    assert body["metrics"] == summary["metrics"]
    assert body["report"].startswith(str(cfg.output_dir / "report"))
    store = open_store(cfg)
    node = store.get_context_by_type_and_name("node", "tiny.Pusher")
    pusher = min(store.get_executions_by_context(node.id), key=lambda e: e.id)  # the first run's Pusher
    run_type = store.get_context_type("pipeline_run").id
    (run_context,) = [c for c in store.get_contexts_by_execution(pusher.id) if c.type_id == run_type]
    assert body["run_id"] == run_context.name
    assert "warning: webhook" not in run["stdout"]
