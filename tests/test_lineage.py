"""pipeline/lineage.py and the run snapshots of pipeline/metadata_cli.py on a real ML Metadata
store (sqlite in a temp dir) filled the way TFX's LocalDagRunner records runs: contexts of types
``pipeline``, ``pipeline_run`` and ``node`` on every execution, INPUT/OUTPUT events keyed by the
component's input and output names, and a cached execution re-publishing earlier artifacts.
(tests/test_metadata_cli.py checks the same API against real pipeline runs.)"""

from __future__ import annotations

import json
import time
import types
from dataclasses import dataclass, field
from pathlib import Path

import ml_metadata as mlmd
import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

from pipeline import lineage as lin
from pipeline import metadata_cli

ARTIFACT_TYPES = ("Examples", "Schema", "Model", "ModelEvaluation", "ModelBlessing", "PushedModel")


@dataclass
class Recorder:
    """Writes runs into a real MLMD store as TFX's orchestrator does (contexts, executions, events)."""

    store: mlmd.MetadataStore
    contexts: dict[tuple[str, str], pb.Context] = field(default_factory=dict)

    @classmethod
    def create(cls, path: Path) -> Recorder:
        conn = pb.ConnectionConfig()
        conn.sqlite.filename_uri = str(path)
        conn.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        store = mlmd.MetadataStore(conn)
        for name in ("pipeline", "pipeline_run", "node"):
            store.put_context_type(pb.ContextType(name=name))
        for name in ARTIFACT_TYPES:
            store.put_artifact_type(pb.ArtifactType(name=name))
        return cls(store)

    def context(self, type_name: str, name: str) -> pb.Context:
        if (type_name, name) not in self.contexts:
            type_id = self.store.get_context_type(type_name).id
            (cid,) = self.store.put_contexts([pb.Context(type_id=type_id, name=name)])
            self.contexts[type_name, name] = self.store.get_contexts_by_id([cid])[0]
        return self.contexts[type_name, name]

    def artifact(self, type_name: str, uri: str, **props) -> pb.Artifact:
        a = pb.Artifact(type_id=self.store.get_artifact_type(type_name).id, uri=uri, state=pb.Artifact.LIVE)
        for k, v in props.items():
            setattr(a.custom_properties[k], "int_value" if isinstance(v, int) else "string_value", v)
        return a

    def execute(self, pipeline: str, run_id: str, node: str, state: str = "COMPLETE",
                inputs: dict[str, pb.Artifact] | None = None, outputs: dict[str, pb.Artifact] | None = None,
                **props: str) -> dict[str, pb.Artifact]:
        """One execution of ``node`` in run ``run_id``; returns its outputs with their new ids."""
        type_name = f"tfx.components.{node}"
        try:
            type_id = self.store.get_execution_type(type_name).id
        except mlmd.errors.NotFoundError:
            type_id = self.store.put_execution_type(pb.ExecutionType(name=type_name))
        execution = pb.Execution(type_id=type_id, last_known_state=pb.Execution.State.Value(state))
        for k, v in props.items():
            execution.custom_properties[k].string_value = v
        pairs = []
        for kind, items in ((pb.Event.INPUT, inputs or {}), (pb.Event.OUTPUT, outputs or {})):
            for key, artifact in items.items():
                event = pb.Event(type=kind)
                event.path.steps.add().key = key
                event.path.steps.add().index = 0
                pairs.append((artifact, event))
        contexts = [self.context("pipeline", pipeline), self.context("pipeline_run", run_id),
                    self.context("node", f"{pipeline}.{node}")]
        _, artifact_ids, _ = self.store.put_execution(execution, pairs, contexts)
        output_ids = artifact_ids[len(inputs or {}):]  # ids come back in the order of `pairs`
        return dict(zip(outputs or {}, self.store.get_artifacts_by_id(output_ids), strict=True))


@pytest.fixture
def rec(tmp_path: Path) -> Recorder:
    return Recorder.create(tmp_path / "metadata.sqlite")


def _run(rec: Recorder, tmp: Path, run_id: str, blessed: int, version: str | None,
         examples: pb.Artifact | None = None, baseline: pb.Artifact | None = None, pipeline: str = "taxi"
         ) -> dict[str, pb.Artifact]:
    """ExampleGen (or its cached re-publication) -> Trainer -> Evaluator -> Pusher, as one run."""
    csv_dir = tmp / "data"
    if examples is None:  # ExampleGen records the fingerprint on its execution and its output
        fingerprint = (f"split:single_split,num_files:1,total_bytes:{(csv_dir / 'data.csv').stat().st_size},"
                       "xor_checksum:1,sum_checksum:1")
        examples = rec.execute(pipeline, run_id, "CsvExampleGen", outputs={"examples": rec.artifact(
            "Examples", str(tmp / "root" / "CsvExampleGen" / run_id), span=0, input_fingerprint=fingerprint)},
            input_base=str(csv_dir), input_config=json.dumps({"splits": [{"name": "s", "pattern": "*.csv"}]}),
            input_fingerprint=fingerprint)["examples"]
    else:  # a cached ExampleGen: the same artifact as an OUTPUT of a CACHED execution
        rec.execute(pipeline, run_id, "CsvExampleGen", state="CACHED", outputs={"examples": examples})
    model = rec.execute(pipeline, run_id, "Trainer", inputs={"examples": examples},
                        outputs={"model": rec.artifact("Model", str(tmp / "root" / "Trainer" / run_id))})["model"]
    evaluator_inputs = {"examples": examples, "model": model, **({"baseline_model": baseline} if baseline else {})}
    evaluated = rec.execute(pipeline, run_id, "Evaluator", inputs=evaluator_inputs, outputs={
        "evaluation": rec.artifact("ModelEvaluation", str(tmp / "root" / "Evaluator" / "evaluation" / run_id)),
        "blessing": rec.artifact("ModelBlessing", str(tmp / "root" / "Evaluator" / "blessing" / run_id),
                                 blessed=blessed)})
    destination = str(tmp / "pushed" / "serving" / (version or "none"))
    pushed = rec.artifact("PushedModel", str(tmp / "root" / "Pusher" / run_id), pushed=int(version is not None),
                          **({"pushed_destination": destination, "pushed_version": version} if version else {}))
    out = rec.execute(pipeline, run_id, "Pusher", inputs={"model": model, "model_blessing": evaluated["blessing"]},
                      outputs={"pushed_model": pushed})
    return {"examples": examples, "model": model, **evaluated, **out}


@pytest.fixture
def three_runs(rec: Recorder, tmp_path: Path):
    """run-1 blessed and pushed v1; run-2 not blessed, not pushed (cached ExampleGen); run-3 killed
    in Trainer; plus another pipeline's run in the same store."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "data.csv").write_text("a,b\n1,2\n")
    first = _run(rec, tmp_path, "run-1", blessed=1, version="v1")
    time.sleep(0.01)  # MLMD stamps creation times in ms: keep the runs' start times apart
    second = _run(rec, tmp_path, "run-2", blessed=0, version=None, examples=first["examples"],
                  baseline=first["model"])
    time.sleep(0.01)
    rec.execute("taxi", "run-3", "CsvExampleGen", state="CACHED", outputs={"examples": first["examples"]})
    rec.execute("taxi", "run-3", "Trainer", state="RUNNING", inputs={"examples": first["examples"]})
    _run(rec, tmp_path, "other-run", blessed=1, version="o1", pipeline="other")
    return first, second


def test_runs_status_blessing_and_push_per_run(rec: Recorder, three_runs) -> None:
    # Checks: each run gets its own blessing/push (not the latest's), a killed run is RUNNING with
    # no finish time, and another pipeline's run in the same store is not listed.
    runs = lin.runs(rec.store, "taxi", metrics=False)
    assert [r.run_id for r in runs] == ["run-1", "run-2", "run-3"]
    assert [r.status for r in runs] == ["COMPLETE", "COMPLETE", "RUNNING"]
    assert [r.blessed for r in runs] == [True, False, None]
    assert [r.pushed for r in runs] == [{"serving": "v1"}, {}, {}]
    assert runs[0].finished is not None and runs[0].seconds is not None and runs[0].seconds >= 0
    assert runs[2].finished is None and runs[2].seconds is None
    assert runs[1].nodes == {"CsvExampleGen": "CACHED", "Trainer": "COMPLETE", "Evaluator": "COMPLETE",
                             "Pusher": "COMPLETE"}
    assert runs[2].nodes == {"CsvExampleGen": "CACHED", "Trainer": "RUNNING"}
    assert [r.run_id for r in lin.runs(rec.store, "other", metrics=False)] == ["other-run"]
    assert lin.runs(rec.store, "nothing", metrics=False) == []


def test_run_status_precedence() -> None:
    # Checks: a failure outranks an unfinished node, which outranks completion; cached counts as done.
    def ex(*states: str) -> list[pb.Execution]:
        return [pb.Execution(last_known_state=pb.Execution.State.Value(s)) for s in states]

    assert lin.run_status(ex("COMPLETE", "CACHED")) == "COMPLETE"
    assert lin.run_status(ex("COMPLETE", "RUNNING")) == "RUNNING"
    assert lin.run_status(ex("COMPLETE", "NEW")) == "RUNNING"
    assert lin.run_status(ex("RUNNING", "FAILED")) == "FAILED"
    assert lin.run_status(ex("CANCELED", "COMPLETE")) == "CANCELED"


def test_find_run_and_last_blessed(rec: Recorder, three_runs) -> None:
    # Checks: `latest` is the newest run, `latest-blessed` the newest blessed one (not the newest),
    # ids resolve exactly, an unknown id names the known ones.
    store = rec.store
    assert lin.find_run(store, "taxi", "latest", metrics=False).run_id == "run-3"
    assert lin.find_run(store, "taxi", "latest-blessed", metrics=False).run_id == "run-1"
    assert lin.find_run(store, "taxi", "run-2", metrics=False).run_id == "run-2"
    with pytest.raises(LookupError, match="run-1, run-2, run-3"):
        lin.find_run(store, "taxi", "run-9", metrics=False)
    assert lin.last_blessed_run(store, "taxi", "run-3", metrics=False).run_id == "run-1"
    assert lin.last_blessed_run(store, "taxi", "run-1", metrics=False) is None
    with pytest.raises(LookupError, match="no runs"):
        lin.find_run(store, "nothing", "latest", metrics=False)


def test_pushed_artifact_and_lineage_chain(rec: Recorder, three_runs, tmp_path: Path) -> None:
    # Checks: the pushed folder maps to its PushedModel; the chain goes Pusher -> Evaluator ->
    # Trainer -> the ExampleGen that really wrote the examples (not run-2's cached re-publication)
    # with the input file and its fingerprint; the baseline model is shown but not followed.
    first, second = three_runs
    store = rec.store
    artifact = lin.pushed_artifact(store, tmp_path / "pushed" / "serving" / "v1")
    assert artifact is not None and artifact.id == first["pushed_model"].id
    assert lin.pushed_artifact(store, tmp_path / "pushed" / "serving" / "v2") is None
    assert lin.pushed_artifact(store, tmp_path / "pushed" / "serving" / "none") is None  # pushed=0

    steps = lin.lineage(store, first["pushed_model"].id)
    assert (steps[0].node, steps[0].run_id, steps[0].properties["pushed_version"]) == ("Pusher", "run-1", "v1")
    fresh = [s for s in steps if not s.repeated]
    assert [(s.via, s.artifact_type, s.node) for s in fresh] == [
        ("", "PushedModel", "Pusher"), ("model", "Model", "Trainer"), ("examples", "Examples", "CsvExampleGen"),
        ("model_blessing", "ModelBlessing", "Evaluator")]
    example_gen = fresh[2]
    assert (example_gen.state, example_gen.run_id) == ("COMPLETE", "run-1")
    assert example_gen.files == [{"path": str(tmp_path / "data" / "data.csv"), "bytes": 8}]
    assert fresh[3].properties["blessed"] == 1
    assert [s["artifact_type"] for s in fresh[3].siblings] == ["ModelEvaluation"]

    # Run 2: its Evaluator read run 1's model as the baseline: listed, not expanded.
    steps = lin.lineage(store, second["blessing"].id)
    (baseline,) = [s for s in steps if s.via == "baseline_model"]
    assert baseline.artifact_id == first["model"].id and not baseline.followed and baseline.node is None
    (examples,) = [s for s in steps if s.via == "examples" and not s.repeated]
    assert examples.run_id == "run-1" and examples.node == "CsvExampleGen"  # the producer, not the cache hit

    text = lin.format_lineage(lin.lineage(store, first["pushed_model"].id))
    assert "files vs fingerprint: 8 bytes recorded, unchanged" in text
    (tmp_path / "data" / "data.csv").write_text("a,b\n1,2\n3,4\n")
    text = lin.format_lineage(lin.lineage(store, first["pushed_model"].id))
    assert "CHANGED since (now 12 bytes)" in text


def test_run_graph_is_one_runs_lineage(rec: Recorder, three_runs) -> None:
    # Checks: a run's graph holds its own executions and the artifacts they touched, nothing of others.
    first, second = three_runs
    artifacts, executions, events = lin.run_graph(rec.store, "run-2")
    assert len(executions) == 4
    ids = {a.id for a in artifacts}
    assert second["blessing"].id in ids and first["model"].id in ids  # the baseline it read
    assert first["blessing"].id not in ids
    assert {ev.execution_id for ev in events} == {e.id for e in executions}
    with pytest.raises(LookupError):
        lin.run_graph(rec.store, "run-9")


def test_abandoned_run_is_told_from_a_live_one(rec: Recorder, three_runs, tmp_path: Path) -> None:
    # Checks: with the output folder's run lock held (the real runners.run_lock) the unfinished
    # newest run is RUNNING; with no holder (the process was killed) it is ABANDONED.
    from pipeline.runners import run_lock

    runs = lin.runs(rec.store, "taxi", metrics=False)
    out = tmp_path / "out"
    assert [r["status"] for r in metadata_cli.with_liveness(out, runs)] == ["COMPLETE", "COMPLETE", "ABANDONED"]
    holder = types.SimpleNamespace(output_dir=out, path=tmp_path / "pipeline.yaml")
    with run_lock(holder, tmp_path / "log.txt"):
        assert metadata_cli.lock_held(out)
        assert [r["status"] for r in metadata_cli.with_liveness(out, runs)] == ["COMPLETE", "COMPLETE", "RUNNING"]
    assert not metadata_cli.lock_held(out)


def test_config_diff_names_changed_added_and_removed_keys() -> None:
    # Checks: nested keys and list items are compared leaf by leaf; equal configs differ in nothing.
    a = {"training": {"train_steps": 40, "epochs": 1}, "evaluation": {"thresholds": [{"metric": "auc"}]}}
    b = {"training": {"train_steps": 90, "epochs": 1}, "evaluation": {"thresholds": [{"metric": "auc"},
                                                                                     {"metric": "acc"}]}}
    assert metadata_cli.config_diff(a, b) == {"training.train_steps": (40, 90),
                                              "evaluation.thresholds.1.metric": (None, "acc")}
    assert metadata_cli.config_diff(a, a) == {}
    assert metadata_cli.config_diff(b, a)["evaluation.thresholds.1.metric"] == ("acc", None)


def test_snapshots_go_to_the_runs_made_since(rec: Recorder, three_runs, tmp_path: Path) -> None:
    # Checks: only runs started at or after `since` get config.yaml (earlier runs keep theirs), and
    # the file holds this config's resolved values.
    from pipeline.config import load_config
    from tests.conftest import derived_config, sample_rows, write_csv

    header, rows = sample_rows(50)
    data = write_csv(tmp_path / "csv" / "data.csv", header, rows).parent
    cfg = load_config(derived_config(tmp_path, data, name="taxi", training={"train_steps": 77}),
                      output_root=tmp_path / "outputs")
    runs = lin.runs(rec.store, "taxi", metrics=False)
    written = metadata_cli.write_snapshots(cfg, rec.store, since=runs[2].started)
    assert written == [cfg.output_dir / "runs" / "run-3" / "config.yaml"]
    snapshot = metadata_cli.load_snapshot(cfg, "run-3")
    assert snapshot["training"]["train_steps"] == 77 and snapshot["name"] == "taxi"
    assert metadata_cli.load_snapshot(cfg, "run-1") is None
