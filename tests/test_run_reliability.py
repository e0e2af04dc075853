"""Runs that survive kill -9 and refuse to overlap (issue 16, docs/reliability.md).

Fast tests: the run lock against a real holder process (no pipeline runs).
e2e (one module fixture, three runs of a tiny pipeline on one output root):
  1. killed (SIGKILL to its whole process group) while Transform executes; while it ran, a second
     ``run`` on the same output root was refused, naming it;
  2. re-run with the Pusher test hook (PIPELINE_FAULT_KILL_AT=pusher:after_copy): it resumes from the
     cache, re-executes Transform, trains on the new Transform's outputs, and kills itself mid-push;
  3. re-run plainly: everything before Pusher comes from the cache, Pusher re-executes and pushes a
     complete version beside the untouched older one.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ml_metadata.proto import metadata_store_pb2

from tests.conftest import ROOT, derived_config, sample_rows, write_csv
from tests.serving_fixtures import LIGHT_FEATURES, TINY_TRAINING

NAME = "reliability"
Execution = metadata_store_pb2.Execution
BEFORE_TRANSFORM = ("CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "AnomalyGate")


def tiny_config(tmp: Path, name: str = NAME) -> Path:
    """The cheapest whole pipeline (serving_fixtures' shape) whose model is always blessed, so
    Pusher pushes."""
    header, rows = sample_rows(1500, seed=11)
    data = write_csv(tmp / "data" / "data.csv", header, rows).parent
    return derived_config(tmp, data, name=name, training=TINY_TRAINING, features=LIGHT_FEATURES, cleaning=None,
                          feature_selection=None, tuning=None, optimization=None,
                          evaluation={"splits": ["eval"], "slices": [],
                                      "thresholds": [{"metric": "auc", "lower_bound": 0.0}]})


def start_run(config: Path, output_root: Path, tag: str, env: dict | None = None) -> subprocess.Popen:
    """``python -m pipeline run`` in its own process group (killpg reaches its children too);
    output to files beside the output root (a full pipe would stall it)."""
    out = (output_root.parent / f"{tag}.stdout").open("w")
    err = (output_root.parent / f"{tag}.stderr").open("w")
    return subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--config", str(config),
                             "--output-root", str(output_root)], cwd=ROOT, stdout=out, stderr=err,
                            text=True, start_new_session=True, env={**os.environ, **(env or {})})


def output_of(output_root: Path, tag: str) -> str:
    return "".join((output_root.parent / f"{tag}.{s}").read_text() for s in ("stdout", "stderr"))


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def lock_note(output_dir: Path) -> dict:
    try:
        return json.loads((output_dir / ".run.lock").read_text() or "{}")
    except (OSError, ValueError):
        return {}


def refused_second_run(config: Path, output_root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", "run", "--config", str(config), "--output-root",
                           str(output_root)], cwd=ROOT, capture_output=True, text=True, timeout=300)


def tree_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        digest.update(str(p.relative_to(path)).encode() + (p.read_bytes() if p.is_file() else b"/"))
    return digest.hexdigest()


class Store:
    """Read-only MLMD of a finished (or killed) run: executions per node, their artifacts."""

    def __init__(self, config: Path, output_root: Path):
        from pipeline.config import load_config
        from pipeline.summary import open_store

        self.cfg = load_config(config, output_root=output_root)
        self.store = open_store(self.cfg)

    def executions(self, node: str) -> list[metadata_store_pb2.Execution]:
        ctx = self.store.get_context_by_type_and_name("node", f"{self.cfg.name}.{node}")
        return sorted(self.store.get_executions_by_context(ctx.id), key=lambda e: e.id) if ctx else []

    def artifacts(self, execution_id: int, *kinds: int) -> list[metadata_store_pb2.Artifact]:
        ids = [e.artifact_id for e in self.store.get_events_by_execution_ids([execution_id]) if e.type in kinds]
        return self.store.get_artifacts_by_id(ids) if ids else []

    def all_execution_ids(self) -> set[int]:
        return {e.id for e in self.store.get_executions()}


OUTPUTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT,
           metadata_store_pb2.Event.PENDING_OUTPUT)
INPUTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)


# ------------------------------------------------------------------------------- fast: the lock --
HOLD = """
import sys, time
from pathlib import Path
from pipeline.config import load_config
from pipeline import runners
cfg = load_config(Path(sys.argv[1]), output_root=Path(sys.argv[2]))
with runners.run_lock(cfg, Path("/tmp/holder.log")):
    print("held", flush=True)
    time.sleep(600)
"""


def _hold_lock(config: Path, output_root: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(config), str(output_root)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_run_is_refused_at_once_naming_the_holder_and_kill_9_leaves_no_stale_lock(tmp_path):
    # Checks a `run` on an output root whose lock a live process holds exits non-zero within seconds,
    # names the holder's pid and log file, and creates neither MLMD nor the pipeline root; that
    # `validate` ignores the lock; and that once the holder is killed with SIGKILL the lock is free
    # (the kernel dropped it: a lock file alone would still block).
    config, root = tiny_config(tmp_path), tmp_path / "outputs"
    holder = _hold_lock(config, root)
    try:
        started = time.monotonic()
        proc = refused_second_run(config, root)
        seconds = time.monotonic() - started
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert f"pid {holder.pid} " in proc.stderr and "/tmp/holder.log" in proc.stderr, proc.stderr
        assert seconds < 60
        out = root / NAME
        assert sorted(p.name for p in out.iterdir()) == [".run.lock"]  # no MLMD, no pipeline root, no log
        validate = subprocess.run([sys.executable, "-m", "pipeline", "validate", "--config", str(config),
                                   "--output-root", str(root)], cwd=ROOT, capture_output=True, text=True,
                                  timeout=300)
        assert validate.returncode == 0, validate.stderr
    finally:
        holder.kill()
        holder.wait()
    assert lock_note(root / NAME)["pid"] == holder.pid  # its note survives the kill ...
    from pipeline import runners
    from pipeline.config import load_config

    cfg = load_config(config, output_root=root)
    with runners.run_lock(cfg, tmp_path / "next.log") as note:  # ... but not its lock
        assert note["pid"] == os.getpid()
        assert lock_note(root / NAME)["log_file"] == str(tmp_path / "next.log")
        with pytest.raises(runners.RunLocked, match=f"pid {os.getpid()} "):  # a second holder, same process
            with runners.run_lock(cfg, tmp_path / "other.log"):
                pass
    assert lock_note(root / NAME) == {}  # released: no note of a finished run


# ------------------------------------------------------------------ e2e: kill -9 and resume --
@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("reliability")
    config, root = tiny_config(tmp), tmp / "outputs"
    out = root / NAME
    older = out / "pushed" / "serving" / "1"  # an older pushed version: no run may touch it
    older.mkdir(parents=True)
    (older / "saved_model.pb").write_bytes(b"an older version")
    facts: dict = {"config": config, "root": root, "older": older, "older_digest": tree_digest(older)}

    # 1. Killed while Transform executes; meanwhile a second run is refused.
    run1 = start_run(config, root, "run1")
    wait_for(lambda: lock_note(out).get("pid") == run1.pid, 120, "run 1 holds the lock", run1)
    facts["refused"] = refused_second_run(config, root)
    facts["holder_log"] = lock_note(out)["log_file"]
    log = Path(facts["holder_log"])
    wait_for(lambda: log.exists() and "Component Transform is running." in log.read_text(), 900,
             "Transform to start", run1)
    time.sleep(3)  # inside Transform's Beam job
    os.killpg(run1.pid, signal.SIGKILL)
    run1.wait()
    facts["run1_code"] = run1.returncode
    store = Store(config, root)
    facts["after1"] = store.all_execution_ids()
    facts["killed_transform"] = store.executions("Transform")[-1]
    facts["killed_transform_outputs"] = store.artifacts(facts["killed_transform"].id, *OUTPUTS)

    # 2. Re-run; the test hook kills it between Pusher's staging copy and its rename.
    run2 = start_run(config, root, "run2", env={"PIPELINE_FAULT_KILL_AT": "pusher:after_copy"})
    run2.wait(timeout=1800)
    facts["run2_code"], facts["run2_output"] = run2.returncode, output_of(root, "run2")
    facts["pushed_after2"] = sorted(p.name for p in (out / "pushed" / "serving").iterdir())
    store = Store(config, root)
    facts["after2"] = store.all_execution_ids()
    facts["killed_pusher"] = store.executions("Pusher")[-1]

    # 3. Re-run plainly: resumes at Pusher.
    run3 = start_run(config, root, "run3")
    run3.wait(timeout=1800)
    facts["run3_code"], facts["run3_output"] = run3.returncode, output_of(root, "run3")
    facts["store"] = Store(config, root)
    return facts


def new_executions(store: Store, node: str, before: set[int], after: set[int] | None = None) -> list:
    return [e for e in store.executions(node) if e.id not in before and (after is None or e.id in after)]


@pytest.mark.e2e
def test_a_second_run_is_refused_while_the_first_runs(runs):
    # Checks the refusal against a real running pipeline: exit code 3, the first run's pid and log
    # file in the message; the first run got past the moment (it reached Transform) and run 3 on the
    # same root, after the kill, was not blocked by a stale lock.
    refused = runs["refused"]
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "another run of this pipeline is using" in refused.stderr
    assert runs["holder_log"] in refused.stderr
    assert runs["run3_code"] == 0, runs["run3_output"][-3000:]


@pytest.mark.e2e
def test_kill_9_in_transform_resumes_from_the_cache_and_never_uses_the_killed_output(runs):
    # Checks: the killed Transform execution never became COMPLETE; the re-run took every component
    # before Transform from the cache (CACHED executions, no re-execution), re-executed Transform
    # (a new COMPLETE execution), and Trainer read only the new Transform's artifacts - none of the
    # killed execution's artifacts, none under its output folders.
    store = runs["store"]
    assert runs["run1_code"] == -signal.SIGKILL
    killed = runs["killed_transform"]
    assert killed.last_known_state != Execution.COMPLETE
    assert store.store.get_executions_by_id([killed.id])[0].last_known_state != Execution.COMPLETE
    for node in BEFORE_TRANSFORM:
        (execution,) = new_executions(store, node, runs["after1"], runs["after2"])
        assert execution.last_known_state == Execution.CACHED, node
    (transform,) = new_executions(store, "Transform", runs["after1"], runs["after2"])
    assert transform.last_known_state == Execution.COMPLETE
    (trainer,) = new_executions(store, "Trainer", runs["after1"], runs["after2"])
    assert trainer.last_known_state == Execution.COMPLETE
    used = store.artifacts(trainer.id, *INPUTS)
    new_outputs = {a.id for a in store.artifacts(transform.id, *OUTPUTS)}
    from_transform = [a for a in used if a.id in new_outputs]
    assert len(from_transform) == 2  # transform_graph and transformed_examples, both from the re-execution
    killed_ids = {a.id for a in runs["killed_transform_outputs"]}
    killed_dirs = [str(store.cfg.pipeline_root / "Transform" / key / str(killed.id))
                   for key in ("transform_graph", "transformed_examples")]
    for artifact in used:
        assert artifact.id not in killed_ids
        assert not any(artifact.uri.startswith(d) for d in killed_dirs), artifact.uri


@pytest.mark.e2e
def test_kill_9_in_pusher_leaves_no_partial_version_and_the_rerun_pushes_a_complete_one(runs):
    # Checks: killed between copy and rename, pushed/serving/ held no new numbered version (only the
    # older one and a staging folder); the plain re-run took everything before Pusher from the cache,
    # re-executed Pusher, removed the staging folder, and pushed a version identical to Trainer's
    # model; the older version is byte-identical throughout.
    store, out = runs["store"], runs["root"] / NAME
    assert runs["run2_code"] == -signal.SIGKILL, runs["run2_output"][-3000:]
    numbered = [n for n in runs["pushed_after2"] if n.isdigit()]
    assert numbered == ["1"], runs["pushed_after2"]
    assert [n for n in runs["pushed_after2"] if n.startswith(".tmp-")], runs["pushed_after2"]
    assert runs["killed_pusher"].last_known_state != Execution.COMPLETE
    for node in (*BEFORE_TRANSFORM, "Transform", "Trainer", "Evaluator", "InfraValidator"):
        (execution,) = new_executions(store, node, runs["after2"])
        assert execution.last_known_state == Execution.CACHED, node
    (pusher,) = new_executions(store, "Pusher", runs["after2"])
    assert pusher.last_known_state == Execution.COMPLETE
    (pushed_model,) = store.artifacts(pusher.id, *OUTPUTS)
    version = pushed_model.custom_properties["pushed_version"].string_value
    serving = out / "pushed" / "serving"
    assert sorted(p.name for p in serving.iterdir()) == ["1", version]  # staging removed, one new version
    (trainer_model,) = [a for a in store.artifacts(pusher.id, *INPUTS) if a.uri.startswith(
        str(store.cfg.pipeline_root / "Trainer"))]
    assert tree_digest(serving / version) == tree_digest(Path(trainer_model.uri) / "Format-Serving")
    assert tree_digest(runs["older"]) == runs["older_digest"]
