"""``tensorflow_model_server``'s flags and its text-proto config files.

``--model_config_file`` is parsed into the real ``tensorflow_serving.config.ModelServerConfig``.
The batching and monitoring protos are not shipped in the ``tensorflow-serving-api`` wheel, so
their messages are declared here with TF Serving's field names and numbers
(``session_bundle_config.proto`` BatchingParameters, ``monitoring_config.proto``) in a private
descriptor pool, and the same text files parse unchanged.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2
from tensorflow_serving.config import model_server_config_pb2

DEFAULT_METRICS_PATH = "/monitoring/prometheus/metrics"


class OptionsError(ValueError):
    """A bad flag or config file; the message names the flag or file and the field."""


class NotAllowedError(OptionsError):
    """A model base_path outside --model_base_path_allowlist (ReloadConfig: PERMISSION_DENIED)."""


def _message_classes() -> dict[str, Any]:
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    f = descriptor_pb2.FileDescriptorProto(name="pipeline_serving_configs.proto", package="tensorflow.serving",
                                           syntax="proto3", dependency=[wrappers.name])
    fdp = descriptor_pb2.FieldDescriptorProto
    opt, rep = fdp.LABEL_OPTIONAL, fdp.LABEL_REPEATED

    def msg(name: str, *fields: tuple[str, int, int, int, str]) -> None:
        m = f.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            fd = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                fd.type_name = type_name

    i64 = (fdp.TYPE_MESSAGE, opt, ".google.protobuf.Int64Value")
    msg("BatchingParameters",
        ("max_batch_size", 1, *i64), ("batch_timeout_micros", 2, *i64), ("num_batch_threads", 3, *i64),
        ("max_enqueued_batches", 4, *i64), ("allowed_batch_sizes", 6, fdp.TYPE_INT64, rep, ""),
        ("pad_variable_length_inputs", 7, fdp.TYPE_BOOL, opt, ""),
        ("thread_pool_name", 8, fdp.TYPE_MESSAGE, opt, ".google.protobuf.StringValue"),
        ("enable_large_batch_splitting", 9, fdp.TYPE_MESSAGE, opt, ".google.protobuf.BoolValue"),
        ("max_execution_batch_size", 10, *i64))
    msg("PrometheusConfig", ("enable", 1, fdp.TYPE_BOOL, opt, ""), ("path", 2, fdp.TYPE_STRING, opt, ""))
    msg("MonitoringConfig", ("prometheus_config", 1, fdp.TYPE_MESSAGE, opt, ".tensorflow.serving.PrometheusConfig"))
    pool.Add(f)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
            for name in ("BatchingParameters", "MonitoringConfig")}


_CLASSES = _message_classes()
BatchingParameters = _CLASSES["BatchingParameters"]
MonitoringConfig = _CLASSES["MonitoringConfig"]


@dataclass(frozen=True)
class BatchingOptions:
    """TF Serving's BasicBatchScheduler defaults where the file leaves a field out."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    num_batch_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    max_enqueued_batches: int = 10
    allowed_batch_sizes: tuple[int, ...] = ()
    enable_large_batch_splitting: bool = False


@dataclass(frozen=True)
class ServerOptions:
    models: tuple[Any, ...]               # ModelConfig protos
    port: int
    rest_api_port: int
    bind_address: str
    batching: BatchingOptions | None
    metrics_path: str | None              # None: Prometheus endpoint off
    file_system_poll_wait_seconds: float
    model_config_file: Path | None
    model_config_file_poll_wait_seconds: float
    rest_api_num_threads: int
    rest_api_timeout_in_ms: int
    rest_api_max_body_bytes: int
    grpc_max_threads: int
    intra_op_parallelism: int
    inter_op_parallelism: int
    num_server_processes: int = 1         # not a TF Serving flag: see serving.server
    # Not a TF Serving flag: the roots a ReloadConfig or a re-read --model_config_file may point at
    # (resolved; empty: derived from ``models``, see default_allowlist).
    model_base_path_allowlist: tuple[Path, ...] = ()
    worker_dir: Path | None = None        # internal: set in the worker processes the first one starts
    parent_pid: int | None = None         # not a TF Serving flag: exit once this process is no longer the parent


def _bool(value: str) -> bool:
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipeline serve",
        description="TensorFlow Serving-compatible model server (tensorflow_model_server's flags).")
    a = p.add_argument
    a("--port", type=int, default=8500, help="gRPC port (0: pick a free one)")
    a("--rest_api_port", type=int, default=0, help="REST port (0: REST off, as in TF Serving)")
    a("--bind_address", default="127.0.0.1", help="address both ports bind to (0.0.0.0 for all)")
    a("--model_name", default="default", help="name of the single model (with --model_base_path)")
    a("--model_base_path", default=None, help="directory of the model's numeric version folders")
    a("--model_config_file", type=Path, default=None, help="ModelServerConfig text proto (several models)")
    a("--model_config_file_poll_wait_seconds", type=float, default=0.0,
      help="re-read --model_config_file this often (0: only at start)")
    a("--file_system_poll_wait_seconds", type=float, default=1.0, help="how often to look for new versions")
    a("--enable_batching", type=_bool, nargs="?", const=True, default=False)
    a("--batching_parameters_file", type=Path, default=None, help="BatchingParameters text proto")
    a("--monitoring_config_file", type=Path, default=None, help="MonitoringConfig text proto (Prometheus)")
    a("--rest_api_num_threads", type=int, default=32)
    a("--rest_api_timeout_in_ms", type=int, default=30000)
    a("--rest_api_max_body_bytes", type=int, default=64 << 20, help="larger request bodies get 413")
    a("--grpc_max_threads", type=int, default=64)
    a("--tensorflow_intra_op_parallelism", type=int, default=0)
    a("--tensorflow_inter_op_parallelism", type=int, default=0)
    # Not in tensorflow_model_server: several server processes behind the same ports (SO_REUSEPORT).
    a("--num_server_processes", type=int, default=1,
      help="server processes sharing the gRPC and REST ports (SO_REUSEPORT); not a TF Serving flag")
    a("--model_base_path_allowlist", default=None,
      help="comma-separated directories a ReloadConfig or a changed --model_config_file may name as base_path "
           "(symlinks and '..' resolved first; default: the base paths given at start and their parents); "
           "not a TF Serving flag")
    a("--parent_pid", type=int, default=None, metavar="PID",
      help="shut down (as on SIGTERM) once process PID is no longer this server's parent, however it ended; "
           "for a server started by another program; not a TF Serving flag")
    a("--internal_worker_dir", type=Path, default=None, help=argparse.SUPPRESS)
    return p


def parse_text_proto(path: Path, message: Any, what: str) -> Any:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise OptionsError(f"{what} {path}: cannot read: {exc.strerror or exc}") from None
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise OptionsError(f"{what} {path}: {exc}") from None


def validate_model_config(config: Any, source: str) -> tuple[Any, ...]:
    """The ModelConfigs of a ModelServerConfig, checked like TF Serving does."""
    if config.WhichOneof("config") == "custom_model_config":
        raise OptionsError(f"{source}: custom_model_config is not supported; use model_config_list")
    models = tuple(config.model_config_list.config)
    seen: set[str] = set()
    for i, m in enumerate(models):
        where = f"{source}: model_config_list.config[{i}]"
        if not m.name:
            raise OptionsError(f"{where}: name is required")
        if m.name in seen:
            raise OptionsError(f"{where}: model name '{m.name}' appears twice")
        seen.add(m.name)
        if not m.base_path:
            raise OptionsError(f"{where} ({m.name}): base_path is required")
        if m.model_platform not in ("", "tensorflow"):
            raise OptionsError(f"{where} ({m.name}): model_platform '{m.model_platform}' is not supported "
                               "(only 'tensorflow')")
        policy = m.model_version_policy
        if policy.WhichOneof("policy_choice") == "specific" and not policy.specific.versions:
            raise OptionsError(f"{where} ({m.name}): model_version_policy.specific needs at least one version")
    return models


def load_model_config_file(path: Path) -> tuple[Any, ...]:
    config = parse_text_proto(path, model_server_config_pb2.ModelServerConfig(), "--model_config_file")
    models = validate_model_config(config, f"--model_config_file {path}")
    if not models:
        raise OptionsError(f"--model_config_file {path}: model_config_list has no config")
    return models


def load_batching(path: Path | None) -> BatchingOptions:
    if path is None:
        return BatchingOptions()
    p = parse_text_proto(path, BatchingParameters(), "--batching_parameters_file")
    where = f"--batching_parameters_file {path}"
    defaults = BatchingOptions()

    def value(name: str) -> int:
        return getattr(p, name).value if p.HasField(name) else getattr(defaults, name)

    opts = BatchingOptions(
        max_batch_size=value("max_batch_size"), batch_timeout_micros=value("batch_timeout_micros"),
        num_batch_threads=value("num_batch_threads"), max_enqueued_batches=value("max_enqueued_batches"),
        allowed_batch_sizes=tuple(p.allowed_batch_sizes),
        enable_large_batch_splitting=p.enable_large_batch_splitting.value)
    for name in ("max_batch_size", "num_batch_threads", "max_enqueued_batches"):
        if getattr(opts, name) < 1:
            raise OptionsError(f"{where}: {name} must be >= 1, got {getattr(opts, name)}")
    if opts.batch_timeout_micros < 0:
        raise OptionsError(f"{where}: batch_timeout_micros must be >= 0")
    sizes = opts.allowed_batch_sizes
    if sizes:
        if list(sizes) != sorted(set(sizes)) or sizes[0] < 1:
            raise OptionsError(f"{where}: allowed_batch_sizes must be positive and strictly increasing: {list(sizes)}")
        if sizes[-1] != opts.max_batch_size:
            raise OptionsError(f"{where}: the last allowed_batch_sizes entry ({sizes[-1]}) must equal "
                               f"max_batch_size ({opts.max_batch_size})")
    return opts


def load_monitoring(path: Path | None) -> str | None:
    if path is None:
        return None
    config = parse_text_proto(path, MonitoringConfig(), "--monitoring_config_file")
    prometheus = config.prometheus_config
    if not prometheus.enable:
        return None
    metrics_path = prometheus.path or DEFAULT_METRICS_PATH
    if not metrics_path.startswith("/"):
        raise OptionsError(f"--monitoring_config_file {path}: prometheus_config.path must start with '/'")
    return metrics_path


def default_allowlist(models: tuple[Any, ...]) -> tuple[Path, ...]:
    """The base paths configured at start and their parent directories (where Pusher adds siblings)."""
    roots: list[Path] = []
    for m in models:
        base = Path(m.base_path).resolve()
        for root in (base, base.parent):
            if root not in roots:
                roots.append(root)
    return tuple(roots)


def check_allowed(models: tuple[Any, ...], allowlist: tuple[Path, ...], source: str) -> None:
    """NotAllowedError naming the first model whose base_path resolves outside every allowed root.
    Resolving first (symlinks, '..') is the point: a path that merely starts with a root can escape it."""
    for m in models:
        resolved = Path(m.base_path).resolve()
        if not any(resolved == root or root in resolved.parents for root in allowlist):
            raise NotAllowedError(
                f"{source}: model '{m.name}' base_path {m.base_path} (resolved: {resolved}) is outside the "
                f"allowed model roots {{{', '.join(map(str, allowlist))}}} (--model_base_path_allowlist)")


def parse_options(argv: list[str]) -> ServerOptions:
    """Flags -> ServerOptions; argparse exits 2 on unknown flags, OptionsError on bad values/files."""
    args = build_parser().parse_args(argv)
    if args.model_config_file is not None:
        if args.model_base_path:
            raise OptionsError("--model_config_file and --model_base_path are mutually exclusive: "
                               "declare every model in the config file")
        models = load_model_config_file(args.model_config_file)
    elif args.model_base_path:
        models = (model_server_config_pb2.ModelConfig(
            name=args.model_name, base_path=str(Path(args.model_base_path).absolute()), model_platform="tensorflow"),)
    else:
        raise OptionsError("give --model_base_path (one model) or --model_config_file (several models)")
    if args.batching_parameters_file is not None and not args.enable_batching:
        raise OptionsError("--batching_parameters_file needs --enable_batching")
    for flag in ("port", "rest_api_port"):
        if not 0 <= getattr(args, flag) <= 65535:
            raise OptionsError(f"--{flag} must be in 0..65535, got {getattr(args, flag)}")
    for flag in ("rest_api_num_threads", "rest_api_timeout_in_ms", "rest_api_max_body_bytes", "grpc_max_threads",
                 "num_server_processes"):
        if getattr(args, flag) < 1:
            raise OptionsError(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    if args.parent_pid is not None and args.parent_pid < 1:
        raise OptionsError(f"--parent_pid must be a process id (>= 1), got {args.parent_pid}")
    if args.file_system_poll_wait_seconds < 0:
        raise OptionsError("--file_system_poll_wait_seconds must be >= 0")
    if args.model_base_path_allowlist is not None:
        allowlist = tuple(Path(r.strip()).resolve() for r in args.model_base_path_allowlist.split(",") if r.strip())
        if not allowlist:
            raise OptionsError("--model_base_path_allowlist: give at least one directory")
        check_allowed(models, allowlist, "--model_base_path_allowlist")
    else:
        allowlist = default_allowlist(models)
    return ServerOptions(
        models=models, port=args.port, rest_api_port=args.rest_api_port, bind_address=args.bind_address,
        batching=load_batching(args.batching_parameters_file) if args.enable_batching else None,
        metrics_path=load_monitoring(args.monitoring_config_file),
        file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
        model_config_file=args.model_config_file,
        model_config_file_poll_wait_seconds=args.model_config_file_poll_wait_seconds,
        rest_api_num_threads=args.rest_api_num_threads, rest_api_timeout_in_ms=args.rest_api_timeout_in_ms,
        rest_api_max_body_bytes=args.rest_api_max_body_bytes, grpc_max_threads=args.grpc_max_threads,
        intra_op_parallelism=args.tensorflow_intra_op_parallelism,
        inter_op_parallelism=args.tensorflow_inter_op_parallelism,
        num_server_processes=args.num_server_processes, worker_dir=args.internal_worker_dir,
        model_base_path_allowlist=allowlist, parent_pid=args.parent_pid)
