"""Models and their versions: TF Serving's file-system source, version policy and hot reload.

Every ``file_system_poll_wait_seconds`` each model's base path is listed; numeric folders with a
``saved_model.pb`` are versions. The policy (latest N, all, specific) picks the wanted ones. New
versions are loaded before old ones are retired (TF Serving's availability-preserving policy),
and a request holds a reference to the servable it resolved, so a swap never fails a request.
An old version is retired only once a wanted version is AVAILABLE: a broken push leaves the
previous model serving (its status shows the error).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from serving.status import invalid, not_found
from serving.warmup import warm_up

log = logging.getLogger("serving")

# get_model_status.proto's ModelVersionStatus.State names.
START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"
MAX_LOAD_ATTEMPTS = 5  # TF Serving's --max_num_load_retries default


@dataclass(frozen=True)
class Signature:
    name: str
    fn: Any                              # the ConcreteFunction
    inputs: dict[str, tf.TensorSpec]     # alias -> spec
    outputs: tuple[str, ...]
    method_name: str


@dataclass(eq=False)
class Servable:
    model: str
    version: int
    path: Path
    loaded: Any                          # keeps the SavedModel's resources alive
    signatures: dict[str, Signature]
    signature_def_map: Any               # SignatureDefMap proto (metadata)
    retired: bool = False                # set when unloaded; in-flight requests still finish

    def signature(self, name: str) -> Signature:
        sig = self.signatures.get(name or "serving_default")
        if sig is None:
            raise not_found(f'Serving signature key "{name or "serving_default"}" not found. '
                            f"Signatures: {', '.join(sorted(self.signatures))}")
        return sig


@dataclass
class VersionState:
    version: int
    state: str = START
    error: str = ""
    servable: Servable | None = None
    attempts: int = 0
    stamp: float = 0.0                   # saved_model.pb mtime of the last attempt


@dataclass
class ModelEntry:
    config: Any                          # tensorflow_serving.config.ModelConfig
    versions: dict[int, VersionState] = field(default_factory=dict)


def _saved_model_file(path: Path) -> Path | None:
    for name in ("saved_model.pb", "saved_model.pbtxt"):
        if (path / name).is_file():
            return path / name
    return None


def load_servable(model: str, version: int, path: Path) -> Servable:
    """Loads a SavedModel's ``serve`` MetaGraph; raises with the path and the cause on failure."""
    pb = _saved_model_file(path)
    if pb is None:
        raise FileNotFoundError(f"{path}: no saved_model.pb")
    proto = saved_model_pb2.SavedModel()
    try:
        if pb.suffix == ".pbtxt":
            from google.protobuf import text_format
            text_format.Parse(pb.read_text(), proto)
        else:
            proto.ParseFromString(pb.read_bytes())
    except Exception as exc:  # DecodeError / ParseError say nothing about which file
        raise ValueError(f"{pb}: not a SavedModel ({type(exc).__name__}: {exc})") from None
    metas = [m for m in proto.meta_graphs if "serve" in m.meta_info_def.tags]
    if not metas:
        raise ValueError(f"{path}: no MetaGraph with the tag 'serve'")
    loaded = tf.saved_model.load(str(path), tags=["serve"])
    signatures = {}
    for name, sdef in metas[0].signature_def.items():
        if name not in loaded.signatures:
            continue  # e.g. __saved_model_init_op: listed in metadata, not callable
        fn = loaded.signatures[name]
        specs = fn.structured_input_signature[1]
        signatures[name] = Signature(name, fn, dict(specs), tuple(sorted(sdef.outputs)), sdef.method_name)
    from tensorflow_serving.apis import get_model_metadata_pb2
    def_map = get_model_metadata_pb2.SignatureDefMap()
    for name, sdef in metas[0].signature_def.items():
        def_map.signature_def[name].CopyFrom(sdef)
    servable = Servable(model, version, path, loaded, signatures, def_map)
    warm_up(servable)  # before the caller marks it AVAILABLE: no request pays for the first call
    return servable


def wanted_versions(config: Any, on_disk: list[int]) -> set[int]:
    policy = config.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return set(on_disk)
    if choice == "specific":
        return set(policy.specific.versions) & set(on_disk)
    return set(sorted(on_disk)[-(policy.latest.num_versions or 1):])


class ModelManager:
    def __init__(self, configs: tuple[Any, ...], poll_seconds: float = 1.0,
                 loader: Callable[[str, int, Path], Servable] = load_servable,
                 on_load: Callable[[str, int, str], None] | None = None,
                 on_unload: Callable[[Servable], None] | None = None):
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()  # one poll at a time (thread, reload RPC)
        self._models: dict[str, ModelEntry] = {c.name: ModelEntry(c) for c in configs}
        self._poll_seconds = poll_seconds
        self._loader = loader
        self._on_load = on_load or (lambda model, version, status: None)
        self._on_unload = on_unload or (lambda servable: None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.poll()
        if self._poll_seconds > 0:
            self._thread = threading.Thread(target=self._loop, name="version-poller", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self._poll_seconds):
            try:
                self.poll()
            except Exception:  # the poller must survive anything the file system throws at it
                log.exception("version poll failed")

    def apply_config(self, configs: tuple[Any, ...]) -> None:
        """A new model list (ReloadConfig RPC, re-read config file): add, update, drop models."""
        with self._poll_lock:
            with self._lock:
                dropped = [e for n, e in self._models.items() if n not in {c.name for c in configs}]
                for config in configs:
                    entry = self._models.get(config.name)
                    if entry is None:
                        self._models[config.name] = ModelEntry(config)
                    else:
                        entry.config = config
                for entry in dropped:
                    del self._models[entry.config.name]
            for entry in dropped:
                for vs in entry.versions.values():
                    self._retire(vs)
            self._poll_locked()

    # -- polling ---------------------------------------------------------------------------
    def poll(self) -> None:
        with self._poll_lock:
            self._poll_locked()

    def _poll_locked(self) -> None:
        with self._lock:
            entries = list(self._models.values())
        for entry in entries:
            self._poll_model(entry)

    def _poll_model(self, entry: ModelEntry) -> None:
        name, base = entry.config.name, Path(entry.config.base_path)
        try:
            on_disk = {int(p.name): p for p in base.iterdir()
                       if p.name.isdigit() and p.is_dir() and _saved_model_file(p)}
        except OSError as exc:
            log.warning("No versions of servable %s found under base path %s (%s)", name, base, exc.strerror)
            on_disk = {}
        wanted = wanted_versions(entry.config, list(on_disk))
        for version in sorted(wanted):
            vs = entry.versions.setdefault(version, VersionState(version))
            stamp = _saved_model_file(on_disk[version]).stat().st_mtime  # type: ignore[union-attr]
            if vs.state == AVAILABLE or (vs.state == END and vs.error and stamp == vs.stamp
                                         and vs.attempts >= MAX_LOAD_ATTEMPTS):
                continue
            if vs.state == END and not vs.error:  # retired earlier, wanted again (policy change)
                vs.attempts = 0
            if stamp != vs.stamp:
                vs.attempts = 0
            self._load(name, vs, on_disk[version], stamp)
        with self._lock:
            any_available = any(entry.versions[v].state == AVAILABLE for v in wanted if v in entry.versions)
        for version, vs in list(entry.versions.items()):
            if version not in wanted and vs.state == AVAILABLE and (any_available or version not in on_disk):
                self._retire(vs)

    def _load(self, name: str, vs: VersionState, path: Path, stamp: float) -> None:
        with self._lock:
            vs.state, vs.stamp = LOADING, stamp
        vs.attempts += 1
        started = time.monotonic()
        try:
            servable = self._loader(name, vs.version, path)
        except Exception as exc:  # a broken version must not take the server down
            message = f"{type(exc).__name__}: {exc}".strip()
            log.error("Loading servable %s version %d from %s failed (attempt %d/%d): %s",
                      name, vs.version, path, vs.attempts, MAX_LOAD_ATTEMPTS, message)
            with self._lock:
                # LOADING while retries remain, then END with the error (as TF Serving reports it).
                vs.error = message
                vs.state = END if vs.attempts >= MAX_LOAD_ATTEMPTS else LOADING
            self._on_load(name, vs.version, "error")
            return
        with self._lock:
            vs.servable, vs.state, vs.error = servable, AVAILABLE, ""
        self._on_load(name, vs.version, "ok")
        log.info("Successfully loaded servable version {name: %s version: %d} in %.1fs",
                 name, vs.version, time.monotonic() - started)

    def _retire(self, vs: VersionState) -> None:
        with self._lock:
            servable, vs.state = vs.servable, UNLOADING
        if servable is not None:
            servable.retired = True
            self._on_unload(servable)
            log.info("Unloaded servable version {name: %s version: %d}", servable.model, servable.version)
        with self._lock:
            vs.servable, vs.state = None, END

    # -- lookups ---------------------------------------------------------------------------
    def model_names(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def _entry(self, name: str) -> ModelEntry:
        entry = self._models.get(name)
        if entry is None:
            raise not_found(f"Servable not found for request: Latest({name})")
        return entry

    def _label_version(self, entry: ModelEntry, label: str) -> int:
        if label not in entry.config.version_labels:
            raise not_found(f"Unrecognized servable version label: {label}")
        return entry.config.version_labels[label]

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable a request names: a version, a label, or (neither) the latest available."""
        if not name:
            raise invalid("Missing model name in request.")
        with self._lock:
            entry = self._entry(name)
            if label:
                version = self._label_version(entry, label)
            if version is None:
                live = [v for v, vs in entry.versions.items() if vs.state == AVAILABLE]
                if not live:
                    raise not_found(f"Servable not found for request: Latest({name})")
                version = max(live)
            vs = entry.versions.get(version)
            if vs is None or vs.servable is None or vs.state != AVAILABLE:
                raise not_found(f"Servable not found for request: Specific({name}, {version})")
            return vs.servable

    def status(self, name: str, version: int | None = None, label: str | None = None) -> list[VersionState]:
        """Version states, newest first (GetModelStatus / GET /v1/models/<name>)."""
        with self._lock:
            entry = self._models.get(name)
            if entry is None:
                raise not_found(f"Could not find any versions of model {name}")
            if label:
                version = self._label_version(entry, label)
            states = [VersionState(vs.version, vs.state, vs.error) for vs in entry.versions.values()
                      if version is None or vs.version == version]
        if not states:
            raise not_found(f"Could not find version {version} of model {name}" if version is not None
                            else f"Could not find any versions of model {name}")
        return sorted(states, key=lambda s: -s.version)

    def all_available(self) -> bool:
        with self._lock:
            return all(any(vs.state == AVAILABLE for vs in e.versions.values()) for e in self._models.values())
