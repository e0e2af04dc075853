"""ModelCardGenerator component (the shape of tfx-addons' model_card_generator: a Python-function
component after a Pusher, reading the run's artifacts from its channels): a card for each pushed model."""

# No `from __future__ import annotations`: the component decorator reads these annotations.
# An input artifact is optional when its default is None (TFX's parser rejects Optional[...] here).

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.types.artifact import Artifact

from components.data_cleaner.component import CleaningReport
from components.feature_selector.component import FeatureScores
from components.model_card_generator import executor

InputArtifact = InputArtifact
standard = standard_artifacts


class ModelCard(Artifact):
    """model_card.md, model_card.html and card.json (the facts) of one pushed model version."""

    TYPE_NAME = "ModelCard"


@component
def ModelCardGenerator(
    pushed_model: InputArtifact[standard.PushedModel],
    model_card: OutputArtifact[ModelCard],
    pipeline: Parameter[str],
    label: Parameter[str],
    task: Parameter[str],
    target: Parameter[str],
    model_name: Parameter[str] = "trained",
    description: Parameter[str] = "",
    timestamp_column: Parameter[str] = "",
    model_blessing: InputArtifact[standard.ModelBlessing] = None,
    evaluation: InputArtifact[standard.ModelEvaluation] = None,
    statistics: InputArtifact[standard.ExampleStatistics] = None,
    examples: InputArtifact[standard.Examples] = None,
    feature_scores: InputArtifact[FeatureScores] = None,
    cleaning_report: InputArtifact[CleaningReport] = None,
) -> None:
    """Writes model_card.md and model_card.html into the version folder ``pushed_model`` was pushed
    to (and into ``model_card``); nothing when the Pusher did not push."""
    params = {"pipeline": pipeline, "label": label, "task": task, "target": target, "model_name": model_name,
              "description": description, "timestamp_column": timestamp_column}
    executor.run(pushed_model, model_card, params, model_blessing=model_blessing, evaluation=evaluation,
                 statistics=statistics, examples=examples, feature_scores=feature_scores,
                 cleaning_report=cleaning_report)
