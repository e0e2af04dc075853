"""VariantComparison component: trained model vs pruned / QAT / student variants, one table."""

# No `from __future__ import annotations`: the component decorator reads these annotations.
# An input artifact is optional when its default is None (TFX's parser rejects Optional[...] here).

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.types.artifact import Artifact

from components.variant_comparison import executor

InputArtifact = InputArtifact
standard = standard_artifacts
Model, ModelEvaluation, ModelBlessing = standard.Model, standard.ModelEvaluation, standard.ModelBlessing


class VariantTable(Artifact):
    """comparison.json / .csv / .md / .png: one row per model (trained first)."""

    TYPE_NAME = "VariantTable"


@component
def VariantComparison(
    examples: InputArtifact[standard.Examples],
    model: InputArtifact[Model],
    comparison: OutputArtifact[VariantTable],
    split: Parameter[str],
    pruned_model: InputArtifact[Model] = None,
    pruned_evaluation: InputArtifact[ModelEvaluation] = None,
    pruned_blessing: InputArtifact[ModelBlessing] = None,
    qat_model: InputArtifact[Model] = None,
    qat_evaluation: InputArtifact[ModelEvaluation] = None,
    qat_blessing: InputArtifact[ModelBlessing] = None,
    student_model: InputArtifact[Model] = None,
    student_evaluation: InputArtifact[ModelEvaluation] = None,
    student_blessing: InputArtifact[ModelBlessing] = None,
    latency_examples: Parameter[int] = 200,
    task: Parameter[str] = "binary_classification",
) -> None:
    """Compares ``model`` (trained) with each given variant on ``split`` of the raw ``examples``:
    parameters, gzip size, sparsity, metrics (from the variant's Evaluator, which also evaluated
    the trained model as its baseline), blessing and per-example latency."""
    given = {"pruned": (pruned_model, pruned_evaluation, pruned_blessing),
             "qat": (qat_model, qat_evaluation, qat_blessing),
             "student": (student_model, student_evaluation, student_blessing)}
    variants = {name: arts for name, arts in given.items() if arts[0] is not None}
    incomplete = [name for name, arts in variants.items() if None in arts]
    if incomplete:
        raise ValueError(f"VariantComparison: {', '.join(incomplete)}: give the model, evaluation and blessing")
    rows = executor.run(examples, model, variants, split, comparison.uri, latency_examples, task)
    comparison.set_string_custom_property("variants", ",".join(r["variant"] for r in rows))
