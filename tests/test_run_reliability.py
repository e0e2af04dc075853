"""Runs that survive kill -9 and refuse to overlap (issue 16, docs/reliability.md).

Fast tests: the run lock against a real holder process (no pipeline runs).
e2e: one sequence of runs of a tiny pipeline on one output root (tests/runs.py ``reliability_*``):
  1. killed (SIGKILL to its whole process group) while Transform executes; while it ran, a second
     ``run`` on the same output root was refused, naming it;
  2. re-run and killed while InfraValidator executes (its model server running);
  3. re-run with the Pusher test hook (PIPELINE_FAULT_KILL_AT=pusher:after_copy): it resumes from the
     cache, re-executes InfraValidator, and kills itself mid-push;
  4. re-run: everything before Pusher comes from the cache, Pusher re-executes and pushes a complete
     version beside the untouched older one; killed while TFLiteConverter executes;
  5. re-run plainly to the end.
Trainer and Evaluator follow Transform's rule (an executor in the run's process whose outputs are
published only when it completes); the earlier 7-run sequence killed each of them too.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ml_metadata.proto import metadata_store_pb2

from components.model_card_generator.executor import CARD_HTML, CARD_MD
from tests.conftest import ROOT, derived_config, sample_rows, small_deployment, small_optimization, write_csv
from tests.run_registry import Workspace
from tests.runs import KILLED_WHILE_RUNNING, OLDER_VERSION, RELIABILITY_SECTIONS, refused_run, serving_model

CARD_FILES = (CARD_MD, CARD_HTML)  # what ModelCard adds beside a pushed model

NAME = "reliability"
Execution = metadata_store_pb2.Execution
BEFORE_TRANSFORM = ("CsvExampleGen", "ImportSchemaGen", "StatisticsGen", "ExampleValidator", "AnomalyGate")


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


def tree_digest(path: Path, skip: tuple[str, ...] = ()) -> str:
    """sha256 over every file's relative path and bytes; ``skip``: top-level file names left out."""
    digest = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.parent == path and p.name in skip:
            continue
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
    # The sequence's pipeline (tests/runs.py), without the older pushed version its first run gets.
    config, root = serving_model(Workspace(tmp_path), NAME, **RELIABILITY_SECTIONS), tmp_path / "outputs"
    holder = _hold_lock(config, root)
    try:
        started = time.monotonic()
        proc = refused_run(config, root)
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


def test_every_pusher_of_the_pipeline_is_atomic(tmp_path):
    # Checks the built pipeline (all targets: serving, the three variants, TFLite and TF.js of every
    # model) has no Pusher left on stock TFX's executor: each runs AtomicPusherExecutor, and the ids
    # are the stock ones the summary and the tests read (Pusher, Pusher_<target>).
    from tfx.components.pusher.component import Pusher

    from components.atomic_pusher.executor import AtomicPusherExecutor
    from pipeline.config import load_config
    from pipeline.pipeline_def import create_pipeline

    header, rows = sample_rows(200)
    config = derived_config(tmp_path, write_csv(tmp_path / "data" / "data.csv", header, rows).parent,
                            optimization=small_optimization(), deployment=small_deployment())
    pipeline = create_pipeline(load_config(config, output_root=tmp_path / "outputs"))
    pushers = {n.id: n for n in pipeline.components if isinstance(n, Pusher)}
    assert {"Pusher", "Pusher_mobile", "Pusher_web"} <= set(pushers), sorted(pushers)
    assert len(pushers) >= 6, sorted(pushers)  # serving + variants + on-device targets
    for node_id, node in pushers.items():
        assert node.executor_spec.executor_class is AtomicPusherExecutor, node_id


# ------------------------------------------------------------------ e2e: kill -9 and resume --
PHASES = ("Transform", "InfraValidator", "Pusher", "TFLiteConverter", "final")  # tests/runs.py, in order
RUN_OF = {"Transform": "reliability_transform", "InfraValidator": "reliability_infra",
          "Pusher": "reliability_pusher", "TFLiteConverter": "reliability_tflite", "final": "reliability_final"}


def running_execution(config: Path, root: Path, node: str) -> bool:
    """Whether MLMD shows ``node`` executing (registered RUNNING, not yet published COMPLETE)."""
    try:
        return any(e.last_known_state == Execution.RUNNING for e in Store(config, root).executions(node))
    except Exception:  # sqlite busy or not created yet while the run writes it
        return False


@pytest.fixture(scope="module")
def runs(pipeline_runs) -> dict:
    """The facts of the sequence, keyed as the tests read them: ``kill_<node>_code``, ``after_<node>``
    (every execution id once that run ended), ``killed_<node>`` and its outputs, ``final_*``."""
    facts: dict = {}
    for node in PHASES:
        result = pipeline_runs.wait(RUN_OF[node])
        tag = "final" if node == "final" else f"kill_{node}"
        facts[f"{tag}_code"], facts[f"{tag}_output"] = result.returncode, result.facts["output"]
        facts[f"after_{node}"] = result.facts["after"]
        if node != "final":
            facts[f"killed_{node}"] = result.facts["killed"]
            facts[f"killed_{node}_outputs"] = result.facts["killed_outputs"]
        facts.update({k: v for k, v in result.facts.items() if k in ("refused", "holder_log", "holder_pid")})
    facts["pushed_after_Pusher"] = pipeline_runs.wait("reliability_pusher").facts["pushed"]
    final = pipeline_runs.wait("reliability_final")
    facts["config"], facts["root"] = final.config, final.output_root
    facts["older"] = final.output_root / NAME / "pushed" / "serving" / "1"
    facts["store"] = Store(final.config, final.output_root)
    return facts


def new_executions(store: Store, node: str, before: set[int], after: set[int] | None = None) -> list:
    return [e for e in store.executions(node) if e.id not in before and (after is None or e.id in after)]


def next_run(node: str) -> tuple[str, str | None]:
    """The facts keys bounding the run after the one killed in ``node``."""
    i = PHASES.index(node)
    return f"after_{node}", f"after_{PHASES[i + 1]}"  # the family goes on (serving_canary): bounded


def finished_nodes(console: str) -> list[str]:
    """The nodes a run's console reports finished (resolvers have no execution of their own)."""
    names = re.findall(r"\(\d+/\d+\) (\S+) finished in", console)
    return [n for n in names if not n.endswith("_resolver")]


@pytest.mark.e2e
@pytest.mark.runs("reliability_transform")
def test_a_second_run_is_refused_while_the_first_runs(runs):
    # Checks the refusal against a real running pipeline: exit code 3, the first run's pid and log
    # file in the message; and that the runs after each kill -9 on the same root were not blocked by
    # a stale lock (each got as far as its kill, the last one completed).
    refused = runs["refused"]
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "another run of this pipeline is using" in refused.stderr
    assert runs["holder_log"] in refused.stderr
    assert f"pid {runs['holder_pid']} " in refused.stderr
    assert runs["final_code"] == 0, runs["final_output"][-3000:]


@pytest.mark.e2e
@pytest.mark.runs("reliability_transform")
@pytest.mark.parametrize("node", list(KILLED_WHILE_RUNNING))
def test_kill_9_resumes_from_the_cache_and_re_executes_the_killed_component(runs, node):
    # Checks, for a run killed while `node` executed: the killed execution never became COMPLETE;
    # the next run took every component the killed run finished from the cache (CACHED: not re-executed) and
    # re-executed `node` to COMPLETE; no execution of any run ever read an artifact of the killed
    # execution or anything under its output folders.
    store = runs["store"]
    assert runs[f"kill_{node}_code"] == -signal.SIGKILL
    killed = runs[f"killed_{node}"]
    assert killed.last_known_state == Execution.RUNNING
    assert store.store.get_executions_by_id([killed.id])[0].last_known_state == Execution.RUNNING
    before, after = next_run(node)
    finished = finished_nodes(runs[f"kill_{node}_output"])
    assert set(BEFORE_TRANSFORM) <= set(finished) or node == "Transform"
    assert node not in finished
    for earlier in finished:
        (execution,) = new_executions(store, earlier, runs[before], runs.get(after))
        assert execution.last_known_state == Execution.CACHED, earlier
    (again,) = new_executions(store, node, runs[before], runs.get(after))
    assert again.last_known_state == Execution.COMPLETE
    killed_ids = {a.id for a in runs[f"killed_{node}_outputs"]}
    killed_dir = f"/{node}/"
    for execution in store.store.get_executions():
        for artifact in store.artifacts(execution.id, *INPUTS):
            assert artifact.id not in killed_ids
            assert not (killed_dir in artifact.uri and Path(artifact.uri).name == str(killed.id)), artifact.uri


@pytest.mark.e2e
@pytest.mark.runs("reliability_transform")
def test_kill_9_in_transform_trainer_reads_the_re_executed_transform(runs):
    # Checks the Trainer that completed read both of Transform's outputs from the re-executed
    # Transform (not the killed one, not a missing input).
    store = runs["store"]
    (transform,) = new_executions(store, "Transform", runs["after_Transform"], runs["after_InfraValidator"])
    # The one Trainer that completed in the sequence ran in the run after the Transform kill (the
    # family's last run, serving_canary, trains again: not part of the sequence).
    (trainer,) = [e for e in new_executions(store, "Trainer", runs["after_Transform"], runs["after_final"])
                  if e.last_known_state == Execution.COMPLETE]
    new_outputs = {a.id for a in store.artifacts(transform.id, *OUTPUTS)}
    used = [a for a in store.artifacts(trainer.id, *INPUTS) if a.id in new_outputs]
    assert sorted(Path(a.uri).parent.name for a in used) == ["transform_graph", "transformed_examples"]
    assert all(Path(a.uri).name == str(transform.id) for a in used)


@pytest.mark.e2e
@pytest.mark.runs("reliability_transform")
def test_kill_9_in_pusher_leaves_no_partial_version_and_the_rerun_pushes_a_complete_one(runs):
    # Checks: killed between copy and rename, pushed/serving/ held no new numbered version (only the
    # older one and a staging folder); the plain re-run took everything before Pusher from the cache,
    # re-executed Pusher, removed the staging folder, and pushed a version identical to Trainer's
    # model; the older version is byte-identical throughout.
    store, out = runs["store"], runs["root"] / NAME
    assert runs["kill_Pusher_code"] == -signal.SIGKILL, runs["kill_Pusher_output"][-3000:]
    finished = finished_nodes(runs["kill_Pusher_output"])
    assert {"Transform", "Trainer", "InfraValidator", "Evaluator"} <= set(finished)
    numbered = [n for n in runs["pushed_after_Pusher"] if n.isdigit()]
    assert numbered == ["1"], runs["pushed_after_Pusher"]
    assert [n for n in runs["pushed_after_Pusher"] if n.startswith(".tmp-")], runs["pushed_after_Pusher"]
    assert runs["killed_Pusher"].last_known_state != Execution.COMPLETE
    for node in finished:
        (execution,) = new_executions(store, node, runs["after_Pusher"], runs["after_TFLiteConverter"])
        assert execution.last_known_state == Execution.CACHED, node
    (pusher,) = new_executions(store, "Pusher", runs["after_Pusher"], runs["after_TFLiteConverter"])
    assert pusher.last_known_state == Execution.COMPLETE
    (pushed_model,) = store.artifacts(pusher.id, *OUTPUTS)
    version = pushed_model.custom_properties["pushed_version"].string_value
    serving = out / "pushed" / "serving"
    assert sorted(p.name for p in serving.iterdir()) == ["1", version]  # staging removed, one new version
    (trainer_model,) = [a for a in store.artifacts(pusher.id, *INPUTS) if a.uri.startswith(
        str(store.cfg.pipeline_root / "Trainer"))]
    # The model files are Trainer's, byte for byte; ModelCard (after Pusher) added only its card.
    assert tree_digest(serving / version, skip=CARD_FILES) == tree_digest(Path(trainer_model.uri) / "Format-Serving")
    assert (runs["older"] / "saved_model.pb").read_bytes() == OLDER_VERSION
    assert sorted(p.name for p in runs["older"].iterdir()) == ["saved_model.pb"]


@pytest.mark.e2e
@pytest.mark.runs("reliability_transform")
def test_runs_lists_killed_runs_as_abandoned_without_a_finish_time(runs) -> None:
    # Checks `runs` (pipeline/metadata_cli.py) on the sequence's store: each run killed with SIGKILL is
    # ABANDONED with no finish time or duration, the node it was killed in still RUNNING and nothing
    # after it listed, no blessing and no push; the final run is COMPLETE. (Moved here from
    # tests/test_metadata_cli.py, whose own third run was killed while Trainer executed.)
    import io

    from pipeline import metadata_cli

    out = io.StringIO()
    assert metadata_cli.cmd_runs(runs["store"].cfg, True, out) == 0
    listed = json.loads(out.getvalue())
    # then serving_canary (tests/runs.py), the family's last run: Trainer again, to the end
    assert [r["status"] for r in listed] == ["ABANDONED"] * 4 + ["COMPLETE", "COMPLETE"]
    for r in listed[:4]:
        assert r["finished"] is None and r["seconds"] is None, r
    transform, infra = listed[0], listed[1]
    assert transform["nodes"]["Transform"] == "RUNNING" and "Trainer" not in transform["nodes"]
    assert transform["blessed"] is None and transform["pushed"] == {}
    assert infra["nodes"]["InfraValidator"] == "RUNNING" and infra["nodes"]["Transform"] == "COMPLETE"
    assert infra["blessed"] is None and "Pusher" not in infra["nodes"] and infra["pushed"] == {}
    assert listed[4]["finished"] is not None and listed[4]["nodes"]["TFLiteConverter"] == "COMPLETE"
