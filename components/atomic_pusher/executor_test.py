"""AtomicPusher on a real (tiny) SavedModel: versions appear by rename, are never overwritten,
collide into the next number, and a staging folder is invisible to serving.manager."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow as tf
from tensorflow_serving.config import model_server_config_pb2
from tfx import v1 as tfx
from tfx.types import standard_artifacts

from components.atomic_pusher import AtomicPusher, executor
from serving.manager import ModelManager

ROOT = Path(__file__).resolve().parents[2]


def _save_model(path: Path, factor: float) -> Path:
    """A real SavedModel whose answer (x * factor) tells versions apart."""
    module = tf.Module()
    module.f = tf.function(lambda x: {"y": x * factor}, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.f})
    return path


@pytest.fixture(scope="module")
def model_artifact(tmp_path_factory) -> Path:
    """A Model artifact folder laid out as Trainer's (``<uri>/Format-Serving`` is what is pushed)."""
    uri = tmp_path_factory.mktemp("model")
    _save_model(uri / "Format-Serving", 3.0)
    return uri


def tree_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        digest.update(str(p.relative_to(path)).encode() + (p.read_bytes() if p.is_file() else b"/"))
    return digest.hexdigest()


def _do(model_uri: Path, base: Path, pushed_uri: Path, blessed: int | None = 1) -> standard_artifacts.PushedModel:
    """Runs the executor's Do as TFX's launcher does, with real artifacts."""
    model = standard_artifacts.Model()
    model.uri = str(model_uri)
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(pushed_uri)
    inputs: dict = {"model": [model]}
    if blessed is not None:
        blessing = standard_artifacts.ModelBlessing()
        blessing.uri = str(pushed_uri.parent / "blessing")
        blessing.set_int_custom_property("blessed", blessed)
        inputs["model_blessing"] = [blessing]
    destination = tfx.proto.PushDestination(filesystem=tfx.proto.PushDestination.Filesystem(base_directory=str(base)))
    from tfx.utils import proto_utils

    executor.AtomicPusherExecutor().Do(inputs, {"pushed_model": [pushed]},
                                       {"push_destination": proto_utils.proto_to_json(destination)})
    return pushed


def test_push_writes_a_complete_loadable_version_and_the_stock_properties(model_artifact, tmp_path):
    # Checks the executor pushes the real model (it loads and answers 3x) and sets stock Pusher's
    # properties on PushedModel (pushed, pushed_destination = the version folder, pushed_version).
    base = tmp_path / "pushed"
    pushed = _do(model_artifact, base, tmp_path / "archive")
    (version,) = executor.numbered_versions(base)
    assert pushed.get_int_custom_property("pushed") == 1
    assert pushed.get_string_custom_property("pushed_destination") == str(base / str(version))
    assert pushed.get_string_custom_property("pushed_version") == str(version)
    assert abs(version - time.time()) < 60  # Unix-time versions, as stock Pusher
    loaded = tf.saved_model.load(str(base / str(version)))
    assert loaded.signatures["serving_default"](tf.constant([2.0]))["y"].numpy().tolist() == [6.0]
    assert tree_digest(base / str(version)) == tree_digest(model_artifact / "Format-Serving")
    assert (tmp_path / "archive" / "saved_model.pb").is_file()  # the archive copy, as stock Pusher
    assert [p.name for p in base.iterdir()] == [str(version)]  # no staging folder left behind


def test_unblessed_model_is_not_pushed(model_artifact, tmp_path):
    # Checks the stock blessing check is kept: blessed=0 -> nothing in base, pushed=0.
    pushed = _do(model_artifact, tmp_path / "pushed", tmp_path / "archive", blessed=0)
    assert pushed.get_int_custom_property("pushed") == 0
    assert not (tmp_path / "pushed").exists() or not list((tmp_path / "pushed").iterdir())


def test_existing_version_is_never_overwritten_and_a_collision_gets_the_next_number(tmp_path):
    # Checks a push at a time whose folder exists goes to the next free number, above every existing
    # version (so a 'latest' policy serves it), and leaves older versions byte-identical.
    src = _save_model(tmp_path / "new", 5.0)
    base = tmp_path / "pushed"
    old = _save_model(base / "1000", 1.0)
    newer = _save_model(base / "1001", 2.0)
    before = tree_digest(old), tree_digest(newer)
    version, path = executor.push_atomically(src, base, now=1000)  # same second as version 1000
    assert (version, path) == (1002, base / "1002")
    assert (tree_digest(old), tree_digest(newer)) == before
    assert tree_digest(path) == tree_digest(src)
    again, _ = executor.push_atomically(src, base, now=1000)
    assert again == 1003
    later, _ = executor.push_atomically(src, base, now=5000)  # the clock wins when it is ahead
    assert later == 5000
    assert executor.numbered_versions(base) == [1000, 1001, 1002, 1003, 5000]
    assert (tree_digest(old), tree_digest(newer)) == before


def test_staging_folder_is_ignored_by_the_model_server(model_artifact, tmp_path):
    # Checks serving.manager lists only the numbered version: a staging folder holding a complete
    # SavedModel with a higher number in its name is never loaded (a server polling pushed/ cannot
    # serve a version that is still being written).
    base = tmp_path / "pushed"
    _save_model(base / "7", 1.0)
    staging = _save_model(base / f"{executor.STAGING_PREFIX}9-{'0' * 32}", 9.0)
    assert staging.name.startswith(".")  # hidden: TF Serving's file-system source skips it too (non-numeric)
    manager = ModelManager((model_server_config_pb2.ModelConfig(name="m", base_path=str(base)),), poll_seconds=0)
    manager.start()
    try:
        assert manager.resolve("m").version == 7
        assert [s.version for s in manager.status("m")] == [7]
    finally:
        manager.stop()


def test_a_push_killed_before_the_rename_leaves_no_version_and_the_next_push_cleans_up(model_artifact, tmp_path):
    # Checks kill -9 between copy and rename (the test hook in a real child process) leaves only a
    # staging folder (no numbered version, nothing a server would load), that the next push removes
    # it and writes a complete version, and that an older version survives both.
    base = tmp_path / "pushed"
    old = _save_model(base / "1", 1.0)
    before = tree_digest(old)
    code = ("import sys; from pathlib import Path; from components.atomic_pusher import executor; "
            "executor.push_atomically(Path(sys.argv[1]), Path(sys.argv[2]))")
    proc = subprocess.run([sys.executable, "-c", code, str(model_artifact / "Format-Serving"), str(base)],
                          cwd=ROOT, env={**os.environ, executor.FAULT_ENV: "pusher:after_copy",
                                         "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    (stale,) = [p for p in base.iterdir() if p.name.startswith(executor.STAGING_PREFIX)]
    assert (stale / "saved_model.pb").is_file()  # the copy had completed: only the rename was missing
    assert executor.numbered_versions(base) == [1]
    version, path = executor.push_atomically(model_artifact / "Format-Serving", base)
    assert not stale.exists()
    assert executor.numbered_versions(base) == [1, version]
    assert tree_digest(path) == tree_digest(model_artifact / "Format-Serving")
    assert tree_digest(old) == before


def test_component_pushes_through_the_atomic_executor_in_a_pipeline(model_artifact, tmp_path):
    # Checks the component class really runs AtomicPusherExecutor in TFX (LocalDagRunner, MLMD): a
    # version already at this second's number is kept and the push lands on the next number, which
    # stock Pusher would have skipped ("already exists, skipping current push").
    base = tmp_path / "pushed"
    now = int(time.time())
    _save_model(base / str(now), 1.0)
    for v in range(now + 1, now + 120):  # the next two minutes taken
        shutil.copytree(base / str(now), base / str(v))
    before = {v: tree_digest(base / str(v)) for v in range(now, now + 120)}
    imported = tfx.dsl.Importer(source_uri=str(model_artifact), artifact_type=standard_artifacts.Model
                                ).with_id("import_model")
    pusher = AtomicPusher(model=imported.outputs["result"], push_destination=tfx.proto.PushDestination(
        filesystem=tfx.proto.PushDestination.Filesystem(base_directory=str(base)))).with_id("Pusher")
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name="atomic_pusher_test", pipeline_root=str(tmp_path / "root"), components=[imported, pusher],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(tmp_path / "m.sqlite"))))
    assert executor.numbered_versions(base)[-1] == now + 120
    assert tree_digest(base / str(now + 120)) == tree_digest(model_artifact / "Format-Serving")
    assert {v: tree_digest(base / str(v)) for v in range(now, now + 120)} == before  # untouched


def test_concurrent_pushes_to_one_folder_all_land_complete_and_distinct(model_artifact, tmp_path):
    # Checks eight pushes at once, all in the same second, to one folder (the flock serialises them):
    # eight distinct versions, each a complete copy; none lost to another's stale-staging cleanup.
    from concurrent.futures import ThreadPoolExecutor

    src, base = model_artifact / "Format-Serving", tmp_path / "pushed"
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: executor.push_atomically(src, base, now=1000), range(8)))
    assert sorted(v for v, _ in results) == list(range(1000, 1008))
    assert executor.numbered_versions(base) == list(range(1000, 1008))
    assert {tree_digest(p) for _, p in results} == {tree_digest(src)}
    assert not [p for p in base.iterdir() if not p.name.isdigit()]
