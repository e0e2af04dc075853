"""The local Beam runner: Beam's DirectRunner without its Prism attempt, and no TFX package built
for workers that are this interpreter.

Beam 2.77's DirectRunner first tries the Prism runner for every pipeline it can run
(``apache_beam/runners/direct/direct_runner.py``): it stages the job's packages, starts a worker
pool and downloads Prism from GitHub, and only when that fails falls back to the FnApiRunner.
Nothing may be downloaded at run time, and offline the attempt costs 0.3-3.3 s per Beam component.
``LocalRunner`` goes straight to the FnApiRunner, handing it the pipeline options the way
DirectRunner does, so ``direct_running_mode`` (in_memory, multi_processing, multi_threading) and
``direct_num_workers`` mean what they meant. ``runner.beam: {runner: DirectRunner}``, raw
``--runner=DirectRunner`` and no runner at all select it (pipeline/config/orchestration.py,
``pin_local_runner``); components that run a small Beam job of their own use ``local_options``.

TFX's Beam executors also build a source package of TFX for remote workers before every Beam
component (``tfx/utils/dependency_utils.py``, ``make_beam_dependency_flags``: copy and sdist, 2-4 s
each) unless a dependency flag is set. The FnApiRunner stages nothing: its workers import from this
interpreter. ``install`` skips that step for ``LocalRunner`` only (every other runner, Dataflow,
Flink, Spark, still gets the package) and makes ``LocalRunner`` the default of ``beam.Pipeline()``
in this process. Measured: the tiny run of the test suite (1,500 rows, 17 components) went from
137 s to 100 s (docs/testing.md).
"""

from __future__ import annotations

from typing import Any

# The one name of the runner (importing this package loads no Beam: config parsing reads it).
LOCAL_RUNNER = "beam_local.runner.LocalRunner"


def local_options(*args: str) -> Any:
    """Beam PipelineOptions for a job a component runs on its own, in this process (a few hundred rows)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions([f"--runner={LOCAL_RUNNER}", "--direct_running_mode=in_memory", *args])


def is_local(beam_args: list[str] | tuple[str, ...]) -> bool:
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    runner = PipelineOptions(list(beam_args)).view_as(StandardOptions).runner
    return (runner or StandardOptions.DEFAULT_RUNNER) == LOCAL_RUNNER


def install() -> None:
    """This process's Beam jobs run on ``LocalRunner`` unless their options name another runner,
    and TFX's Beam executors build no TFX sdist for it (every other runner still gets one).

    Called by the processes that run executors (``pipeline run``, the Airflow DAG file, the test
    session, the benchmarks' upstream runs) before any component runs; idempotent."""
    from apache_beam.options.pipeline_options import StandardOptions
    from tfx.utils import dependency_utils

    StandardOptions.DEFAULT_RUNNER = LOCAL_RUNNER  # beam.Pipeline() without --runner
    infer = dependency_utils.make_beam_dependency_flags
    if getattr(infer, "_local_runner_aware", False):
        return

    def make_beam_dependency_flags(beam_pipeline_args: list[str]) -> list[str]:
        return list(beam_pipeline_args) if is_local(beam_pipeline_args) else infer(beam_pipeline_args)

    make_beam_dependency_flags._local_runner_aware = True  # type: ignore[attr-defined]
    dependency_utils.make_beam_dependency_flags = make_beam_dependency_flags  # base_beam_executor calls it by module
