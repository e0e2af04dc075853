"""InfraValidator: the candidate model must load and answer real requests before Pusher.

TFX's InfraValidator component (same spec, same InfraBlessing output) whose executor serves the
model with ``python -m pipeline serve`` as a local process when the ServingSpec names no
platform, and uses TFX's stock Docker / Kubernetes runners when it does.
"""

from __future__ import annotations

from typing import Any

from tfx.components.infra_validator import component
from tfx.dsl.components.base import executor_spec
from tfx.proto import infra_validator_pb2

from components.infra_validator import executor


class InfraValidator(component.InfraValidator):
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)


def local_serving_spec(model_name: str) -> infra_validator_pb2.ServingSpec:
    """No serving platform: the model is served by a local ``python -m pipeline serve`` process."""
    return infra_validator_pb2.ServingSpec(
        tensorflow_serving=infra_validator_pb2.TensorFlowServing(tags=["latest"]), model_name=model_name)


def infra_validator(cfg: Any, model: Any, examples: Any, *, serving_spec: infra_validator_pb2.ServingSpec | None = None,
                    split: str | None = None, num_examples: int = 20, num_tries: int = 2,
                    max_loading_time_seconds: int = 300) -> InfraValidator:
    """InfraValidator in LOAD_AND_QUERY mode: ``num_examples`` rows of the eval split sent as
    serving_default PredictRequests. ``serving_spec`` with ``local_docker`` or ``kubernetes`` runs
    real TF Serving instead of the local server. Pass its ``outputs["blessing"]`` to Pusher's
    ``infra_blessing``."""
    if split is None:
        splits = getattr(getattr(cfg, "evaluation", None), "splits", None) or ["eval"]
        split = splits[0]
    return InfraValidator(
        model=model, examples=examples,
        serving_spec=serving_spec or local_serving_spec(getattr(cfg, "name", "model")),
        request_spec=infra_validator_pb2.RequestSpec(
            tensorflow_serving=infra_validator_pb2.TensorFlowServingRequestSpec(signature_names=["serving_default"]),
            split_name=split, num_examples=num_examples),
        validation_spec=infra_validator_pb2.ValidationSpec(
            max_loading_time_seconds=max_loading_time_seconds, num_tries=num_tries))
