"""InfraValidator executor: TFX's, with a local-process model server when no platform is set.

With ``serving_spec.local_docker`` or ``serving_spec.kubernetes`` the stock TFX runner starts real
TensorFlow Serving; without a platform, ``python -m pipeline serve`` is started on the candidate
model. Everything else (LOAD_AND_QUERY requests built from the examples, TFX's gRPC client,
retries, the INFRA_BLESSED / INFRA_NOT_BLESSED marker and the ``blessed`` property) is TFX's.
"""

from __future__ import annotations

import time
from typing import Any

from absl import logging
from tfx.components.infra_validator import executor as tfx_executor
from tfx.proto import infra_validator_pb2

from components.infra_validator.runner import LocalProcessRunner

POLLING_INTERVAL_SEC = 1


class Executor(tfx_executor.Executor):
    def _ValidateOnce(self, model_path: str, serving_binary: Any, serving_spec: infra_validator_pb2.ServingSpec,
                      validation_spec: infra_validator_pb2.ValidationSpec, requests: list) -> None:
        if serving_spec.WhichOneof("serving_platform"):
            super()._ValidateOnce(model_path=model_path, serving_binary=serving_binary, serving_spec=serving_spec,
                                  validation_spec=validation_spec, requests=requests)
            return
        deadline = time.time() + validation_spec.max_loading_time_seconds
        runner = LocalProcessRunner(model_path, serving_spec.model_name)
        try:
            logging.info("Starting %r.", runner)
            runner.Start()
            runner.WaitUntilRunning(deadline)
            client = serving_binary.MakeClient(runner.GetEndpoint())
            client.WaitUntilModelLoaded(deadline, polling_interval_sec=POLLING_INTERVAL_SEC)
            if requests:
                client.SendRequests(requests)
                logging.info("The model answered %d requests.", len(requests))
        except Exception:
            logging.exception("Infra validation failed; model server log:\n%s", runner.GetLogs())
            raise
        finally:
            logging.info("Stopping %r.", runner)
            runner.Stop()
