"""Pipeline configuration: one YAML file per pipeline, validated on load.

Every error names the file and the key path (``features[2].steps[0].top_k``) so a user can fix a
config without reading this code. Relative paths in a config are resolved against its folder.

The package, bottom up: errors.py (ConfigError, the key-path Reader); model.py (the YAML as
pydantic models, one per section: keys, types, bounds, enums); one parser per section (data.py
with drift, label.py, features.py with cleaning and feature_selection, training.py, evaluation.py,
optimization.py with tuning, deployment.py, orchestration.py for runner: Beam, Airflow, ML
Metadata; image.py and text.py for their keys) for the checks that span keys or sections;
settings.py (PipelineConfig); data_checks.py (everything that reads the data files);
loader.py (load_config: validate, parse, then check against the data).

``python -m pipeline config-schema --output pipeline.schema.json`` writes the JSON Schema of the
YAML (from model.py). Editors with the YAML language server (VS Code's YAML extension, neovim's
yamlls, ...) complete and check a config given this first line::

    # yaml-language-server: $schema=../../../pipeline.schema.json
"""

from features.task import Label
from pipeline.config.data import SplitConfig
from pipeline.config.deployment import DeploymentConfig, default_thresholds, deployment_config
from pipeline.config.errors import ConfigError
from pipeline.config.evaluation import SPLIT_NAMES, EvaluationConfig, Threshold
from pipeline.config.features import CleaningConfig, OutlierRule, SelectionConfig
from pipeline.config.loader import load_config
from pipeline.config.model import json_schema
from pipeline.config.optimization import DEFAULT_VARIANT_THRESHOLDS, OptimizationConfig, TuningConfig
from pipeline.config.orchestration import (
                                           ENGINES,
                                           AirflowSettings,
                                           MySQLSettings,
                                           RunnerConfig,
                                           beam_pipeline_options,
                                           metadata_connection_config,
)
from pipeline.config.settings import PipelineConfig
from pipeline.config.training import ModelConfig, TrainingConfig

__all__ = ["DEFAULT_VARIANT_THRESHOLDS", "ENGINES", "SPLIT_NAMES", "AirflowSettings", "CleaningConfig",
           "ConfigError", "DeploymentConfig", "EvaluationConfig", "Label", "ModelConfig", "MySQLSettings",
           "OptimizationConfig", "OutlierRule", "PipelineConfig", "RunnerConfig", "SelectionConfig",
           "SplitConfig", "Threshold", "TrainingConfig", "TuningConfig", "beam_pipeline_options",
           "default_thresholds", "deployment_config", "json_schema", "load_config",
           "metadata_connection_config"]
