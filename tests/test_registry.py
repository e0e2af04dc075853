"""The registry (pipeline/registry.py): models.config with stable / canary labels, promote in two
steps, rollback from the history, refusals; and a real model server under REST + gRPC load while
labels move (issue 17).

Fast: no pipeline run. Two tiny real SavedModels answer differently (version 1: y = 2x, version
2: y = 3x), so every answer says which version made it.
"""

from __future__ import annotations

import http.client as http_client
import json
import threading
import time
from pathlib import Path

import grpc
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from pipeline import registry
from pipeline.registry import RegistryError
from serving import options
from tests.serving_fixtures import ServerProcess

FACTORS = {1: 2.0, 2: 3.0}  # version -> y / x
X = 1.5                      # answers: 3.0 from version 1, 4.5 from version 2


def _build(target: Path, factor: float) -> None:
    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            return {"y": x * factor}

    module = Module()
    tf.saved_model.save(module, str(target), signatures={"serving_default": module.serve})


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """Versions 1 and 2, built once; tests copy them into their own base folder."""
    root = tmp_path_factory.mktemp("registry_models")
    for version, factor in FACTORS.items():
        _build(root / str(version), factor)
    return root


@pytest.fixture
def base(models, tmp_path) -> Path:
    import shutil

    base = tmp_path / "pushed" / "serving"
    for version in FACTORS:
        shutil.copytree(models / str(version), base / str(version))
    return base


def _config(base: Path) -> model_server_config_pb2.ModelConfig:
    text = (base / registry.CONFIG_NAME).read_text()
    (model,) = text_format.Parse(text, model_server_config_pb2.ModelServerConfig()).model_config_list.config
    return model


def test_promote_without_server_lists_the_version_first_then_moves_the_label(base):
    """TF Serving's rule (a label names only a loaded version): the first promote only adds the
    version to the policy, labels untouched; the second moves the label. The file is a real
    ModelServerConfig that our server's option parser accepts, with the absolute base path."""
    first = registry.promote(base, "taxi", 1, "stable", blessed=True)
    assert not first.done
    model = _config(base)
    assert list(model.model_version_policy.specific.versions) == [1] and dict(model.version_labels) == {}
    assert registry.history(base) == []  # no label moved yet
    second = registry.promote(base, "taxi", 1, "stable", blessed=True)
    assert second.done
    model = _config(base)
    assert (model.name, model.base_path) == ("taxi", str(base.resolve()))
    assert list(model.model_version_policy.specific.versions) == [1]
    assert dict(model.version_labels) == {"stable": 1}
    (parsed,) = options.load_model_config_file(base / registry.CONFIG_NAME)
    assert dict(parsed.version_labels) == {"stable": 1}
    (entry,) = registry.history(base)
    assert (entry["action"], entry["label"], entry["from"], entry["to"]) == ("promote", "stable", None, 1)


def test_refusals_name_the_reason(base):
    """Unknown versions, unblessed or unrecorded versions (unless forced), unknown labels, and a
    rollback with nothing before it are refused, and a refusal changes no file."""
    with pytest.raises(RegistryError, match=r"version 7 is not a pushed version .*pushed: 1, 2"):
        registry.promote(base, "taxi", 7, "stable", blessed=True)
    with pytest.raises(RegistryError, match=r"not blessed.*--force"):
        registry.promote(base, "taxi", 2, "stable", blessed=False)
    with pytest.raises(RegistryError, match=r"no blessed push recorded.*--force"):
        registry.promote(base, "taxi", 2, "stable", blessed=None)
    with pytest.raises(RegistryError, match="unknown label 'gold'"):
        registry.promote(base, "taxi", 2, "gold", blessed=True)
    with pytest.raises(RegistryError, match="points at no version"):
        registry.rollback(base, "taxi", "stable")
    with pytest.raises(RegistryError, match="nothing was pushed to this target yet"):
        registry.rollback(base.parent / "mobile", "taxi", "stable")
    assert not (base / registry.CONFIG_NAME).exists() and registry.history(base) == []
    forced = registry.promote(base, "taxi", 2, "canary", blessed=False, force=True, wait=False)
    assert forced.done and _config(base).version_labels["canary"] == 2
    assert registry.history(base)[-1]["note"] == "forced"
    with pytest.raises(RegistryError, match="had no version before 2"):
        registry.rollback(base, "taxi", "canary")


def test_rollback_walks_the_history_back_and_keeps_its_target_loaded(base, models):
    """stable 1 -> 2 -> 3, then rollback twice: 3 -> 2 -> 1 (a stack, not a toggle). The version a
    rollback would go to stays in the version policy, so rolling back never waits for a load; an
    unlabelled version that is no rollback target leaves the policy."""
    import shutil

    shutil.copytree(models / "1", base / "3")
    for version in (1, 2, 3):
        assert registry.promote(base, "taxi", version, "stable", blessed=True, wait=False).done
    model = _config(base)
    assert model.version_labels["stable"] == 3
    assert sorted(model.model_version_policy.specific.versions) == [2, 3]  # 1: no longer a rollback target
    assert registry.rollback(base, "taxi", "stable", wait=False).message == "stable: 3 -> 2"
    model = _config(base)
    assert model.version_labels["stable"] == 2 and sorted(model.model_version_policy.specific.versions) == [1, 2]
    assert registry.rollback(base, "taxi", "stable", wait=False).message == "stable: 2 -> 1"
    assert _config(base).version_labels["stable"] == 1
    with pytest.raises(RegistryError, match="had no version before 1"):
        registry.rollback(base, "taxi", "stable")
    assert [(e["action"], e["from"], e["to"]) for e in registry.history(base)] == [
        ("promote", None, 1), ("promote", 1, 2), ("promote", 2, 3), ("rollback", 3, 2), ("rollback", 2, 1)]
    infos = {i.version: i for i in registry.list_versions(base)}
    assert [infos[v].labels for v in (1, 2, 3)] == [["stable"], [], []]
    assert [infos[v].listed for v in (1, 2, 3)] == [True, False, False]


def test_config_is_replaced_atomically_under_a_reader(base):
    """A reader polling models.config (like a server) while labels move 200 times must parse a
    complete config every time: written in place (truncate, write) it would see empty or partial
    files. No temp files stay behind."""
    registry.promote(base, "taxi", 1, "stable", blessed=True, wait=False)
    stop, reads, bad = threading.Event(), [0], []

    def reader() -> None:
        while not stop.is_set():
            try:
                model = _config(base)
                assert model.version_labels["stable"] == 1 and model.version_labels.get("canary", 1) in (1, 2)
                reads[0] += 1
            except Exception as exc:  # collected: the assertion below names it
                bad.append(repr(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(200):
            registry.promote(base, "taxi", 1 + i % 2, "canary", blessed=True, wait=False)
    finally:
        stop.set()
        thread.join()
    assert not bad, bad[:3]
    assert reads[0] > 20
    assert sorted(p.name for p in base.iterdir()) == sorted(
        ["1", "2", registry.CONFIG_NAME, registry.HISTORY_NAME, registry.LOCK_NAME])


# ------------------------------------------------------------------------ under load --

class Moves:
    """When each label named what: per label, its first version and the move windows
    (started, finished, old, new): a move is in progress from the promote call to its return."""

    def __init__(self, first: dict[str, int]):
        self.first = first
        self.windows: dict[str, list[tuple[float, float, int, int]]] = {label: [] for label in first}

    def allowed(self, label: str, sent: float, received: float) -> set[int]:
        """The versions ``label`` named at some instant of [sent, received] (both during a move)."""
        current, out = self.first[label], set()
        for started, finished, old, new in self.windows[label]:
            if started > received:
                break
            if finished >= sent:
                out |= {old, new}
            current = new
        return out | {current}


def _rest_worker(rest: str, label: str, stop: threading.Event, log: list, errors: list) -> None:
    host, port = rest.split(":")
    conn = http_client.HTTPConnection(host, int(port), timeout=60)
    body = json.dumps({"instances": [X]})
    while not stop.is_set():
        sent = time.monotonic()
        try:
            conn.request("POST", f"/v1/models/taxi/labels/{label}:predict", body=body,
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            text = response.read()
            if response.status != 200:
                errors.append(f"REST {label}: {response.status} {text[:200]!r}")
                continue
            y = json.loads(text)["predictions"][0]
        except Exception as exc:  # a failed request: counted, the test fails on it
            errors.append(f"REST {label}: {exc!r}")
            conn.close()
            conn = http_client.HTTPConnection(host, int(port), timeout=60)
            continue
        log.append(("rest", label, sent, time.monotonic(), y))
    conn.close()


def _grpc_worker(target: str, label: str, stop: threading.Event, log: list, errors: list) -> None:
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "taxi"
        request.model_spec.version_label = label
        request.inputs["x"].CopyFrom(tf.make_tensor_proto([X], dtype=tf.float32))
        while not stop.is_set():
            sent = time.monotonic()
            try:
                response = stub.Predict(request, timeout=60)
            except grpc.RpcError as exc:
                errors.append(f"gRPC {label}: {exc.code()} {exc.details()}")
                continue
            log.append(("grpc", label, sent, time.monotonic(), float(tf.make_ndarray(response.outputs["y"])[0])))


def _version_of(y: float) -> int:
    for version, factor in FACTORS.items():
        if abs(y - X * factor) < 1e-5:
            return version
    raise AssertionError(f"answer {y} is from no known version")


def test_labels_move_under_rest_and_grpc_load_without_a_failed_request(base, tmp_path):
    """A real server on the models.config promote writes (polled every second); 2 REST threads and
    1 gRPC thread per label hammer /labels/stable and /labels/canary while: canary -> 2,
    stable -> 2, rollback stable -> 1. Every request must succeed, and every answer must come
    from a version its label named while the request was in flight (during a move: old or new;
    once promote returned: only the new); then a promote of a broken version 3 is refused after
    the server fails to load it, and nothing changes. Promote waits for the server (--server): a one-step
    promote would label version 2 before it is loaded and the canary requests would get
    NOT_FOUND; a server that ignored labels would answer with one version for both."""
    registry.promote(base, "taxi", 1, "stable", blessed=True, wait=False)
    registry.promote(base, "taxi", 1, "canary", blessed=True, wait=False)
    server = ServerProcess([f"--model_config_file={base / registry.CONFIG_NAME}",
                            "--model_config_file_poll_wait_seconds=1"], tmp_path / "server.log")
    stop, log, errors = threading.Event(), [], []
    threads = [threading.Thread(target=_rest_worker, args=(server.rest, label, stop, log, errors))
               for label in ("stable", "canary") for _ in range(2)]
    threads += [threading.Thread(target=_grpc_worker, args=(server.grpc, label, stop, log, errors))
                for label in ("stable", "canary")]
    moves = Moves({"stable": 1, "canary": 1})
    try:
        for t in threads:
            t.start()
        time.sleep(2)
        for action, label, version in (("promote", "canary", 2), ("promote", "stable", 2),
                                       ("rollback", "stable", 1)):
            old = registry.read_state(base).labels[label]
            started = time.monotonic()
            if action == "promote":
                outcome = registry.promote(base, "taxi", version, label, blessed=True, server=server.rest,
                                           timeout=120)
            else:
                outcome = registry.rollback(base, "taxi", label, server=server.rest, timeout=120)
            moves.windows[label].append((started, time.monotonic(), old, version))
            assert outcome.done and outcome.state.labels[label] == version
            time.sleep(2)  # requests after the move completed
        # A broken push (saved_model.pb is garbage): the server fails to load it, promote says so,
        # takes it off the list again and leaves canary on 2; the load keeps being served.
        (base / "3").mkdir()
        (base / "3" / "saved_model.pb").write_bytes(b"not a SavedModel")
        before = (base / registry.CONFIG_NAME).read_text()
        with pytest.raises(RegistryError, match=r"failed to load taxi version 3: .*not a SavedModel"):
            registry.promote(base, "taxi", 3, "canary", blessed=True, force=True, server=server.rest, timeout=120)
        assert (base / registry.CONFIG_NAME).read_text() == before
        time.sleep(2)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=90)
        server.stop()
    assert not errors, f"{len(errors)} failed requests of {len(log) + len(errors)}: {errors[:5]}"
    wrong = [(kind, label, _version_of(y), moves.allowed(label, sent, got))
             for kind, label, sent, got, y in log if _version_of(y) not in moves.allowed(label, sent, got)]
    assert not wrong, f"{len(wrong)} answers from a version the label did not name: {wrong[:5]}"
    # Not vacuous: both protocols answered on both labels after every move, from the new version.
    last_done = {label: w[-1][1] for label, w in moves.windows.items()}
    for kind in ("rest", "grpc"):
        after = {label: {_version_of(y) for k, lb, sent, _, y in log if k == kind and lb == label
                         and sent > last_done[label]} for label in ("stable", "canary")}
        assert after == {"stable": {1}, "canary": {2}}, (kind, after)
    for label, (_, finished, _, new) in [("canary", moves.windows["canary"][0]),
                                         ("stable", moves.windows["stable"][0])]:
        assert sum(1 for _, lb, sent, _, y in log if lb == label and sent > finished
                   and _version_of(y) == new and sent < finished + 1.5) > 5, label
    assert len(log) > 200, len(log)
    counts = {f"{k} {lb}": sum(1 for kk, ll, *_ in log if (kk, ll) == (k, lb))
              for k in ("rest", "grpc") for lb in ("stable", "canary")}
    took = {f"{lb} -> {new}": round(finished - started, 1) for lb, w in moves.windows.items()
            for started, finished, _, new in w}
    print(f"\nunder load: {len(log)} requests, 0 failed, {counts}; moves (s): {took}")
