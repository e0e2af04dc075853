"""`runs`, `lineage` and `compare` against real pipeline runs: a tiny pipeline run twice on one
output folder (the second with other training steps and a threshold it cannot pass), and a
MariaDB-backed run. Every expected value comes from somewhere other than the command under test:
the summary.json each run wrote, the CSV file on disk, the config the test wrote, MySQL's tables."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tests.conftest import newest_version, run_cli
from tests.mysql_server import server_binary
from tests.runs import MYSQL_PASSWORD_ENV as PASSWORD_ENV
from tests.runs import MYSQL_UNTIL, TINY_ROWS
from tests.serving_fixtures import TINY_TRAINING

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def two_runs(pipeline_runs):
    """tests/runs.py tiny and tiny_second: (config of run 2 (loaded), its path, summary.json of run 1,
    of run 2, the CSV file). Run 1 passes its threshold; run 2 trains longer and must reach 0.9999,
    which it cannot: two runs with different metrics, config and blessing."""
    first, second = pipeline_runs.wait("tiny"), pipeline_runs.wait("tiny_second")
    return (second.cfg, second.config, first.facts["summary"], second.facts["summary"],
            first.workspace.folder / "data" / "data.csv")


def _json(command, *args):
    """A command's --json output, called in this process (the CLI's argparse wiring is checked by
    one subprocess call per command: each loads TensorFlow again, 20-30 s on a busy machine)."""
    out = io.StringIO()
    assert command(*args, True, out) == 0
    return json.loads(out.getvalue())


def _cli(cfg, config: Path, *args: str):
    proc = run_cli(*args, "--config", str(config), "--output-root", str(cfg.output_root))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.runs("tiny")
def test_runs_lists_both_runs_with_their_own_metrics(two_runs) -> None:
    # Checks: one row per real run, oldest first, each with the metrics/blessing/push that run's
    # own summary.json recorded (a command returning one run twice, or constants, fails).
    from pipeline import metadata_cli

    cfg, config, first, second, _ = two_runs
    runs = _json(metadata_cli.cmd_runs, cfg)
    assert len(runs) == 2
    assert [r["status"] for r in runs] == ["COMPLETE", "COMPLETE"]
    assert all(r["finished"] is not None and r["finished"] >= r["started"] for r in runs)
    assert runs[0]["started"] < runs[1]["started"]
    assert runs[0]["metrics"] == pytest.approx(first["metrics"]["eval"])
    assert runs[1]["metrics"] == pytest.approx(second["metrics"]["eval"])
    assert runs[0]["metrics"]["auc"] != runs[1]["metrics"]["auc"]
    assert (runs[0]["blessed"], runs[1]["blessed"]) == (first["blessed"], second["blessed"]) == (True, False)
    assert runs[0]["pushed"] == {"serving": Path(first["pushed_path"]).name,  # and the TFLite target's
                                 "mobile": newest_version(cfg.pushed_dir("mobile")).name}
    assert runs[1]["pushed"] == {}
    # Run 2 reused everything before Trainer from the cache; Trainer and Evaluator ran again.
    assert runs[1]["nodes"]["CsvExampleGen"] == "CACHED" and runs[1]["nodes"]["Trainer"] == "COMPLETE"
    text = _cli(cfg, config, "runs")
    assert runs[0]["run_id"] in text and runs[1]["run_id"] in text and f"auc={runs[1]['metrics']['auc']:.4f}" in text


@pytest.mark.runs("tiny")
def test_lineage_of_pushed_model_reaches_the_csv_and_its_fingerprint(two_runs, capsys) -> None:
    # Checks: from the pushed folder back through Evaluator, Trainer, Transform and schema to the
    # CSV file the test wrote, with ExampleGen's recorded fingerprint matching the file's size.
    from pipeline import metadata_cli

    cfg, config, first, _, csv = two_runs
    pushed = first["pushed_path"]
    steps = _json(metadata_cli.cmd_lineage, cfg, pushed)
    assert steps[0]["artifact_type"] == "PushedModel" and steps[0]["node"] == "Pusher"
    assert steps[0]["properties"]["pushed_destination"] == pushed
    runs = _json(metadata_cli.cmd_runs, cfg)
    assert steps[0]["run_id"] == runs[0]["run_id"]  # run 1 pushed; run 2 did not
    by_node = {s["node"]: s for s in steps if s["node"] and not s["repeated"]}
    assert {"Pusher", "Evaluator", "Trainer", "Transform", "CsvExampleGen", "ImportSchemaGen"} <= set(by_node)
    blessing = by_node["Evaluator"]
    assert blessing["artifact_type"] == "ModelBlessing" and blessing["properties"]["blessed"] == 1
    assert [s["artifact_type"] for s in blessing["siblings"]] == ["ModelEvaluation"]
    assert by_node["Trainer"]["artifact_type"] == "Model"
    assert {s["artifact_type"] for s in steps if s["node"] == "Transform"} >= {"TransformGraph"}
    example_gen = by_node["CsvExampleGen"]
    assert [f["path"] for f in example_gen["files"]] == [str(csv)]
    fingerprint = example_gen["execution_properties"]["input_fingerprint"]
    assert f"total_bytes:{csv.stat().st_size}," in fingerprint and "num_files:1," in fingerprint
    assert example_gen["properties"]["span"] == 0
    # A folder nothing was pushed to is an error, not an empty chain.
    assert metadata_cli.cmd_lineage(cfg, str(Path(pushed).parent / "1"), False, io.StringIO()) == 1
    assert "no PushedModel" in capsys.readouterr().err
    text = _cli(cfg, config, "lineage", pushed)
    assert str(csv) in text and "files vs fingerprint" in text and "unchanged" in text


@pytest.mark.runs("tiny")
def test_compare_shows_changed_config_metric_deltas_and_data(two_runs, capsys) -> None:
    # Checks: latest-blessed / latest resolve to run 1 / run 2; the config change the test made is
    # reported (and nothing about the data); deltas are run 2 minus run 1 of the summaries' values;
    # row counts add up to the CSV's rows.
    from pipeline import metadata_cli

    cfg, config, first, second, _ = two_runs
    runs = _json(metadata_cli.cmd_runs, cfg)
    c = _json(metadata_cli.cmd_compare, cfg, "latest-blessed", "latest")
    assert (c["a"]["run_id"], c["b"]["run_id"]) == (runs[0]["run_id"], runs[1]["run_id"])
    diff = c["config"]["differences"]
    assert diff["training.train_steps"] == {"a": TINY_TRAINING["train_steps"], "b": 90}
    assert any(k.startswith("evaluation.thresholds") for k in diff)
    assert not any(k.startswith(("data_dir", "features", "label")) for k in diff)
    for metric, value in first["metrics"]["eval"].items():
        expected = second["metrics"]["eval"][metric] - value
        assert c["metrics"][metric]["delta"] == pytest.approx(expected, abs=1e-9), metric
    assert c["metrics"]["auc"]["delta"] != 0
    stats = c["statistics"]
    assert sum(stats[s]["rows"]["a"] for s in stats) == TINY_ROWS
    assert all(stats[s]["rows"]["a"] == stats[s]["rows"]["b"] for s in stats)  # same data, cached
    assert stats["train"]["features"]["fare"]["a"]["mean"] > 0
    same = _json(metadata_cli.cmd_compare, cfg, runs[0]["run_id"], runs[0]["run_id"])
    assert same["config"]["differences"] == {} and same["metrics"]["auc"]["delta"] == 0
    assert metadata_cli.cmd_compare(cfg, "no-such-run", "latest", False, io.StringIO()) == 1
    assert runs[0]["run_id"] in capsys.readouterr().err
    text = _cli(cfg, config, "compare", "latest-blessed", "latest")
    assert "training.train_steps: 40 -> 90" in text and f"{c['metrics']['auc']['delta']:+.4f}" in text


needs_server = pytest.mark.skipif(
    server_binary() is None,
    reason="no MySQL-compatible server: mariadb-server is not installed (`make system-deps`)")


@pytest.mark.runs("mysql")
@needs_server
def test_runs_and_lineage_read_mysql_metadata(pipeline_runs, monkeypatch) -> None:
    # Checks: the same commands read a MySQL store (tests/runs.py mysql, up to FeatureSelector): the
    # run and the artifact the test picks from MariaDB's own tables, traced back to the CSV file.
    from pipeline import metadata_cli
    from pipeline.pipeline_def import create_pipeline

    run = pipeline_runs.wait("mysql")
    server, cfg = run.workspace.resources["server"], run.cfg
    csv = run.workspace.folder / "data" / "data.csv"
    monkeypatch.setenv(PASSWORD_ENV, server.password)
    assert not cfg.metadata_path.exists()
    runs = _json(metadata_cli.cmd_runs, cfg)
    (run_name,) = [r for (r,) in server.query(
        "SELECT c.name FROM mlmd_taxi.Context c JOIN mlmd_taxi.Type t ON c.type_id = t.id "
        "WHERE t.name = 'pipeline_run'")]
    assert [r["run_id"] for r in runs] == [run_name] and runs[0]["status"] == "COMPLETE"
    nodes = {c.id for c in create_pipeline(cfg, MYSQL_UNTIL).components if not c.id.endswith("resolver")}
    assert runs[0]["nodes"] == {n: "COMPLETE" for n in nodes}
    (examples_id,) = [i for (i,) in server.query(
        "SELECT id FROM mlmd_taxi.Artifact WHERE uri LIKE '%/CsvExampleGen/examples/%'")]
    steps = _json(metadata_cli.cmd_lineage, cfg, str(examples_id))
    assert steps[0]["artifact_id"] == examples_id and steps[0]["node"] == "CsvExampleGen"
    assert steps[0]["run_id"] == run_name
    assert [f["path"] for f in steps[0]["files"]] == [str(csv)]
    assert f"total_bytes:{csv.stat().st_size}," in steps[0]["execution_properties"]["input_fingerprint"]
    assert (cfg.output_dir / "runs" / run_name / "config.yaml").is_file()  # the snapshot, with MySQL too
