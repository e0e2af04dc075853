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

from beam_local import LOCAL_RUNNER
from pipeline.config import model
from pipeline.config.errors import Reader

ENGINES = ("local", "beam")

BEAM_RUNNERS = ("DirectRunner", "DataflowRunner", "FlinkRunner", "SparkRunner")
DIRECT_MODES = ("in_memory", "multi_processing", "multi_threading")
ENVIRONMENT_TYPES = ("DOCKER", "PROCESS", "EXTERNAL", "LOOPBACK")
_SECTION = {"DirectRunner": "direct", "DataflowRunner": "dataflow", "FlinkRunner": "flink", "SparkRunner": "spark"}
# runner.beam.<section>.<key> -> its Beam flag (types, bounds and required keys: model.py Direct, Dataflow, ...)
_FLAGS = {"mode": "direct_running_mode", "workers": "direct_num_workers"}


def pin_local_runner(args: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``args`` with DirectRunner, or no runner, replaced by ``LOCAL_RUNNER``: the same FnApiRunner,
    without Beam's attempt to download the Prism runner first (beam_local/__init__.py); other
    runners kept."""
    runners = [a.split("=", 1)[1] for a in args if a.startswith("--runner=")]
    if runners and runners[-1] != "DirectRunner":
        return tuple(args)
    return (f"--runner={LOCAL_RUNNER}", *(a for a in args if not a.startswith("--runner=")))


def parse_beam(r: Reader, b: model.Beam) -> tuple[str, ...]:
    """``runner.beam`` -> Beam pipeline arguments, every value checked (errors name the key)."""
    runner = b.runner
    section = _SECTION[runner]
    others = sorted(k for k in r.data if k not in ("runner", section))
    if others:
        raise r.fail(f"'{others[0]}' does not apply to runner {runner} (its settings go under '{section}')")
    args = [f"--runner={runner}"]
    settings = getattr(b, section)
    if runner == "DirectRunner" and settings is None:
        return (*args, "--direct_running_mode=in_memory", "--direct_num_workers=1")
    if settings is None:
        raise r.fail(f"runner {runner} needs its settings", section)
    s = r.child(section)
    for key, value in settings.model_dump(exclude_none=True).items():
        if key in ("temp_location", "staging_location") and not value.startswith("gs://"):
            raise s.fail("Dataflow needs a Cloud Storage path (gs://bucket/...)", key)
        if key == "job_endpoint" and not _host_port(value):
            raise s.fail(f"must be host:port of the {runner} job server, got {value!r}", key)
        args.append(f"--{_FLAGS.get(key, key)}={value}")
    if runner == "DirectRunner" and (settings.mode or "in_memory") == "in_memory" and (settings.workers or 1) != 1:
        raise s.fail("in_memory runs one worker; use multi_processing for several", "workers")
    if section in ("flink", "spark"):
        env = settings.environment_type or "DOCKER"
        if env in ("DOCKER", "EXTERNAL") and settings.environment_config is None:
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


def parse_airflow(r: Reader, a: model.Airflow) -> AirflowSettings:
    schedule = a.schedule
    if not (schedule is None or schedule.startswith("@") or len(schedule.split()) == 5):
        raise r.fail("must be a 5-field cron expression, an Airflow preset like @daily, or null", "schedule")
    start = a.start_date
    try:
        start = start.isoformat() if isinstance(start, date) else date.fromisoformat(start).isoformat()
    except ValueError:
        raise r.fail(f"must be an ISO date like 2024-01-01, got {start!r}", "start_date") from None
    return AirflowSettings(schedule, start, a.catchup, a.retries)


@dataclass(frozen=True)
class MySQLSettings:
    """ML Metadata in MySQL (or MariaDB); the password comes from an environment variable."""

    host: str = "127.0.0.1"
    port: int = 3306
    database: str = "mlmd"
    user: str = "root"
    password_env: str | None = None  # name of the variable holding the password
    socket: str | None = None  # a Unix socket instead of host:port


def parse_metadata(r: Reader, m: model.Metadata) -> MySQLSettings | None:
    """``runner.metadata``: ``{sqlite: {}}`` (default) or ``{mysql: {host, port, database, ...}}``."""
    if len(r.data) != 1:
        raise r.fail("give exactly one of sqlite or mysql")
    if "sqlite" in r.data:
        return None
    my = m.mysql or model.MySQL()
    if not 0 < my.port < 65536:
        raise r.child("mysql").fail("must be a TCP port", "port")
    if not my.database.replace("_", "").isalnum():
        raise r.child("mysql").fail("use letters, digits and '_'", "database")
    return MySQLSettings(**my.model_dump())


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
    beam_args: tuple[str, ...] = (f"--runner={LOCAL_RUNNER}", "--direct_running_mode=in_memory",
                                  "--direct_num_workers=1")
    airflow: AirflowSettings | None = None  # runner.airflow: the DAG's schedule
    mysql: MySQLSettings | None = None  # runner.metadata.mysql; None: sqlite under outputs/<name>/


def parse_runner(top: Reader, m: model.Runner | None) -> RunnerConfig:
    """``runner``: engine, raw beam_args or a named Beam option set, Airflow schedule, MLMD database."""
    if m is None:
        return RunnerConfig()
    r = top.child("runner")
    engine = m.engine
    args = m.beam_args if m.beam_args is not None else list(RunnerConfig.beam_args)
    if not all(a.startswith("--") for a in args):
        raise r.fail("each Beam argument is a string like '--flag=value'", "beam_args")
    if "beam" in r.data:  # a named, validated option set instead of raw beam_args
        if "beam_args" in r.data:
            raise r.fail("give either beam (an option set) or beam_args, not both", "beam")
        args = list(parse_beam(r.child("beam"), m.beam or model.Beam()))
    airflow = parse_airflow(r.child("airflow"), m.airflow or model.Airflow()) if "airflow" in r.data else None
    mysql = parse_metadata(r.child("metadata"), m.metadata or model.Metadata()) if "metadata" in r.data else None
    return RunnerConfig(engine, pin_local_runner(args), airflow, mysql)
