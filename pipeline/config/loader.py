"""load_config: YAML -> pydantic validation (model.py) -> section parsers -> data checks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import yaml

from pipeline.config import data as data_section
from pipeline.config import data_checks, deployment, evaluation, features, model, optimization, orchestration, training
from pipeline.config.errors import ConfigError, Reader
from pipeline.config.label import parse_label
from pipeline.config.notifications import parse_notifications
from pipeline.config.settings import PipelineConfig


def load_config(path: str | Path, *, output_root: str | Path | None = None,
                check_data: bool = True) -> PipelineConfig:
    """Load and validate a pipeline YAML. Raises ConfigError naming the bad key.

    With ``check_data`` (validate and run both load this way) the data files are then read
    (data_checks.py); without it nothing but the config file and folder names is touched."""
    source = Path(path)
    if not source.is_file():
        raise ConfigError(f"{source}: no such config file")
    try:
        raw = yaml.safe_load(source.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    doc = model.validate(raw, source)  # keys, types, bounds, enums: every section at once
    base = source.resolve().parent
    top = Reader(source, raw)
    if not doc.name.replace("_", "").replace("-", "").isalnum():  # it names the output folder and MLMD context
        raise top.fail("use letters, digits, '-' and '_' only", "name")
    data_dir, split, csv_dialect, image_data = data_section.parse_data(top.child("data"), doc.data, base)
    schema_path = (base / doc.schema_).resolve() if doc.schema_ is not None else None
    label = parse_label(top.child("label"), doc.label)
    feats = features.parse_features(top, doc.features, label, source)
    names = [f.name for f in feats]
    cleaning = features.parse_cleaning(top, doc.cleaning)
    selection = features.parse_selection(top, doc.feature_selection, names)
    drift = data_section.parse_drift(top, doc.drift, split)
    evaluation_config = evaluation.parse_evaluation(top, doc.evaluation, names, label.task)
    tuning = optimization.parse_tuning(top, doc.tuning, label.task) if doc.tuning is not None else None
    optim = (optimization.parse_optimization(top, doc.optimization, evaluation_config.splits, label.task)
             if doc.optimization is not None else None)
    variant_names = tuple(v.name for v in optim.variants) if optim else ()
    deploy = (deployment.parse_deployment(top, doc.deployment, evaluation_config.splits, variant_names, label.task)
              if doc.deployment is not None else None)
    if output_root is None:
        output_root = base / doc.output_root if doc.output_root is not None else Path("outputs")
    config = PipelineConfig(
        path=source, name=doc.name, data_dir=data_dir, split=split, cleaning=cleaning, selection=selection,
        drift=drift, tuning=tuning, optimization=optim, deployment=deploy, csv_dialect=csv_dialect,
        schema_path=schema_path, label=label, features=feats, model=training.parse_model(doc.model),
        training=training.parse_training(top, doc.training), evaluation=evaluation_config,
        runner=orchestration.parse_runner(top, doc.runner), output_root=Path(output_root).resolve(),
        description=doc.description, image=image_data, notifications=parse_notifications(top, doc.notifications),
    )
    if check_data:
        classes, notes = data_checks.check_data(config, source)
        config = replace(config, label_classes=classes, notes=notes)
    return config
