"""DriftSkewGate: stops the pipeline when a new span drifted from the previous span or skewed
from the training data by more than the configured thresholds."""

from tfx import v1 as tfx
from tfx.types import artifact_utils

from components.drift_gate import executor

ExampleStatistics = tfx.types.standard_artifacts.ExampleStatistics


class DriftReport(tfx.dsl.Artifact):
    """report.json and report.md: per comparison and feature, TFDV's measured distance and the threshold."""

    TYPE_NAME = "DriftReport"


def _source(artifact: tfx.dsl.Artifact | None) -> executor.StatsSource | None:
    if artifact is None:
        return None
    return executor.StatsSource(artifact.uri, artifact_utils.decode_split_names(artifact.split_names))


@tfx.dsl.components.component
def DriftSkewGate(
    statistics: tfx.dsl.components.InputArtifact[ExampleStatistics],
    schema: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Schema],
    report: tfx.dsl.components.OutputArtifact[DriftReport],
    thresholds: tfx.dsl.components.Parameter[str],
    previous_statistics: tfx.dsl.components.InputArtifact[ExampleStatistics] = None,
    training_statistics: tfx.dsl.components.InputArtifact[ExampleStatistics] = None,
) -> None:
    """Compares ``statistics`` (the new span) with the previous span (drift) and the training data
    (skew); fails, naming each feature, distance and threshold, if any threshold is exceeded.

    ``thresholds`` is JSON (see components/drift_gate/thresholds.py). Without previous or
    training statistics (the first span) that comparison is skipped and reported as such.
    The report is written to ``report.uri`` and, on failure, also to ``<report.uri>.failed``.
    """
    executor.check(_source(statistics), schema.uri, report.uri, thresholds,
                   previous=_source(previous_statistics), training=_source(training_statistics))
