"""`python -m pipeline models / promote` on a real pushed model and its ML Metadata (issue 17).

One tiny pipeline run (1,500 rows, TINY_TRAINING, LIGHT_FEATURES, one Evaluator, started with the
session in the background) pushes one blessed version; the registry must find it in MLMD (the
Pusher's PushedModel, its run, the blessing the Pusher read, the Evaluator's metrics) and promote
it, and refuse a version on disk that no blessed push recorded.
"""

from __future__ import annotations

import json
import shutil

import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline.summary import open_store
from tests.conftest import newest_version, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.runs("tiny")]


@pytest.fixture(scope="module")
def run(pipeline_runs):
    """The shared tiny run's store (tests/runs.py): run 1 pushed a blessed version, run 2 was rejected."""
    tiny = pipeline_runs.wait("tiny")
    return tiny.cfg, tiny.facts["summary"]


def _cli(cfg, *args: str):
    return run_cli(*args, "--config", str(cfg.path), "--output-root", str(cfg.output_dir.parent), timeout=300)


def _models(cfg) -> dict[int, dict]:
    proc = _cli(cfg, "models", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {i["version"]: i for i in json.loads(proc.stdout)}


def test_models_reads_the_push_from_mlmd_and_promote_uses_its_blessing(run):
    """`models` lists the pushed version with what MLMD says about it, checked against sources it
    does not use: the run id is the Pusher execution's pipeline_run context, the path is the
    summary's pushed_path, the metrics are the summary's eval metrics (the run's report). Then
    promote (CLI) needs two calls without --server and labels it; a copy of it as a new version
    (on disk, not in MLMD) is refused without --force."""
    cfg, summary = run  # summary.json of run 1
    base = cfg.pushed_dir("serving")
    version = int(newest_version(base).name)
    assert summary["blessed"] is True and summary["pushed"] is True
    store = open_store(cfg)
    node = store.get_context_by_type_and_name("node", f"{cfg.name}.Pusher")
    pusher = min(store.get_executions_by_context(node.id), key=lambda e: e.id)  # run 1's, which pushed
    run_ids = [c.name for c in store.get_contexts_by_execution(pusher.id)
               if store.get_context_types_by_id([c.type_id])[0].name == "pipeline_run"]
    assert pusher.last_known_state == metadata_store_pb2.Execution.COMPLETE and len(run_ids) == 1

    listed = _models(cfg)
    info = listed[version]
    assert (info["blessed"], info["run_id"], info["path"]) == (True, run_ids[0], summary["pushed_path"])
    assert info["metrics"]["auc"] == pytest.approx(summary["metrics"]["eval"]["auc"])
    assert (info["labels"], info["listed"]) == ([], False)

    staged = _cli(cfg, "promote", "--version", str(version), "--label", "stable")
    assert staged.returncode == 4, staged.stdout + staged.stderr
    done = _cli(cfg, "promote", "--version", str(version), "--label", "stable")
    assert done.returncode == 0 and f"stable: - -> {version}" in done.stdout, done.stdout + done.stderr

    shutil.copytree(base / str(version), base / str(version + 1))  # a version no pipeline pushed
    try:
        _promote_unrecorded(cfg, version)
    finally:  # the store is shared (tests/runs.py): the next reader sees only what the runs pushed
        shutil.rmtree(base / str(version + 1))


def _promote_unrecorded(cfg, version: int) -> None:
    refused = _cli(cfg, "promote", "--version", str(version + 1), "--label", "canary")
    assert refused.returncode == 1 and "no blessed push recorded" in refused.stderr, refused.stderr
    forced = _cli(cfg, "promote", "--version", str(version + 1), "--label", "canary", "--force", "--no-wait")
    assert forced.returncode == 0, forced.stderr
    listed = _models(cfg)
    assert [(listed[v]["labels"], listed[v]["listed"], listed[v]["blessed"]) for v in (version, version + 1)] == [
        (["stable"], True, True), (["canary"], True, None)]
