"""AnomalyGate: stops the pipeline when ExampleValidator found anomalies."""


from tfx import v1 as tfx
from tfx.types import artifact_utils

from components.anomaly_gate import executor


@tfx.dsl.components.component
def AnomalyGate(anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies]) -> None:
    """Fails (and so stops every downstream component) if any split has an anomaly."""
    executor.check(anomalies.uri, artifact_utils.decode_split_names(anomalies.split_names))
