"""AnomalyGate: stops the pipeline when ExampleValidator found anomalies."""


from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts

from components.anomaly_gate import executor


@component
def AnomalyGate(anomalies: InputArtifact[standard_artifacts.ExampleAnomalies]) -> None:
    """Fails (and so stops every downstream component) if any split has an anomaly."""
    executor.check(anomalies.uri, artifact_utils.decode_split_names(anomalies.split_names))
