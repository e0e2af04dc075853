"""``LocalRunner``: Beam's FnApiRunner as DirectRunner runs it, without DirectRunner's Prism attempt
(beam_local/__init__.py says why)."""

from __future__ import annotations

from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability.api import beam_provision_api_pb2
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.runners.portability.portable_runner import JobServiceHandle


class LocalRunner(fn_runner.FnApiRunner):
    """The FnApiRunner DirectRunner falls back to, without trying Prism first."""

    def run_pipeline(self, pipeline: Any, options: PipelineOptions) -> Any:
        # As DirectRunner.run_pipeline: the workers (subprocesses in multi_processing) read the options.
        encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
        self._provision_info = fn_runner.ExtendedProvisionInfo(
            beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
        return super().run_pipeline(pipeline, options)
