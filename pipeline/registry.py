"""Model registry: pushed versions, and `stable` / `canary` labels moved by promote and rollback.

The pushed versions of a target are the all-digit folders of ``outputs/<name>/pushed/<target>/``
(as the Pusher writes them and a model server lists them). Beside them this module keeps

- ``models.config``: a TF Serving ``ModelServerConfig`` text proto (one ``model_config_list``
  entry: the target's base_path, ``model_version_policy { specific { versions } }`` and
  ``version_labels``). Give it to the server with ``--model_config_file=...
  --model_config_file_poll_wait_seconds=1`` (ours or ``tensorflow_model_server``); the server
  re-reads it and clients address ``/v1/models/<name>/labels/stable`` (gRPC:
  ``model_spec.version_label``). It is replaced atomically (temp file + fsync + rename), so a
  polling server never reads half a file.
- ``models.history.jsonl``: one JSON line per label move (time, user, label, from, to, action);
  ``rollback`` replays it as a stack per label, so repeated rollbacks walk back in order.

Versions listed in the policy: the labelled ones plus each label's rollback target, so a
rollback only moves a label onto a version that is already loaded. Unlabelled, unlisted
versions are not served.

TF Serving's rule: a label may only name a version that is already AVAILABLE (unless the
server runs with ``--allow_version_labels_for_unavailable_models``). So ``promote`` is two
writes: (1) list the new version, labels unchanged, and wait until the server (``--server
HOST:REST_PORT``) reports it AVAILABLE; (2) move the label, and wait until the label answers
from it. Without ``--server`` step (1) is written and the command stops: run it again once
the server has loaded the version (or pass ``--no-wait`` when the server allows unavailable
labels). A version the server fails to load is taken off the list again, the label not moved.

Who decides: a version is promotable if its push is in ML Metadata with a blessed model
(the Pusher's input ModelBlessing); ``--force`` promotes an unblessed or unrecorded version.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CONFIG_NAME = "models.config"
HISTORY_NAME = "models.history.jsonl"
LOCK_NAME = ".models.lock"
LABELS = ("stable", "canary")


class RegistryError(Exception):
    """A refused promote / rollback, with the reason for a person."""


@dataclass
class VersionInfo:
    version: int
    path: str
    blessed: bool | None = None          # None: no record of this push in ML Metadata
    run_id: str | None = None            # the pipeline run that pushed it
    metrics: dict[str, float] = field(default_factory=dict)  # the Evaluator's overall metrics
    labels: list[str] = field(default_factory=list)
    listed: bool = False                 # in models.config's version policy (served)


@dataclass
class State:
    """models.config as the registry writes it."""
    versions: set[int] = field(default_factory=set)
    labels: dict[str, int] = field(default_factory=dict)


# -- files -------------------------------------------------------------------------------------

def on_disk(base: Path) -> list[int]:
    """Versions a server would load: all-digit folders with a saved_model.pb."""
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir()
                  if p.name.isdigit() and p.is_dir() and (p / "saved_model.pb").is_file())


def read_state(base: Path) -> State:
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    path = base / CONFIG_NAME
    if not path.exists():
        return State()
    config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    return State(set(model.model_version_policy.specific.versions), dict(model.version_labels))


def config_text(base: Path, model_name: str, state: State) -> str:
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add(name=model_name, base_path=str(base.resolve()),
                                                model_platform="tensorflow")
    model.model_version_policy.specific.versions.extend(sorted(state.versions))
    for label, version in sorted(state.labels.items()):
        model.version_labels[label] = version
    return text_format.MessageToString(config)


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # a reader sees the old file or the new one, never a mix
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_state(base: Path, model_name: str, state: State) -> bool:
    """Write models.config if it changes; True if written."""
    text = config_text(base, model_name, state)
    path = base / CONFIG_NAME
    if path.exists() and path.read_text() == text:
        return False
    _write_atomically(path, text)
    return True


def history(base: Path) -> list[dict[str, Any]]:
    path = base / HISTORY_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _append_history(base: Path, entry: dict[str, Any]) -> None:
    with (base / HISTORY_NAME).open("a") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def rollback_stack(entries: list[dict[str, Any]], label: str) -> list[int | None]:
    """The versions ``label`` came from, oldest first: a promote pushes its ``from``, a rollback pops."""
    stack: list[int | None] = []
    for entry in entries:
        if entry["label"] != label:
            continue
        if entry["action"] == "promote":
            stack.append(entry["from"])
        elif stack:
            stack.pop()
    return stack


def served_versions(labels: dict[str, int], entries: list[dict[str, Any]]) -> set[int]:
    """Labelled versions plus each label's rollback target (kept loaded: rollback is instant)."""
    keep = set(labels.values())
    for label in labels:
        stack = rollback_stack(entries, label)
        if stack and stack[-1] is not None:
            keep.add(stack[-1])
    return keep


@contextmanager
def _locked(base: Path) -> Iterator[None]:
    """One promote / rollback at a time per target (flock: released if the holder dies)."""
    if not base.is_dir():
        raise RegistryError(f"{base} does not exist: nothing was pushed to this target yet")
    with (base / LOCK_NAME).open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield


# -- the server --------------------------------------------------------------------------------

def _get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def server_state(server: str, model_name: str, version: int | None = None,
                 label: str | None = None) -> tuple[int | None, str, str]:
    """(version, state, error message) the server reports for a version or label; (None, "", why) if unknown."""
    path = f"/versions/{version}" if version is not None else f"/labels/{label}"
    try:
        status, body = _get_json(f"http://{server}/v1/models/{model_name}{path}")
    except (OSError, ValueError) as exc:
        return None, "", f"{type(exc).__name__}: {exc}"
    if status != 200:
        return None, "", str(body.get("error", body))
    vs = body["model_version_status"][0]
    return int(vs["version"]), vs["state"], vs.get("status", {}).get("error_message", "")


def wait_until(server: str, model_name: str, timeout: float, *, version: int | None = None,
               label: str | None = None, expect: int | None = None,
               sleep: Callable[[float], None] = time.sleep) -> None:
    """Until the server reports ``version`` (or ``label`` -> ``expect``) AVAILABLE; RegistryError
    when the load failed (END with an error) or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    what = f"version {version}" if version is not None else f"label {label} -> {expect}"
    last = ""
    while True:
        got, state, error = server_state(server, model_name, version=version, label=label)
        if got == (version if version is not None else expect) and state == "AVAILABLE":
            return
        if version is not None and got == version and state == "END" and error:
            raise RegistryError(f"the server at {server} failed to load {model_name} version {version}: {error}")
        last = f"{got} {state} {error}".strip()
        if time.monotonic() > deadline:
            raise RegistryError(f"timed out after {timeout:.0f}s waiting for {what} of {model_name} to be "
                                f"AVAILABLE on {server} (last: {last or 'no answer'}); is it running with "
                                f"--model_config_file={CONFIG_NAME} and --model_config_file_poll_wait_seconds?")
        sleep(0.2)


# -- promote / rollback ------------------------------------------------------------------------

@dataclass
class Outcome:
    done: bool                           # False: step (1) written, run again once loaded
    message: str
    state: State


def _check_version(base: Path, version: int, blessed: bool | None, force: bool) -> None:
    versions = on_disk(base)
    if version not in versions:
        raise RegistryError(f"version {version} is not a pushed version in {base} "
                            f"(pushed: {', '.join(map(str, versions)) or 'none'})")
    if blessed is not True and not force:
        why = "was not blessed by the Evaluator" if blessed is False else "has no blessed push recorded in ML Metadata"
        raise RegistryError(f"version {version} {why}; pass --force to promote it anyway")


def _move(base: Path, model_name: str, label: str, version: int, action: str, server: str | None,
          wait: bool, timeout: float, note: str = "") -> Outcome:
    """Both steps of a label move (the lock is held by the caller)."""
    state = read_state(base)
    entries = history(base)
    old = state.labels.get(label)
    if old == version:
        return Outcome(True, f"{label} already points at version {version}", state)
    listed = version in state.versions
    if not listed:  # step 1: load it first, labels unchanged
        write_state(base, model_name, State(state.versions | {version}, dict(state.labels)))
        if wait and server is None:
            return Outcome(False, f"version {version} listed in {base / CONFIG_NAME}; {label} not moved yet: "
                                  f"run this again once the server reports it AVAILABLE "
                                  f"(or give --server to wait here)", read_state(base))
    if wait and server is not None:  # listed or not: the label moves only onto a loaded version
        try:
            wait_until(server, model_name, timeout, version=version)
        except RegistryError:
            if not listed:
                write_state(base, model_name, state)  # take the failed version off the list again
            raise
    entry = {"time": datetime.now(UTC).isoformat(timespec="seconds"), "user": getpass.getuser(),
             "action": action, "label": label, "from": old, "to": version, "note": note}
    labels = {**state.labels, label: version}
    new = State(served_versions(labels, [*entries, entry]), labels)
    write_state(base, model_name, new)
    _append_history(base, entry)
    if server is not None and wait:
        wait_until(server, model_name, timeout, label=label, expect=version)
    return Outcome(True, f"{label}: {old if old is not None else '-'} -> {version}", new)


def promote(base: Path, model_name: str, version: int, label: str, *, blessed: bool | None,
            force: bool = False, server: str | None = None, wait: bool = True,
            timeout: float = 300.0) -> Outcome:
    if label not in LABELS:
        raise RegistryError(f"unknown label {label!r}: use one of {', '.join(LABELS)}")
    _check_version(base, version, blessed, force)
    with _locked(base):
        return _move(base, model_name, label, version, "promote", server, wait, timeout,
                     note="forced" if force and blessed is not True else "")


def rollback(base: Path, model_name: str, label: str, *, server: str | None = None, wait: bool = True,
             timeout: float = 300.0) -> Outcome:
    """Move ``label`` back to the version it named before its last promote."""
    with _locked(base):
        labels = read_state(base).labels
        if label not in labels:
            raise RegistryError(f"label {label!r} points at no version in {base / CONFIG_NAME}: nothing to roll back")
        stack = rollback_stack(history(base), label)
        if not stack or stack[-1] is None:
            raise RegistryError(f"label {label!r} had no version before {labels[label]}: nothing to roll back to")
        target = stack[-1]
        if target not in on_disk(base):
            raise RegistryError(f"cannot roll {label} back to version {target}: {base / str(target)} is gone")
        return _move(base, model_name, label, target, "rollback", server, wait, timeout)


# -- listing -----------------------------------------------------------------------------------

def list_versions(base: Path, recorded: dict[int, VersionInfo] | None = None) -> list[VersionInfo]:
    """Every pushed version, newest first, with what ML Metadata knows and the labels naming it."""
    state = read_state(base)
    recorded = recorded or {}
    out = []
    for version in reversed(on_disk(base)):
        info = recorded.get(version) or VersionInfo(version, str(base / str(version)))
        info.labels = sorted(label for label, v in state.labels.items() if v == version)
        info.listed = version in state.versions
        out.append(info)
    return out


def _custom(artifact: Any, key: str) -> Any:
    if key not in artifact.custom_properties:
        return None
    value = artifact.custom_properties[key]
    return getattr(value, value.WhichOneof("value"))


def recorded_pushes(store: Any, base: Path, with_metrics: bool = True) -> dict[int, VersionInfo]:
    """version -> what ML Metadata recorded about its push into ``base``: the PushedModel artifact
    (pushed_destination, pushed_version), its run (pipeline_run context), the blessing the Pusher
    read, and the metrics of the Evaluator that made that blessing."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    base = base.resolve()
    out: dict[int, VersionInfo] = {}
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    for artifact in store.get_artifacts_by_type("PushedModel"):
        destination = _custom(artifact, "pushed_destination")
        if _custom(artifact, "pushed") != 1 or not destination or Path(destination).resolve().parent != base:
            continue
        version = int(_custom(artifact, "pushed_version") or Path(destination).name)
        info = VersionInfo(version, destination)
        runs = [c.name for c in store.get_contexts_by_artifact(artifact.id)
                if store.get_context_types_by_id([c.type_id])[0].name == "pipeline_run"]
        info.run_id = runs[0] if runs else None
        producers = [e.execution_id for e in store.get_events_by_artifact_ids([artifact.id])
                     if e.type == pb.Event.OUTPUT]
        inputs = [e.artifact_id for e in store.get_events_by_execution_ids(producers) if e.type == pb.Event.INPUT]
        for blessing in store.get_artifacts_by_id(inputs):
            if type_names.get(blessing.type_id) != "ModelBlessing":
                continue
            info.blessed = _custom(blessing, "blessed") == 1
            if with_metrics:
                info.metrics = _evaluator_metrics(store, blessing.id, type_names)
        out[version] = info
    return out


def _evaluator_metrics(store: Any, blessing_id: int, type_names: dict[int, str]) -> dict[str, float]:
    from ml_metadata.proto import metadata_store_pb2 as pb

    from pipeline.summary import overall_metrics

    evaluator = [e.execution_id for e in store.get_events_by_artifact_ids([blessing_id]) if e.type == pb.Event.OUTPUT]
    outputs = [e.artifact_id for e in store.get_events_by_execution_ids(evaluator) if e.type == pb.Event.OUTPUT]
    for artifact in store.get_artifacts_by_id(outputs):
        if type_names.get(artifact.type_id) == "ModelEvaluation":
            return overall_metrics(artifact.uri)
    return {}


def format_versions(infos: list[VersionInfo], metric_names: tuple[str, ...]) -> str:
    header = f"{'version':<12}{'labels':<15}{'served':<8}{'blessed':<9}" + "".join(
        f"{m[:14]:>15}" for m in metric_names) + "  run"
    lines = [header]
    for i in infos:
        blessed = "?" if i.blessed is None else ("yes" if i.blessed else "no")
        metrics = "".join(f"{i.metrics[m]:>15.4f}" if m in i.metrics else f"{'-':>15}" for m in metric_names)
        lines.append(f"{i.version:<12}{','.join(i.labels) or '-':<15}{'yes' if i.listed else 'no':<8}"
                     f"{blessed:<9}{metrics}  {i.run_id or '-'}")
    return "\n".join(lines)


def to_json(infos: list[VersionInfo]) -> str:
    return json.dumps([asdict(i) for i in infos], indent=1, sort_keys=True)
