"""Pipeline configuration: one YAML file per pipeline, validated on load.

Every error names the file and the key path (``features[2].steps[0].top_k``) so a
user can fix a config without reading this code. Relative paths in a config are
resolved against the directory of the config file.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modules import feature_steps

ENGINES = ("local", "beam")
TASKS = ("binary_classification",)
SPLIT_NAMES = ("train", "eval", "test")
# TFMA class names of the metrics every run reports; thresholds may name any of them.
METRICS = {
    "example_count": "ExampleCount",
    "binary_crossentropy": "BinaryCrossentropy",
    "binary_accuracy": "BinaryAccuracy",
    "precision": "Precision",
    "recall": "Recall",
    "f1_score": "F1Score",
    "auc": "AUC",
}


class ConfigError(ValueError):
    """A config file is malformed; the message names the file and key."""


@dataclass(frozen=True)
class Feature:
    name: str
    type: str
    steps: tuple[tuple[str, dict], ...]

    @property
    def transformed_name(self) -> str:
        return f"{self.name}_xf"

    @property
    def output(self) -> feature_steps.OutputSpec:
        return feature_steps.output_spec(self.type, list(self.steps))


@dataclass(frozen=True)
class Label:
    name: str
    column: str
    task: str
    # Positive when column > factor * other column, or column > value.
    greater_than_column: str | None = None
    factor: float = 1.0
    greater_than: float | None = None

    @property
    def source_columns(self) -> tuple[str, ...]:
        return (self.column,)


@dataclass(frozen=True)
class Threshold:
    metric: str
    lower_bound: float | None = None
    upper_bound: float | None = None
    max_decrease: float | None = None  # vs the latest blessed model


@dataclass(frozen=True)
class ModelConfig:
    hidden_units: tuple[int, ...] = (64, 32)
    embedding_dim: int = 8
    dropout: float = 0.1
    learning_rate: float = 0.001
    batch_size: int = 128


@dataclass(frozen=True)
class TrainingConfig:
    train_steps: int = 1000
    eval_steps: int = 100
    epochs: int = 5
    early_stopping_patience: int = 2


@dataclass(frozen=True)
class EvaluationConfig:
    splits: tuple[str, ...] = ("eval", "test")
    slices: tuple[tuple[str, ...], ...] = ()
    thresholds: tuple[Threshold, ...] = ()


@dataclass(frozen=True)
class RunnerConfig:
    engine: str = "local"
    beam_args: tuple[str, ...] = ("--direct_running_mode=in_memory", "--direct_num_workers=1")


@dataclass(frozen=True)
class PipelineConfig:
    path: Path
    name: str
    data_dir: Path
    split_buckets: dict[str, int]
    schema_path: Path
    label: Label
    features: tuple[Feature, ...]
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    runner: RunnerConfig = RunnerConfig()
    output_root: Path = Path("outputs")
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

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
    def serving_excluded_columns(self) -> tuple[str, ...]:
        """Raw columns that only define the label: never required at serving time."""
        feature_names = {f.name for f in self.features}
        return tuple(c for c in self.label.source_columns if c not in feature_names)

    def transform_custom_config(self) -> dict[str, Any]:
        """The JSON-able slice of the config that module files read (via custom_config)."""
        return {
            "label": {
                "name": self.label.name,
                "column": self.label.column,
                "greater_than_column": self.label.greater_than_column,
                "factor": self.label.factor,
                "greater_than": self.label.greater_than,
            },
            "features": [
                {"name": f.name, "type": f.type, "steps": [[n, a] for n, a in f.steps]}
                for f in self.features
            ],
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
            },
            "training": {
                "epochs": self.training.epochs,
                "early_stopping_patience": self.training.early_stopping_patience,
            },
        }


# ------------------------------------------------------------------ loading --
class _Reader:
    """Walks a YAML mapping, recording the key path for error messages."""

    def __init__(self, source: Path, data: Any, where: str = ""):
        self.source, self.data, self.where = source, data, where

    def fail(self, msg: str, key: str | None = None) -> ConfigError:
        path = self.where + (f".{key}" if key and self.where else key or "")
        return ConfigError(f"{self.source}: {path or '<top level>'}: {msg}")

    def mapping(self, allowed: set[str]) -> dict:
        if not isinstance(self.data, dict):
            raise self.fail(f"expected a mapping, got {type(self.data).__name__}")
        unknown = sorted(set(self.data) - allowed)
        if unknown:
            raise self.fail(f"unknown key '{unknown[0]}'; allowed: {', '.join(sorted(allowed))}")
        return self.data

    def child(self, key: str | int) -> _Reader:
        data = self.data[key]
        where = f"{self.where}[{key}]" if isinstance(key, int) else (f"{self.where}.{key}" if self.where else key)
        return _Reader(self.source, data, where)

    def get(self, key: str, types: tuple[type, ...], default: Any = ..., check=None) -> Any:
        if key not in self.data:
            if default is ...:
                raise self.fail("missing required key", key)
            return default
        value = self.data[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            names = "/".join(t.__name__ for t in types)
            raise self.fail(f"must be {names}, got {value!r}", key)
        if check and (err := check(value)):
            raise self.fail(err, key)
        return value


def _positive(v: Any) -> str | None:
    return None if v > 0 else "must be > 0"


def _csv_header(data_dir: Path, source: Path) -> list[str]:
    files = sorted(data_dir.glob("*.csv"))
    if not files:
        raise ConfigError(f"{source}: data.csv_dir: no *.csv file in {data_dir}")
    with files[0].open(newline="") as fh:
        header = next(csv.reader(fh), None)
    if not header:
        raise ConfigError(f"{source}: data.csv_dir: {files[0]} is empty")
    for other in files[1:]:
        with other.open(newline="") as fh:
            if next(csv.reader(fh), None) != header:
                raise ConfigError(f"{source}: data.csv_dir: {other} has a different header from {files[0]}")
    return header


def load_config(path: str | Path, *, output_root: str | Path | None = None,
                check_data: bool = True) -> PipelineConfig:
    """Load and validate a pipeline YAML. Raises ConfigError naming the bad key."""
    source = Path(path)
    if not source.is_file():
        raise ConfigError(f"{source}: no such config file")
    try:
        raw = yaml.safe_load(source.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    base = source.resolve().parent
    top = _Reader(source, raw)
    top.mapping({"name", "description", "data", "schema", "label", "features", "model",
                 "training", "evaluation", "runner", "output_root"})
    name = top.get("name", (str,), check=lambda v: None if v.replace("_", "").replace("-", "").isalnum()
                   else "use letters, digits, '-' and '_' only")

    data = top.child("data")
    data.mapping({"csv_dir", "splits"})
    data_dir = (base / data.get("csv_dir", (str,))).resolve()
    if not data_dir.is_dir():
        raise data.fail(f"directory {data_dir} does not exist", "csv_dir")
    splits = data.child("splits") if "splits" in data.data else None
    buckets = {"train": 8, "eval": 1, "test": 1}
    if splits is not None:
        splits.mapping(set(SPLIT_NAMES))
        buckets = {s: splits.get(s, (int,), check=_positive) for s in SPLIT_NAMES}

    schema_path = (base / top.get("schema", (str,))).resolve()

    label_r = top.child("label")
    label_r.mapping({"name", "column", "task", "positive_when"})
    pos = label_r.child("positive_when") if "positive_when" in label_r.data else None
    gt_col, factor, gt = None, 1.0, None
    if pos is not None:
        pos.mapping({"greater_than_column", "factor", "greater_than"})
        gt_col = pos.get("greater_than_column", (str,), None)
        factor = float(pos.get("factor", (int, float), 1.0))
        gt = pos.get("greater_than", (int, float), None)
        if (gt_col is None) == (gt is None):
            raise pos.fail("give exactly one of greater_than_column or greater_than")
    label = Label(
        name=label_r.get("name", (str,)),
        column=label_r.get("column", (str,)),
        task=label_r.get("task", (str,), "binary_classification",
                         check=lambda v: None if v in TASKS else f"must be one of {', '.join(TASKS)}"),
        greater_than_column=gt_col, factor=factor,
        greater_than=None if gt is None else float(gt),
    )

    feats_r = top.child("features")
    if not isinstance(feats_r.data, list) or not feats_r.data:
        raise top.fail("must be a non-empty list", "features")
    features = []
    for i in range(len(feats_r.data)):
        f = feats_r.child(i)
        f.mapping({"name", "type", "steps"})
        fname = f.get("name", (str,))
        ftype = f.get("type", (str,), check=lambda v: None if v in feature_steps.VALUE_TYPES
                      else f"must be one of {', '.join(feature_steps.VALUE_TYPES)}")
        steps_raw = f.get("steps", (list,), [])
        steps = []
        for j, step in enumerate(steps_raw):
            if isinstance(step, str):
                steps.append((step, {}))
            elif isinstance(step, dict) and len(step) == 1:
                (sname, sargs), = step.items()
                if sargs is None:
                    sargs = {}
                if not isinstance(sargs, dict):
                    raise f.fail(f"step '{sname}' takes a mapping of arguments, got {sargs!r}", f"steps[{j}]")
                steps.append((sname, dict(sargs)))
            else:
                raise f.fail("a step is a name or a one-key mapping {name: {args}}", f"steps[{j}]")
        problems = feature_steps.check_steps(ftype, steps)
        if problems:
            raise ConfigError(f"{source}: features[{i}] ({fname}): {problems[0]}")
        features.append(Feature(fname, ftype, tuple(steps)))
    names = [f.name for f in features]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise top.fail(f"feature '{dupes[0]}' is listed twice", "features")
    if label.name in names:
        raise label_r.fail(f"label name '{label.name}' collides with a feature name", "name")

    model = ModelConfig()
    if "model" in top.data:
        m = top.child("model")
        m.mapping({"hidden_units", "embedding_dim", "dropout", "learning_rate", "batch_size"})
        hidden = m.get("hidden_units", (list,), list(model.hidden_units))
        if not hidden or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden):
            raise m.fail("must be a non-empty list of positive integers", "hidden_units")
        model = ModelConfig(
            hidden_units=tuple(hidden),
            embedding_dim=m.get("embedding_dim", (int,), model.embedding_dim, _positive),
            dropout=float(m.get("dropout", (int, float), model.dropout,
                                lambda v: None if 0 <= v < 1 else "must be in [0, 1)")),
            learning_rate=float(m.get("learning_rate", (int, float), model.learning_rate, _positive)),
            batch_size=m.get("batch_size", (int,), model.batch_size, _positive),
        )

    training = TrainingConfig()
    if "training" in top.data:
        t = top.child("training")
        t.mapping({"train_steps", "eval_steps", "epochs", "early_stopping_patience"})
        training = TrainingConfig(
            train_steps=t.get("train_steps", (int,), training.train_steps, _positive),
            eval_steps=t.get("eval_steps", (int,), training.eval_steps, _positive),
            epochs=t.get("epochs", (int,), training.epochs, _positive),
            early_stopping_patience=t.get("early_stopping_patience", (int,),
                                          training.early_stopping_patience, _positive),
        )
        if training.train_steps < training.epochs:
            raise t.fail("must be >= epochs (steps are divided among epochs)", "train_steps")

    evaluation = EvaluationConfig()
    if "evaluation" in top.data:
        e = top.child("evaluation")
        e.mapping({"splits", "slices", "thresholds"})
        esplits = e.get("splits", (list,), list(evaluation.splits))
        bad = [s for s in esplits if s not in SPLIT_NAMES]
        if not esplits or bad:
            raise e.fail(f"must list splits among {', '.join(SPLIT_NAMES)}; got {esplits}", "splits")
        slices = []
        for k, sl in enumerate(e.get("slices", (list,), [])):
            cols = [sl] if isinstance(sl, str) else sl
            if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
                raise e.fail("a slice is a column name or a list of column names", f"slices[{k}]")
            for c in cols:
                if c not in names:
                    raise e.fail(f"'{c}' is not a feature", f"slices[{k}]")
            slices.append(tuple(cols))
        thresholds = []
        ths = e.get("thresholds", (list,), [])
        for k in range(len(ths)):
            th = e.child("thresholds").child(k)
            th.mapping({"metric", "lower_bound", "upper_bound", "max_decrease"})
            metric = th.get("metric", (str,), check=lambda v: None if v in METRICS
                            else f"unknown metric; known: {', '.join(METRICS)}")
            lb = th.get("lower_bound", (int, float), None)
            ub = th.get("upper_bound", (int, float), None)
            md = th.get("max_decrease", (int, float), None)
            if lb is None and ub is None and md is None:
                raise th.fail("give lower_bound, upper_bound or max_decrease")
            thresholds.append(Threshold(metric, lb, ub, md))
        evaluation = EvaluationConfig(tuple(esplits), tuple(slices), tuple(thresholds))

    runner = RunnerConfig()
    if "runner" in top.data:
        r = top.child("runner")
        r.mapping({"engine", "beam_args"})
        engine = r.get("engine", (str,), runner.engine,
                       lambda v: None if v in ENGINES else f"must be one of {', '.join(ENGINES)}")
        args = r.get("beam_args", (list,), list(runner.beam_args))
        if not all(isinstance(a, str) and a.startswith("--") for a in args):
            raise r.fail("each Beam argument is a string like '--flag=value'", "beam_args")
        runner = RunnerConfig(engine, tuple(args))

    if output_root is None:
        output_root = base / top.data["output_root"] if "output_root" in top.data else Path("outputs")

    config = PipelineConfig(
        path=source, name=name, data_dir=data_dir, split_buckets=buckets,
        schema_path=schema_path, label=label, features=tuple(features), model=model,
        training=training, evaluation=evaluation, runner=runner,
        output_root=Path(output_root).resolve(),
        description=top.get("description", (str,), ""),
    )
    if check_data:
        header = _csv_header(data_dir, source)
        needed = [(f"features ({f.name})", f.name) for f in features]
        needed.append(("label.column", label.column))
        if label.greater_than_column:
            needed.append(("label.positive_when.greater_than_column", label.greater_than_column))
        for key, col in needed:
            if col not in header:
                raise ConfigError(f"{source}: {key}: column '{col}' is not in the data "
                                  f"({data_dir}); columns: {', '.join(header)}")
    return config
