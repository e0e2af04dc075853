"""DriftSkewGate: stops the pipeline when a new span drifted from the previous span or skewed
from the training data by more than the configured thresholds."""

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.artifact import Artifact

from components.drift_skew_gate import executor

ExampleStatistics = standard_artifacts.ExampleStatistics


class DriftReport(Artifact):
    """report.json and report.md: per comparison and feature, TFDV's measured distance and the threshold."""

    TYPE_NAME = "DriftReport"


def _source(artifact: Artifact | None) -> executor.StatsSource | None:
    if artifact is None:
        return None
    return executor.StatsSource(artifact.uri, artifact_utils.decode_split_names(artifact.split_names))


@component
def DriftSkewGate(
    statistics: InputArtifact[ExampleStatistics],
    schema: InputArtifact[standard_artifacts.Schema],
    report: OutputArtifact[DriftReport],
    thresholds: Parameter[str],
    previous_statistics: InputArtifact[ExampleStatistics] = None,
    training_statistics: InputArtifact[ExampleStatistics] = None,
) -> None:
    """Compares ``statistics`` (the new span) with the previous span (drift) and the training data
    (skew); fails, naming each feature, distance and threshold, if any threshold is exceeded.

    ``thresholds`` is JSON (see components/drift_skew_gate/thresholds.py). Without previous or
    training statistics (the first span) that comparison is skipped and reported as such.
    The report is written to ``report.uri`` and, on failure, also to ``<report.uri>.failed``.
    """
    executor.check(_source(statistics), schema.uri, report.uri, thresholds,
                   previous=_source(previous_statistics), training=_source(training_statistics))
