"""Runner settings beyond ``engine``/``beam_args``: named Beam option sets, the Airflow
schedule and the ML Metadata database (``runner.beam``, ``runner.airflow``, ``runner.metadata``).

Beam option sets (``runner.beam.runner``) become Beam pipeline arguments, checked here by key
and then by Beam itself (``beam_pipeline_options`` parses them into ``PipelineOptions``):

=============  ======================================================================
DirectRunner   ``direct: {mode: in_memory | multi_processing | multi_threading, workers: N}``
DataflowRunner ``dataflow: {project, region, temp_location (gs://), staging_location,
               machine_type, max_num_workers, sdk_container_image, service_account_email}``
FlinkRunner    ``flink: {job_endpoint: host:port, environment_type, environment_config,
               parallelism}`` (portable: the job server at ``job_endpoint``)
SparkRunner    ``spark: {job_endpoint: host:port, environment_type, environment_config}``
=============  ======================================================================

Portable runners (Flink, Spark) run the pipeline's Python in an SDK harness: ``DOCKER`` (the
pipeline image, ``environment_config`` names it), ``PROCESS`` or ``EXTERNAL`` (a worker pool
at ``environment_config`` host:port), or ``LOOPBACK`` (this process; for local tests).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from typing import Any

from pipeline.config.errors import Reader

ENGINES = ("local", "beam")

BEAM_RUNNERS = ("DirectRunner", "DataflowRunner", "FlinkRunner", "SparkRunner")
DIRECT_MODES = ("in_memory", "multi_processing", "multi_threading")
ENVIRONMENT_TYPES = ("DOCKER", "PROCESS", "EXTERNAL", "LOOPBACK")
_SECTION = {"DirectRunner": "direct", "DataflowRunner": "dataflow", "FlinkRunner": "flink", "SparkRunner": "spark"}
# key -> (Beam flag, types, required)
_OPTIONS: dict[str, dict[str, tuple[str, tuple[type, ...], bool]]] = {
    "direct": {"mode": ("direct_running_mode", (str,), False), "workers": ("direct_num_workers", (int,), False)},
    "dataflow": {
        "project": ("project", (str,), True), "region": ("region", (str,), True),
        "temp_location": ("temp_location", (str,), True), "staging_location": ("staging_location", (str,), False),
        "machine_type": ("machine_type", (str,), False), "max_num_workers": ("max_num_workers", (int,), False),
        "sdk_container_image": ("sdk_container_image", (str,), False),
        "service_account_email": ("service_account_email", (str,), False),
    },
    "flink": {
        "job_endpoint": ("job_endpoint", (str,), True), "environment_type": ("environment_type", (str,), False),
        "environment_config": ("environment_config", (str,), False), "parallelism": ("parallelism", (int,), False),
    },
    "spark": {
        "job_endpoint": ("job_endpoint", (str,), True), "environment_type": ("environment_type", (str,), False),
        "environment_config": ("environment_config", (str,), False),
    },
}


def parse_beam(r: Reader) -> tuple[str, ...]:
    """``runner.beam`` -> Beam pipeline arguments, every value checked (errors name the key)."""
    runner = r.get("runner", (str,), "DirectRunner",
                   lambda v: None if v in BEAM_RUNNERS else f"must be one of {', '.join(BEAM_RUNNERS)}")
    section = _SECTION[runner]
    others = sorted(k for k in r.data if k not in ("runner", section))
    if others:
        raise r.fail(f"'{others[0]}' does not apply to runner {runner} (its settings go under '{section}')")
    args = [f"--runner={runner}"]
    if runner == "DirectRunner" and section not in r.data:
        return (*args, "--direct_running_mode=in_memory", "--direct_num_workers=1")
    if section not in r.data:
        raise r.fail(f"runner {runner} needs its settings", section)
    s = r.child(section)
    for key, (flag, types, required) in _OPTIONS[section].items():
        value = s.get(key, types, ... if required else None)
        if value is None:
            continue
        if key in ("workers", "max_num_workers", "parallelism") and value < 1:
            raise s.fail("must be >= 1", key)
        if key == "mode" and value not in DIRECT_MODES:
            raise s.fail(f"must be one of {', '.join(DIRECT_MODES)}", key)
        if key == "environment_type" and value not in ENVIRONMENT_TYPES:
            raise s.fail(f"must be one of {', '.join(ENVIRONMENT_TYPES)}", key)
        if key in ("temp_location", "staging_location") and not value.startswith("gs://"):
            raise s.fail("Dataflow needs a Cloud Storage path (gs://bucket/...)", key)
        if key == "job_endpoint" and not _host_port(value):
            raise s.fail(f"must be host:port of the {runner} job server, got {value!r}", key)
        args.append(f"--{flag}={value}")
    if runner == "DirectRunner":
        mode = s.data.get("mode", "in_memory")
        if mode == "in_memory" and s.data.get("workers", 1) != 1:
            raise s.fail("in_memory runs one worker; use multi_processing for several", "workers")
    if section in ("flink", "spark"):
        env = s.data.get("environment_type", "DOCKER")
        if env in ("DOCKER", "EXTERNAL") and "environment_config" not in s.data:
            what = "the SDK harness image" if env == "DOCKER" else "the worker pool's host:port"
            raise s.fail(f"environment_type {env} needs environment_config ({what})", "environment_config")
    return tuple(args)


def _host_port(value: str) -> bool:
    host, _, port = value.rpartition(":")
    return bool(host) and port.isdigit()


def beam_pipeline_options(args: tuple[str, ...] | list[str]) -> Any:
    """Beam's own PipelineOptions of ``args``; raises ValueError on a flag Beam does not know."""
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions(list(args))
    unknown = options.get_all_options(retain_unknown_options=True, drop_default=True)
    known = options.get_all_options(drop_default=True)
    extra = sorted(set(unknown) - set(known))
    if extra:
        raise ValueError(f"Beam does not know the option(s) {', '.join(extra)}")
    return options


@dataclass(frozen=True)
class AirflowSettings:
    schedule: str | None = "@daily"  # cron, an Airflow preset, or None (manual only)
    start_date: str = "2024-01-01"
    catchup: bool = False
    retries: int = 0


def parse_airflow(r: Reader) -> AirflowSettings:
    schedule = r.get("schedule", (str, type(None)), AirflowSettings.schedule,
                     lambda v: None if v is None or v.startswith("@") or len(v.split()) == 5
                     else "must be a 5-field cron expression, an Airflow preset like @daily, or null")
    start = r.get("start_date", (str, date), AirflowSettings.start_date)
    try:
        start = start.isoformat() if isinstance(start, date) else date.fromisoformat(start).isoformat()
    except ValueError:
        raise r.fail(f"must be an ISO date like 2024-01-01, got {start!r}", "start_date") from None
    return AirflowSettings(schedule, start, r.get("catchup", (bool,), False),
                           r.get("retries", (int,), 0, lambda v: None if v >= 0 else "must be >= 0"))


@dataclass(frozen=True)
class MySQLSettings:
    """ML Metadata in MySQL (or MariaDB); the password comes from an environment variable."""

    host: str = "127.0.0.1"
    port: int = 3306
    database: str = "mlmd"
    user: str = "root"
    password_env: str | None = None  # name of the variable holding the password
    socket: str | None = None  # a Unix socket instead of host:port


def parse_metadata(r: Reader) -> MySQLSettings | None:
    """``runner.metadata``: ``{sqlite: {}}`` (default) or ``{mysql: {host, port, database, ...}}``."""
    if len(r.data) != 1:
        raise r.fail("give exactly one of sqlite or mysql")
    if "sqlite" in r.data:
        return None
    m = r.child("mysql")
    d = MySQLSettings()
    return MySQLSettings(
        host=m.get("host", (str,), d.host), port=m.get("port", (int,), d.port,
                                                        lambda v: None if 0 < v < 65536 else "must be a TCP port"),
        database=m.get("database", (str,), d.database, lambda v: None if v.replace("_", "").isalnum()
                       else "use letters, digits and '_'"),
        user=m.get("user", (str,), d.user), password_env=m.get("password_env", (str,), None),
        socket=m.get("socket", (str,), None))


def metadata_connection_config(cfg: Any) -> Any:
    """The MLMD connection of ``cfg``: sqlite under outputs/<name>/ unless runner.metadata is mysql."""
    from tfx.orchestration import metadata

    mysql = cfg.runner.mysql
    if mysql is None:
        return metadata.sqlite_metadata_connection_config(str(cfg.metadata_path))
    password = ""
    if mysql.password_env:
        if mysql.password_env not in os.environ:
            raise ValueError(f"{cfg.path}: runner.metadata.mysql.password_env: environment variable "
                             f"{mysql.password_env} is not set")
        password = os.environ[mysql.password_env]
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.mysql.host = mysql.host
    config.mysql.port = mysql.port
    config.mysql.database = mysql.database
    config.mysql.user = mysql.user
    config.mysql.password = password
    if mysql.socket:
        config.mysql.socket = mysql.socket
    # MLMD creates the database if it is missing (skip_db_creation false; the user needs CREATE rights).
    return config


@dataclass(frozen=True)
class RunnerConfig:
    engine: str = "local"
    beam_args: tuple[str, ...] = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
    airflow: AirflowSettings | None = None  # runner.airflow: the DAG's schedule
    mysql: MySQLSettings | None = None  # runner.metadata.mysql; None: sqlite under outputs/<name>/


def parse_runner(top: Reader) -> RunnerConfig:
    """``runner``: engine, raw beam_args or a named Beam option set, Airflow schedule, MLMD database."""
    runner = RunnerConfig()
    if "runner" not in top.data:
        return runner
    r = top.child("runner")
    engine = r.data.get("engine", runner.engine)
    args = r.data.get("beam_args", list(runner.beam_args))
    if not all(a.startswith("--") for a in args):
        raise r.fail("each Beam argument is a string like '--flag=value'", "beam_args")
    if "beam" in r.data:  # a named, validated option set instead of raw beam_args
        if "beam_args" in r.data:
            raise r.fail("give either beam (an option set) or beam_args, not both", "beam")
        args = list(parse_beam(r.child("beam")))
    airflow = parse_airflow(r.child("airflow")) if "airflow" in r.data else None
    mysql = parse_metadata(r.child("metadata")) if "metadata" in r.data else None
    return RunnerConfig(engine, tuple(args), airflow, mysql)
