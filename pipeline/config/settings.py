"""PipelineConfig: the loaded config, with what components read from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csvio.reader import Dialect
from features import task as task_lib
from features.feature_steps import FeatureDef
from features.task import Label
from pipeline.config.data import SplitConfig
from pipeline.config.deployment import DeploymentConfig
from pipeline.config.evaluation import EvaluationConfig
from pipeline.config.features import CleaningConfig, SelectionConfig
from pipeline.config.image import ImageData
from pipeline.config.notifications import NotificationsConfig
from pipeline.config.optimization import OptimizationConfig, TuningConfig
from pipeline.config.orchestration import RunnerConfig
from pipeline.config.training import ModelConfig, TrainingConfig


@dataclass(frozen=True)
class PipelineConfig:
    path: Path
    name: str
    data_dir: Path
    split: SplitConfig
    schema_path: Path | None  # None (no `schema:` key): SchemaGen infers one
    label: Label
    features: tuple[FeatureDef, ...]
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    cleaning: CleaningConfig = field(default_factory=CleaningConfig)
    selection: SelectionConfig | None = None
    drift: dict[str, Any] | None = None  # DriftSkewGate thresholds (JSON-able), with data.span_pattern
    tuning: TuningConfig | None = None  # Tuner before Trainer
    optimization: OptimizationConfig | None = None  # pruned / QAT / student variants
    deployment: DeploymentConfig | None = None  # TFLite / TF.js conversion and push
    csv_dialect: Dialect = field(default_factory=Dialect)  # data.delimiter / data.missing_values
    output_root: Path = Path("outputs")
    description: str = ""
    # Multiclass: the label's classes found in the data by the config check (sorted); () unchecked.
    label_classes: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # what the data check found worth saying, not wrong enough to stop
    extra: dict[str, Any] = field(default_factory=dict)
    image: ImageData | None = None  # data.image_dir: ImageExampleGen instead of CsvExampleGen
    notifications: NotificationsConfig | None = None  # webhook on failure / new blessed push (pipeline/notify.py)

    # --- where a run writes: everything under output_root/<name>/ -----------
    @property
    def output_dir(self) -> Path:
        return self.output_root / self.name

    @property
    def pipeline_root(self) -> Path:
        return self.output_dir / "pipeline_root"

    @property
    def metadata_path(self) -> Path:
        return self.output_dir / "metadata.sqlite"

    def pushed_dir(self, target: str = "serving") -> Path:
        return self.output_dir / "pushed" / target

    @property
    def split_buckets(self) -> dict[str, int]:
        return self.split.buckets

    @property
    def serving_excluded_columns(self) -> tuple[str, ...]:
        """Raw columns that only define the label: never required at serving time."""
        used = {c for f in self.features for c in f.source_columns}
        excluded = tuple(c for c in self.label.source_columns if c not in used)
        if self.image is not None:  # ImageExampleGen's size columns: for statistics, never asked at serving
            from features.image import SIZE_COLUMNS

            excluded += tuple(c for c in SIZE_COLUMNS if c not in used)
        return excluded

    def cleaning_rules(self) -> dict[str, Any]:
        """DataCleaner's rules JSON; label columns are protected from column deletion."""
        c = self.cleaning
        rules: dict[str, Any] = {"protected_columns": list(self.label.source_columns)}
        if c.drop_columns_missing_fraction is not None:
            rules["drop_columns_missing_fraction"] = c.drop_columns_missing_fraction
        # Rows without a label cannot be learned from (except by the threshold rule, which
        # counts them negative); a multiclass label must only hold classes train has.
        drop = list(dict.fromkeys([self.label.column] * self.label.drops_missing + list(c.drop_rows_missing)))
        if drop:
            rules["drop_rows_missing"] = drop
        if self.label.task == task_lib.MULTICLASS:
            rules["label_classes"] = self.label.column
        if c.max_missing_per_row is not None:
            rules["max_missing_per_row"] = {"columns": list(c.max_missing_columns), "max": c.max_missing_per_row}
        if c.remove_outliers:
            rules["remove_outliers"] = [
                {"column": r.column, "method": r.method,
                 **({"lower": r.lower, "upper": r.upper} if r.method == "quantile" else {"k": r.k})}
                for r in c.remove_outliers]
        return rules

    def selection_config(self) -> dict[str, Any]:
        """FeatureSelector's config JSON: raw (non-derived) features are the candidates."""
        sel = self.selection
        assert sel is not None
        derived_sources = {c for f in self.features if f.ratio or f.cross or f.cyclical for c in f.source_columns}
        return {
            "method": sel.method, "top_k": sel.top_k, "threshold": sel.threshold,
            "candidates": [{"name": f.name, "type": f.type} for f in self.features
                           if not (f.ratio or f.cross or f.cyclical)],
            "label": self.label.to_json(),
            "always_keep": sorted(set(sel.always_keep) | derived_sources),
            "sample_size": sel.sample_size, "seed": 0,
        }

    @property
    def cleaning_enabled(self) -> bool:
        """DataCleaner runs: for configured rules, or to drop rows without a label."""
        return self.cleaning.enabled or self.label.drops_missing

    def transform_custom_config(self) -> dict[str, Any]:
        """The JSON-able slice of the config that module files read (via custom_config)."""
        return {
            "label": self.label.to_json(),
            "features": [f.to_json() for f in self.features],
            "serving_excluded_columns": list(self.serving_excluded_columns),
        }

    def trainer_custom_config(self) -> dict[str, Any]:
        return {
            **self.transform_custom_config(),
            "model": {
                "hidden_units": list(self.model.hidden_units),
                "embedding_dim": self.model.embedding_dim,
                "dropout": self.model.dropout,
                "learning_rate": self.model.learning_rate,
                "batch_size": self.model.batch_size,
                **({"sequence": dict(self.model.sequence)} if self.model.sequence else {}),
                **({"conv": self.model.conv} if self.model.conv else {}),
            },
            "training": {
                "epochs": self.training.epochs,
                "early_stopping_patience": self.training.early_stopping_patience,
                **({"augmentation": self.training.augmentation} if self.training.augmentation else {}),
            },
        }

    def tuner_custom_config(self) -> dict[str, Any]:
        assert self.tuning is not None
        return {**self.trainer_custom_config(), "tuning": self.tuning.to_json()}

    def variant_config(self, variant: str) -> dict[str, Any]:
        """The JSON parameter of the component that makes ``variant`` (Pruner, ...)."""
        assert self.optimization is not None
        params = self.optimization.variant(variant).params
        return {**params, "batch_size": self.model.batch_size, "custom_config": self.trainer_custom_config()}
