"""runner.beam option sets: each documented set is parsed from a config into Beam's own
PipelineOptions; bad sets name the key; the DirectRunner sets run a real Beam pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError, beam_pipeline_options, load_config
from tests.conftest import TAXI_CONFIG, derived_config

DATA = TAXI_CONFIG.parent.parent.parent.parent / "data" / "taxi"

OPTION_SETS = {
    "direct_in_memory": ({"runner": "DirectRunner", "direct": {"mode": "in_memory"}},
                         {"runner": "beam_local.runner.LocalRunner", "direct_running_mode": "in_memory"}),
    "direct_multi_processing": ({"runner": "DirectRunner", "direct": {"mode": "multi_processing", "workers": 2}},
                                {"runner": "beam_local.runner.LocalRunner", "direct_running_mode": "multi_processing",
                                 "direct_num_workers": 2}),
    "dataflow": ({"runner": "DataflowRunner", "dataflow": {
        "project": "my-project", "region": "europe-west1", "temp_location": "gs://bucket/tmp",
        "staging_location": "gs://bucket/staging", "machine_type": "n2-standard-4", "max_num_workers": 20,
        "sdk_container_image": "europe-docker.pkg.dev/my-project/ml/tfx-reference-pipeline:1.0"}},
        {"runner": "DataflowRunner", "project": "my-project", "region": "europe-west1",
         "temp_location": "gs://bucket/tmp", "machine_type": "n2-standard-4", "max_num_workers": 20}),
    "flink": ({"runner": "FlinkRunner", "flink": {
        "job_endpoint": "flink-jobserver:8099", "environment_type": "EXTERNAL",
        "environment_config": "beam-worker-pool:50000", "parallelism": 4}},
        {"runner": "FlinkRunner", "job_endpoint": "flink-jobserver:8099", "environment_type": "EXTERNAL",
         "environment_config": "beam-worker-pool:50000", "parallelism": 4}),
    "spark": ({"runner": "SparkRunner", "spark": {
        "job_endpoint": "spark-jobserver:8099", "environment_type": "DOCKER",
        "environment_config": "registry.example.com/ml/tfx-reference-pipeline:1.0"}},
        {"runner": "SparkRunner", "job_endpoint": "spark-jobserver:8099", "environment_type": "DOCKER"}),
}


def config_with(tmp: Path, beam: dict) -> Path:
    path = derived_config(tmp, DATA)
    raw = yaml.safe_load(path.read_text())
    raw["runner"] = {"engine": "beam", "beam": beam}  # replaces the shipped beam_args
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.parametrize("name", OPTION_SETS)
def test_option_set_parses_into_beam_pipeline_options(name: str, tmp_path: Path) -> None:
    beam, expected = OPTION_SETS[name]
    cfg = load_config(config_with(tmp_path, beam), check_data=False)
    options = beam_pipeline_options(cfg.runner.beam_args).get_all_options()
    for key, value in expected.items():
        assert options[key] == value, key
    # The same arguments reach every component of the pipeline.
    from pipeline.pipeline_def import create_pipeline

    assert create_pipeline(cfg).beam_pipeline_args == list(cfg.runner.beam_args)


@pytest.mark.parametrize("beam, message", [
    ({"runner": "NoSuchRunner"}, "runner.beam.runner: must be one of DirectRunner"),
    ({"runner": "DataflowRunner", "dataflow": {"project": "p", "region": "r"}},
     "runner.beam.dataflow.temp_location: missing required key"),
    ({"runner": "DataflowRunner", "dataflow": {"project": "p", "region": "r", "temp_location": "/tmp"}},
     "runner.beam.dataflow.temp_location: Dataflow needs a Cloud Storage path"),
    ({"runner": "FlinkRunner", "flink": {"job_endpoint": "localhost"}},
     "runner.beam.flink.job_endpoint: must be host:port"),
    ({"runner": "SparkRunner", "spark": {"job_endpoint": "h:8099", "environment_type": "DOCKER"}},
     "runner.beam.spark.environment_config: environment_type DOCKER needs environment_config"),
    ({"runner": "DirectRunner", "direct": {"mode": "in_memory", "workers": 4}},
     "runner.beam.direct.workers: in_memory runs one worker"),
    ({"runner": "DirectRunner", "flink": {"job_endpoint": "h:1"}},
     "'flink' does not apply to runner DirectRunner"),
    ({"runner": "DirectRunner", "direct": {"mode": "fast"}}, "runner.beam.direct.mode: must be one of"),
])
def test_bad_option_set_names_the_key(beam: dict, message: str, tmp_path: Path) -> None:
    path = config_with(tmp_path, beam)
    with pytest.raises(ConfigError) as err:
        load_config(path, check_data=False)
    assert str(path) in str(err.value) and message in str(err.value)


def test_unknown_beam_flag_is_reported() -> None:
    with pytest.raises(ValueError, match="bogus_flag"):
        beam_pipeline_options(["--runner=DirectRunner", "--bogus_flag=1"])


@pytest.mark.parametrize("name", ["direct_in_memory", "direct_multi_processing"])
def test_direct_option_sets_run_a_beam_pipeline(name: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """On the local runner, never through Beam's Prism attempt (a download at run time)."""
    import logging

    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from beam_local.runner import LocalRunner

    cfg = load_config(config_with(tmp_path, OPTION_SETS[name][0]), check_data=False)
    caplog.set_level(logging.INFO)
    with beam.Pipeline(options=beam_pipeline_options(cfg.runner.beam_args)) as p:
        squares = p | beam.Create(range(100)) | beam.Map(lambda x: x * x) | beam.CombineGlobally(sum)
        assert_that(squares, equal_to([sum(x * x for x in range(100))]))
    assert isinstance(p.runner, LocalRunner)
    assert "Prism" not in caplog.text


@pytest.mark.parametrize("given, runner", [
    ([], "beam_local.runner.LocalRunner"),
    (["--runner=DirectRunner", "--direct_num_workers=2"], "beam_local.runner.LocalRunner"),
    (["--runner=DataflowRunner"], "DataflowRunner"),
])
def test_cli_beam_args_get_the_local_runner_for_direct(given: list[str], runner: str, tmp_path: Path) -> None:
    from pipeline import runners

    cfg = runners.with_runner(load_config(derived_config(tmp_path, DATA), check_data=False), "beam",
                              [*given, "--direct_running_mode=multi_processing"])
    assert beam_pipeline_options(cfg.runner.beam_args).get_all_options()["runner"] == runner
    assert [a for a in cfg.runner.beam_args if a.startswith("--runner=")] == [f"--runner={runner}"]


def test_tfx_builds_its_worker_package_for_remote_runners_only() -> None:
    """TFX's Beam executors add a TFX sdist for remote workers; the local runner's workers are this
    interpreter, so none is built for it (beam_local.install)."""
    from tfx.utils import dependency_utils

    import beam_local

    beam_local.install()
    local = [f"--runner={beam_local.LOCAL_RUNNER}", "--direct_num_workers=1"]
    assert dependency_utils.make_beam_dependency_flags(local) == local
    remote = dependency_utils.make_beam_dependency_flags(["--runner=DataflowRunner"])
    assert remote[0] == "--runner=DataflowRunner" and remote[1].startswith("--extra_package=")
