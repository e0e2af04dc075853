"""AtomicPusherExecutor: stock Pusher, except how the model reaches ``<base_directory>``.

Stock TFX copies file by file straight into ``<base>/<unix time>`` (saved_model.pb last): a
server polling ``<base>`` can list a version that is still being written, a push killed halfway
leaves a partial version there for ever, and two pushes in the same second meet in one folder
(the second is silently skipped). Here, under an exclusive lock on ``<base>``:

1. ``.tmp-*`` folders left by a killed push are removed (nobody else can be writing one: the lock);
2. the model is copied to ``<base>/.tmp-<version>-<uuid>`` and fsynced (files, then folders);
3. the staging folder is renamed to ``<base>/<version>`` (atomic on one POSIX file system) and
   ``<base>`` is fsynced. ``<version>`` is the Unix time, or one more than the newest numbered
   folder when that is not older: a new push is always the newest version, and an existing
   version is never overwritten or deleted.

TF Serving and serving/manager.py only take all-digit folder names as versions, so neither ever
sees a staging folder. The lock is ``flock`` on the folder itself: the kernel drops it when the
holder dies, so a kill -9 leaves no stale lock (and no extra file in ``<base>``).

Test hook: ``PIPELINE_FAULT_KILL_AT=pusher:after_copy`` makes the process SIGKILL itself after the
staging copy and before the rename (tests/test_run_reliability.py); never set it otherwise.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from absl import logging
from tfx.components.pusher import executor as pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

STAGING_PREFIX = ".tmp-"
FAULT_ENV = "PIPELINE_FAULT_KILL_AT"
_Versioning = pusher_pb2.Versioning


def _fault(point: str) -> None:
    """Test hook: die like kill -9 at ``point`` when PIPELINE_FAULT_KILL_AT names it."""
    if os.environ.get(FAULT_ENV) == point:
        logging.warning("%s=%s: killing this process (test hook)", FAULT_ENV, point)
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_synced(src: Path, dst: Path) -> None:
    """``src``'s tree to the new folder ``dst``, each file and folder fsynced (a rename after a crash
    must not reveal empty files: the rename is journalled, the data may not be)."""
    shutil.copytree(src, dst)
    folders = []
    for root, _, files in os.walk(dst):
        folders.append(Path(root))
        for name in files:
            fd = os.open(Path(root) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for folder in reversed(folders):  # deepest first, dst last
        _fsync_dir(folder)


@contextmanager
def locked(base: Path) -> Iterator[None]:
    """An exclusive flock on the folder ``base`` for the block (released by the kernel if we die)."""
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def numbered_versions(base: Path) -> list[int]:
    """The versions in ``base`` as a model server sees them: all-digit folder names."""
    return sorted(int(p.name) for p in base.iterdir() if p.name.isdigit() and p.is_dir())


def remove_stale_staging(base: Path) -> list[Path]:
    """Remove ``.tmp-*`` folders of killed pushes; call with ``base`` locked."""
    stale = [p for p in base.iterdir() if p.name.startswith(STAGING_PREFIX)]
    for path in stale:
        logging.warning("Removing %s, left by an interrupted push", path)
        shutil.rmtree(path, ignore_errors=True)
    return stale


def push_atomically(model_path: Path, base: Path, now: int | None = None) -> tuple[int, Path]:
    """Copy ``model_path`` to a new version in ``base``, atomically; (version, its folder)."""
    base.mkdir(parents=True, exist_ok=True)
    with locked(base):
        remove_stale_staging(base)
        versions = numbered_versions(base)
        version = max(int(time.time()) if now is None else now, versions[-1] + 1 if versions else 0)
        staging = base / f"{STAGING_PREFIX}{version}-{uuid.uuid4().hex}"
        _copy_synced(model_path, staging)
        _fault("pusher:after_copy")
        while True:
            target = base / str(version)
            if not target.exists():  # rename() would replace an empty folder: look first (we hold the lock)
                try:
                    os.rename(staging, target)
                    break
                except OSError:  # appeared meanwhile (a writer that does not take the lock)
                    pass
            version += 1
        _fsync_dir(base)
    return version, target


class AtomicPusherExecutor(pusher_executor.Executor):
    """Stock Pusher's Do (blessing checks, PushedModel properties, archive copy) with an atomic,
    never-overwriting push to a local file system."""

    def Do(self, input_dict: dict[str, list[Any]], output_dict: dict[str, list[Any]],
           exec_properties: dict[str, Any]) -> None:
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise NotImplementedError(f"AtomicPusher pushes to a file system, not {destination}")
        fs = destination.filesystem
        if "://" in fs.base_directory:  # gs://, s3://: no atomic rename, no flock: stock behaviour
            logging.warning("%s is not a local folder: pushing as stock Pusher (not atomic)", fs.base_directory)
            super().Do(input_dict, output_dict, exec_properties)
            return
        if fs.versioning not in (_Versioning.AUTO, _Versioning.UNIX_TIMESTAMP):
            raise NotImplementedError(f"Invalid Versioning {fs.versioning}")
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        model_path = self.GetModelPath(input_dict)
        version, serving_path = push_atomically(Path(model_path), Path(fs.base_directory))
        logging.info("Model written to serving path %s.", serving_path)
        io_utils.copy_dir(model_path, model_push.uri)  # the archive copy, as stock Pusher
        self._MarkPushed(model_push, pushed_destination=str(serving_path), pushed_version=str(version))
        logging.info("Model pushed to %s.", model_push.uri)
