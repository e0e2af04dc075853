"""Pipeline configuration: one YAML file per pipeline, validated on load.

Every error names the file and the key path (``features[2].steps[0].top_k``) so a
user can fix a config without reading this code. Relative paths in a config are
resolved against the directory of the config file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from csvio import reader
from csvio.reader import Dialect
from features import feature_steps
from features import task as task_lib
from features.feature_steps import FeatureDef
from features.task import Label

__all__ = ["ConfigError", "Label", "PipelineConfig", "load_config"]

if TYPE_CHECKING:
    from pipeline.config_deployment import DeploymentConfig
    from pipeline.config_image import ImageData
    from pipeline.config_optimization import OptimizationConfig, TuningConfig
    from pipeline.orchestration import AirflowSettings, MySQLSettings

ENGINES = ("local", "beam")
TASKS = task_lib.TASKS
SPLIT_NAMES = ("train", "eval", "test")


class ConfigError(ValueError):
    """A config file is malformed; the message names the file and key."""


@dataclass(frozen=True)
class Threshold:
    metric: str
    lower_bound: float | None = None
    upper_bound: float | None = None
    max_decrease: float | None = None  # vs the baseline model (higher-is-better metrics)
    max_increase: float | None = None  # vs the baseline model (lower-is-better metrics: rmse, mse, ...)


@dataclass(frozen=True)
class ModelConfig:
    hidden_units: tuple[int, ...] = (64, 32)
    embedding_dim: int = 8
    dropout: float = 0.1
    learning_rate: float = 0.001
    batch_size: int = 128
    sequence: dict[str, Any] | None = None  # text features' Embedding + LSTM (pipeline/config_text.py)
    conv: dict[str, Any] | None = None  # image models: {filters, kernel_size, pool_size} (config_image.py)


@dataclass(frozen=True)
class TrainingConfig:
    train_steps: int = 1000
    eval_steps: int = 100
    epochs: int = 5
    early_stopping_patience: int = 2
    augmentation: dict[str, Any] | None = None  # image models: train batches only (config_image.py)


@dataclass(frozen=True)
class EvaluationConfig:
    splits: tuple[str, ...] = ("eval", "test")
    slices: tuple[tuple[str, ...], ...] = ()
    thresholds: tuple[Threshold, ...] = ()


@dataclass(frozen=True)
class OutlierRule:
    column: str
    method: str  # quantile | iqr | z_score
    lower: float = 0.01
    upper: float = 0.99
    k: float = 1.5


@dataclass(frozen=True)
class CleaningConfig:
    """Row and column deletion, run by the DataCleaner component (fitted on train)."""

    drop_columns_missing_fraction: float | None = None
    drop_rows_missing: tuple[str, ...] = ()
    max_missing_per_row: int | None = None
    max_missing_columns: tuple[str, ...] = ()
    remove_outliers: tuple[OutlierRule, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.drop_columns_missing_fraction is not None or self.drop_rows_missing
                    or self.max_missing_per_row is not None or self.remove_outliers)


@dataclass(frozen=True)
class SelectionConfig:
    method: str = "mutual_information"  # or correlation
    top_k: int | None = None
    threshold: float | None = None
    always_keep: tuple[str, ...] = ()
    sample_size: int = 50000


@dataclass(frozen=True)
class SplitConfig:
    """How ExampleGen splits: by hash of the row (default), of a partition column, or by time."""

    buckets: dict[str, int]
    partition_column: str | None = None
    timestamp_column: str | None = None
    eval_from: str | None = None  # ISO date: rows at or after it go to eval...
    test_from: str | None = None  # ...and at or after this one to test

    span_pattern: str | None = None  # e.g. "span-{SPAN}/*.csv": each run ingests the latest span

    @property
    def temporal(self) -> bool:
        return self.timestamp_column is not None


@dataclass(frozen=True)
class RunnerConfig:
    engine: str = "local"
    beam_args: tuple[str, ...] = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
    airflow: AirflowSettings | None = None  # runner.airflow: the DAG's schedule (pipeline/orchestration.py)
    mysql: MySQLSettings | None = None  # runner.metadata.mysql; None: sqlite under outputs/<name>/


@dataclass(frozen=True)
class PipelineConfig:
    path: Path
    name: str
    data_dir: Path
    split: SplitConfig
    schema_path: Path | None  # None (no `schema:` key): SchemaGen infers one
    label: Label
    features: tuple[FeatureDef, ...]
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    runner: RunnerConfig = RunnerConfig()
    cleaning: CleaningConfig = CleaningConfig()
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


def parse_thresholds(parent: _Reader, key: str, task: str) -> tuple[Threshold, ...]:
    """A list of {metric, lower_bound?, upper_bound?, max_decrease? | max_increase?} under
    ``parent[key]``; metrics are the ``task``'s (``features.task.METRICS``)."""
    if not isinstance(parent.data[key], list):
        raise parent.fail("must be a list of {metric, lower_bound, upper_bound, max_decrease, max_increase}", key)
    known = task_lib.METRICS[task]
    thresholds = []
    for k in range(len(parent.data[key])):
        th = parent.child(key).child(k)
        th.mapping({"metric", "lower_bound", "upper_bound", "max_decrease", "max_increase"})
        metric = th.get("metric", (str,), check=lambda v: None if v in known
                        else f"unknown metric for {task}; known: {', '.join(known)}")
        lb = th.get("lower_bound", (int, float), None)
        ub = th.get("upper_bound", (int, float), None)
        md = th.get("max_decrease", (int, float), None, _non_negative)
        mi = th.get("max_increase", (int, float), None, _non_negative)
        if lb is None and ub is None and md is None and mi is None:
            raise th.fail("give lower_bound, upper_bound, max_decrease or max_increase")
        higher = known[metric].higher_is_better
        if md is not None and not higher:
            raise th.fail(f"'{metric}' is lower-is-better: limit its change with max_increase", "max_decrease")
        if mi is not None and higher:
            raise th.fail(f"'{metric}' is higher-is-better: limit its change with max_decrease", "max_increase")
        thresholds.append(Threshold(metric, lb, ub, md, mi))
    return tuple(thresholds)


def _non_negative(v: Any) -> str | None:
    return None if v >= 0 else "must be >= 0"


def _positive(v: Any) -> str | None:
    return None if v > 0 else "must be > 0"


def _csv_files(data_dir: Path, span_pattern: str | None) -> list[Path]:
    return sorted(data_dir.glob(span_pattern.replace("{SPAN}", "*") if span_pattern else "*.csv"))


def _scan_data(config: PipelineConfig, source: Path) -> reader.Scan:
    """Every row of every CSV, read by csvio/reader.py exactly as ExampleGen reads
    them: a malformed file raises the reader's CsvFormatError (file, line, column), as the run would."""
    pattern = config.split.span_pattern
    files = _csv_files(config.data_dir, pattern)
    if not files:
        raise ConfigError(f"{source}: data.csv_dir: no {pattern or '*.csv'} file in {config.data_dir}")
    return reader.scan([str(f) for f in files], config.csv_dialect)


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
                 "training", "evaluation", "runner", "output_root", "cleaning", "feature_selection", "drift",
                 "tuning", "optimization", "deployment"})
    name = top.get("name", (str,), check=lambda v: None if v.replace("_", "").replace("-", "").isalnum()
                   else "use letters, digits, '-' and '_' only")

    data = top.child("data")
    data.mapping({"csv_dir", "splits", "split_by", "span_pattern", "delimiter", "missing_values",
                  "image_dir", "labels"})
    from pipeline import config_image

    image_data = None
    if "image_dir" in data.data or "labels" in data.data:  # a folder of images (pipeline/config_image.py)
        image_data = config_image.parse_image_data(data, base)
    data_dir = image_data.image_dir if image_data else (base / data.get("csv_dir", (str,))).resolve()
    if not data_dir.is_dir():
        raise data.fail(f"directory {data_dir} does not exist", "csv_dir")
    split = _split_config(data)
    if "span_pattern" in data.data:
        pattern = data.get("span_pattern", (str,), check=lambda v: None if "{SPAN}" in v
                           else "must contain {SPAN}, e.g. span-{SPAN}/*.csv")
        if split.temporal:
            raise data.fail("spans go with hash or column splits, not split_by.timestamp_column", "span_pattern")
        split = replace(split, span_pattern=pattern)

    csv_dialect = _csv_dialect(data)
    schema_path = (base / top.get("schema", (str,))).resolve() if "schema" in top.data else None

    label_r = top.child("label")
    label = _label(label_r)

    feats_r = top.child("features")
    if not isinstance(feats_r.data, list) or not feats_r.data:
        raise top.fail("must be a non-empty list", "features")
    features = []
    for i in range(len(feats_r.data)):
        f = feats_r.child(i)
        f.mapping({"name", "type", "steps", "ratio", "cross", "cyclical"})
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
        ratio, cross, cyclical = _derivation(f, ftype)
        problems = [] if cyclical else feature_steps.check_steps(ftype, steps)
        if cyclical and steps:
            problems.append("a cyclical feature has fixed sin/cos outputs: remove its steps")
        if problems:
            raise ConfigError(f"{source}: features[{i}] ({fname}): {problems[0]}")
        features.append(FeatureDef(fname, ftype, tuple(steps), ratio, cross, cyclical))
    names = [f.name for f in features]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise top.fail(f"feature '{dupes[0]}' is listed twice", "features")
    if label.name in names:
        raise label_r.fail(f"label name '{label.name}' collides with a feature name", "name")
    for f in features:  # the threshold rule's second column (fare in tips > 0.2 * fare) may be one
        if label.column in f.source_columns:
            raise label_r.fail(f"'{label.column}' is also a source of feature '{f.name}': the model would be "
                               "given the answer; remove that feature", "column")
    cleaning = _cleaning_config(top) if "cleaning" in top.data else CleaningConfig()
    selection = _selection_config(top, names) if "feature_selection" in top.data else None
    drift = _drift_config(top, split) if "drift" in top.data else None

    model = ModelConfig()
    if "model" in top.data:
        m = top.child("model")
        m.mapping({"hidden_units", "embedding_dim", "dropout", "learning_rate", "batch_size", "sequence", "conv"})
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
            conv=config_image.parse_conv(m) if "conv" in m.data else None,
        )
        if "sequence" in m.data:  # text: pipeline/config_text.py
            from pipeline import config_text

            model = replace(model, sequence=config_text.parse_sequence(m))

    training = TrainingConfig()
    if "training" in top.data:
        t = top.child("training")
        t.mapping({"train_steps", "eval_steps", "epochs", "early_stopping_patience", "augmentation"})
        training = TrainingConfig(
            train_steps=t.get("train_steps", (int,), training.train_steps, _positive),
            eval_steps=t.get("eval_steps", (int,), training.eval_steps, _positive),
            epochs=t.get("epochs", (int,), training.epochs, _positive),
            early_stopping_patience=t.get("early_stopping_patience", (int,),
                                          training.early_stopping_patience, _positive),
            augmentation=config_image.parse_augmentation(t) if "augmentation" in t.data else None,
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
        thresholds = parse_thresholds(e, "thresholds", label.task) if "thresholds" in e.data else ()
        evaluation = EvaluationConfig(tuple(esplits), tuple(slices), thresholds)

    from pipeline import config_optimization

    tuning = config_optimization.parse_tuning(top, label.task) if top.data.get("tuning") is not None else None
    optimization = (config_optimization.parse_optimization(top, evaluation.splits, label.task)
                    if top.data.get("optimization") is not None else None)
    from pipeline import config_deployment

    variant_names = tuple(v.name for v in optimization.variants) if optimization else ()
    deployment = (config_deployment.parse_deployment(top, evaluation.splits, variant_names, label.task)
                  if top.data.get("deployment") is not None else None)

    runner = RunnerConfig()
    if "runner" in top.data:
        r = top.child("runner")
        r.mapping({"engine", "beam_args", "beam", "airflow", "metadata"})
        engine = r.get("engine", (str,), runner.engine,
                       lambda v: None if v in ENGINES else f"must be one of {', '.join(ENGINES)}")
        args = r.get("beam_args", (list,), list(runner.beam_args))
        if not all(isinstance(a, str) and a.startswith("--") for a in args):
            raise r.fail("each Beam argument is a string like '--flag=value'", "beam_args")
        from pipeline import orchestration

        if "beam" in r.data:  # a named, validated option set instead of raw beam_args
            if "beam_args" in r.data:
                raise r.fail("give either beam (an option set) or beam_args, not both", "beam")
            args = list(orchestration.parse_beam(r.child("beam")))
        airflow = orchestration.parse_airflow(r.child("airflow")) if "airflow" in r.data else None
        mysql = orchestration.parse_metadata(r.child("metadata")) if "metadata" in r.data else None
        runner = RunnerConfig(engine, tuple(args), airflow, mysql)

    if output_root is None:
        output_root = base / top.data["output_root"] if "output_root" in top.data else Path("outputs")

    config = PipelineConfig(
        path=source, name=name, data_dir=data_dir, split=split, cleaning=cleaning, selection=selection,
        drift=drift, tuning=tuning, optimization=optimization, deployment=deployment, csv_dialect=csv_dialect,
        schema_path=schema_path, label=label, features=tuple(features), model=model,
        training=training, evaluation=evaluation, runner=runner,
        output_root=Path(output_root).resolve(),
        description=top.get("description", (str,), ""), image=image_data,
    )
    if image_data is not None:  # no CSV to scan: the image folder's labels and the features' columns
        if check_data:
            try:
                classes, notes = config_image.check_against_data(config, source)
            except config_image.ConfigErrorLike as exc:
                raise ConfigError(str(exc)) from None
            config = replace(config, label_classes=classes, notes=notes)
    elif check_data:
        _check_against_data(config, source)
        classes, notes = _check_label_against_data(config, source)
        config = replace(config, label_classes=classes, notes=notes)
    return config


def _label(r: _Reader) -> Label:
    """The label section: the column, the task and the task's own keys."""
    r.mapping({"name", "column", "task", "positive_when", "positive_class", "transform"})
    column = r.get("column", (str,))
    task = r.get("task", (str,), task_lib.BINARY,
                 check=lambda v: None if v in TASKS else f"must be one of {', '.join(TASKS)}")
    own = {task_lib.BINARY: {"positive_when", "positive_class"}, task_lib.MULTICLASS: set(),
           task_lib.REGRESSION: {"transform"}}[task]
    for key in ("positive_when", "positive_class", "transform"):
        if key in r.data and key not in own:
            raise r.fail(f"'{key}' does not apply to task {task}", key)
    name = r.get("name", (str,), f"{column}_label")
    if task == task_lib.BINARY:
        if ("positive_when" in r.data) == ("positive_class" in r.data):
            raise r.fail("binary_classification needs exactly one of positive_when (a numeric rule) or "
                         "positive_class (the value of the column that is positive)")
        if "positive_class" in r.data:
            value = r.data["positive_class"]
            if isinstance(value, bool):
                raise r.fail("YAML reads an unquoted yes/no/true/false as a boolean: quote the class, e.g. "
                             "positive_class: \"yes\"", "positive_class")
            r.get("positive_class", (str, int))
            return Label(name, column, task, positive_class=task_lib.token(value))
        pos = r.child("positive_when")
        pos.mapping({"greater_than_column", "factor", "greater_than"})
        gt_col = pos.get("greater_than_column", (str,), None)
        factor = float(pos.get("factor", (int, float), 1.0))
        gt = pos.get("greater_than", (int, float), None)
        if (gt_col is None) == (gt is None):
            raise pos.fail("give exactly one of greater_than_column or greater_than")
        return Label(name, column, task, greater_than_column=gt_col, factor=factor,
                     greater_than=None if gt is None else float(gt))
    transform = r.get("transform", (str,), "none", lambda v: None if v in task_lib.TARGET_TRANSFORMS
                      else f"must be one of {', '.join(task_lib.TARGET_TRANSFORMS)}")
    return Label(name, column, task, transform=transform)


DELIMITER_NAMES = {"tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


def _csv_dialect(data: _Reader) -> Dialect:
    """data.delimiter (absent: sniffed per file) and data.missing_values (absent: the reader's default)."""
    allowed = [*reader.DELIMITERS, *DELIMITER_NAMES]
    delimiter = data.get("delimiter", (str,), None, lambda v: None if v in allowed else
                         f"must be one of {', '.join(map(repr, allowed))} (omit it to detect)")
    missing = data.get("missing_values", (list,), list(reader.DEFAULT_MISSING_VALUES))
    if not all(isinstance(m, str) for m in missing):
        raise data.fail('must be a list of strings; quote tokens YAML reads as something else ("null", "")',
                        "missing_values")
    return Dialect(DELIMITER_NAMES.get(delimiter, delimiter), tuple(missing))


def _split_config(data: _Reader) -> SplitConfig:
    buckets = {"train": 8, "eval": 1, "test": 1}
    if "splits" in data.data:
        splits = data.child("splits")
        splits.mapping(set(SPLIT_NAMES))
        buckets = {s: splits.get(s, (int,), check=_positive) for s in SPLIT_NAMES}
    if "split_by" not in data.data:
        return SplitConfig(buckets)
    by = data.child("split_by")
    by.mapping({"column", "timestamp_column", "eval_from", "test_from"})
    if "column" in by.data:
        if "timestamp_column" in by.data:
            raise by.fail("give either column (hash of a partition column) or timestamp_column (temporal)")
        return SplitConfig(buckets, partition_column=by.get("column", (str,)))
    ts = by.get("timestamp_column", (str,))
    dates = {}
    for key in ("eval_from", "test_from"):
        value = by.get(key, (str, date))
        try:
            dates[key] = value if isinstance(value, date) else date.fromisoformat(value)
        except ValueError:
            raise by.fail(f"must be an ISO date like 2016-01-01, got {value!r}", key) from None
    if dates["eval_from"] >= dates["test_from"]:
        raise by.fail("must be after eval_from", "test_from")
    return SplitConfig(buckets, timestamp_column=ts, eval_from=dates["eval_from"].isoformat(),
                       test_from=dates["test_from"].isoformat())


def _derivation(f: _Reader, ftype: str) -> tuple[tuple | None, tuple | None, dict | None]:
    given = [k for k in ("ratio", "cross", "cyclical") if k in f.data]
    if len(given) > 1:
        raise f.fail(f"give at most one of ratio, cross, cyclical (got {', '.join(given)})")
    if not given:
        return None, None, None
    key = given[0]
    if key == "cyclical":
        cyc = f.child("cyclical")
        cyc.mapping({"column", "parts"})
        parts = cyc.get("parts", (list,), list(feature_steps.CYCLICAL_PARTS))
        bad = [p for p in parts if p not in feature_steps.CYCLICAL_PARTS]
        if not parts or bad:
            raise cyc.fail(f"parts are among {', '.join(feature_steps.CYCLICAL_PARTS)}; got {parts}", "parts")
        return None, None, {"column": cyc.get("column", (str,)), "parts": parts}
    cols = f.get(key, (list,))
    if not all(isinstance(c, str) for c in cols) or (key == "ratio" and len(cols) != 2) or len(cols) < 2:
        need = "[numerator, denominator]" if key == "ratio" else "a list of two or more columns"
        raise f.fail(f"must be {need}", key)
    if key == "ratio" and ftype != "float":
        raise f.fail("a ratio is a float feature", "type")
    if key == "cross" and ftype != "string":
        raise f.fail("a cross is a string feature (then hash or vocabulary it)", "type")
    return (tuple(cols), None, None) if key == "ratio" else (None, tuple(cols), None)


def _cleaning_config(top: _Reader) -> CleaningConfig:
    c = top.child("cleaning")
    c.mapping({"drop_columns_missing_fraction", "drop_rows_missing", "max_missing_per_row", "remove_outliers"})
    frac = c.get("drop_columns_missing_fraction", (int, float), None,
                 lambda v: None if 0 < v <= 1 else "must be in (0, 1]")
    rows = c.get("drop_rows_missing", (list,), [])
    max_missing, max_cols = None, ()
    if "max_missing_per_row" in c.data:
        mm = c.child("max_missing_per_row")
        mm.mapping({"columns", "max"})
        max_missing = mm.get("max", (int,), check=lambda v: None if v >= 0 else "must be >= 0")
        max_cols = tuple(mm.get("columns", (list,)))
    rules = []
    outliers = c.get("remove_outliers", (list,), [])
    for k in range(len(outliers)):
        r = c.child("remove_outliers").child(k)
        r.mapping({"column", "method", "lower", "upper", "k"})
        method = r.get("method", (str,), check=lambda v: None if v in feature_steps.CLIP_METHODS
                       else f"must be one of {', '.join(feature_steps.CLIP_METHODS)}")
        lower = float(r.get("lower", (int, float), 0.01, feature_steps._fraction))
        upper = float(r.get("upper", (int, float), 0.99, feature_steps._fraction))
        if lower >= upper:
            raise r.fail("must be > lower", "upper")
        rules.append(OutlierRule(r.get("column", (str,)), method, lower, upper,
                                 float(r.get("k", (int, float), 1.5, _positive))))
    return CleaningConfig(None if frac is None else float(frac), tuple(rows), max_missing, max_cols, tuple(rules))


def _selection_config(top: _Reader, feature_names: list[str]) -> SelectionConfig:
    s = top.child("feature_selection")
    s.mapping({"method", "top_k", "threshold", "always_keep", "sample_size"})
    method = s.get("method", (str,), "mutual_information",
                   lambda v: None if v in ("mutual_information", "correlation")
                   else "must be mutual_information or correlation")
    top_k = s.get("top_k", (int,), None, _positive)
    threshold = s.get("threshold", (int, float), None)
    if (top_k is None) == (threshold is None):
        raise s.fail("give exactly one of top_k or threshold")
    keep = s.get("always_keep", (list,), [])
    for k in keep:
        if k not in feature_names:
            raise s.fail(f"'{k}' is not a feature", "always_keep")
    return SelectionConfig(method, top_k, None if threshold is None else float(threshold), tuple(keep),
                           s.get("sample_size", (int,), 50000, _positive))


def _check_against_data(config: PipelineConfig, source: Path) -> None:
    """Columns the config names must be in the CSV header; steps that need positive values
    (log, Box-Cox) or values above -1 (log1p) must get them."""
    scan = _scan_data(config, source)
    header = list(scan.columns)
    needed = []
    for i, f in enumerate(config.features):
        if f.name in header and (f.ratio or f.cross or f.cyclical):
            needed_key = f"features[{i}] ({f.name})"
            raise ConfigError(f"{source}: {needed_key}: a derived feature cannot reuse the column name '{f.name}'")
        needed += [(f"features ({f.name})", c) for c in f.source_columns]
    needed.append(("label.column", config.label.column))
    if config.label.greater_than_column:
        needed.append(("label.positive_when.greater_than_column", config.label.greater_than_column))
    c = config.cleaning
    needed += [("cleaning.drop_rows_missing", col) for col in c.drop_rows_missing]
    needed += [("cleaning.max_missing_per_row.columns", col) for col in c.max_missing_columns]
    needed += [(f"cleaning.remove_outliers ({r.column})", r.column) for r in c.remove_outliers]
    if config.split.partition_column:
        needed.append(("data.split_by.column", config.split.partition_column))
    if config.split.timestamp_column:
        needed.append(("data.split_by.timestamp_column", config.split.timestamp_column))
    for key, col in needed:
        if col not in header:
            raise ConfigError(f"{source}: {key}: column '{col}' is not in the data "
                              f"({config.data_dir}); columns: {', '.join(header)}")
    numeric = [(f"features ({f.name})", f.name) for f in config.features
               if f.type in ("int", "float") and not (f.ratio or f.cross or f.cyclical)]
    numeric += [(f"features ({f.name}).ratio", c) for f in config.features if f.ratio for c in f.ratio]
    for key, col in numeric:
        if scan.types[col] == "string":
            raise ConfigError(f"{source}: {key}: column '{col}' holds text, not numbers: {scan.first_text[col]} "
                              f"(add the token to data.missing_values if it means 'no value')")
    domains = {}
    for i, f in enumerate(config.features):
        requirement = None if f.cyclical else feature_steps.domain_requirement(list(f.steps))
        if requirement:
            domains[i] = requirement
    if not domains:
        return
    files = [str(f) for f in _csv_files(config.data_dir, config.split.span_pattern)]
    for i, (step, bound) in domains.items():
        f = config.features[i]
        # Minima over the finite values only (the reader never lets a NaN be a minimum).
        low = _ratio_minimum(files, config.csv_dialect, *f.ratio) if f.ratio else scan.minima.get(f.name)
        # What a missing value becomes: 0 without impute, the constant, or a train statistic
        # (mean/median/most frequent), which stays in the data's domain.
        impute = next((a for s, a in f.steps if s == "impute"), None)
        if impute is None:
            fill = 0.0
        elif impute.get("strategy", "constant") == "constant":
            fill = float(impute.get("value", 0.0))
        else:
            fill = None
        if low is not None and low <= bound:
            raise ConfigError(f"{source}: features[{i}] ({f.name}): step '{step}' needs values > {bound:g}, "
                              f"but the data has {low:g}")
        if fill is not None and fill <= bound:
            raise ConfigError(f"{source}: features[{i}] ({f.name}): step '{step}' needs values > {bound:g}, "
                              f"but missing values are filled with {fill:g}: add an impute step")


MAX_CLASSES = 1000  # more distinct labels than this is an ID or a number, not a class
RARE_CLASS_ROWS = 20  # fewer rows than this: with an 8:1:1 split, eval or test likely has none


def _count_class(values: dict[str, int], value: str, where: str) -> None:
    try:  # a numeric class column: the token an integer or number has in the graph
        key = task_lib.token(float(value))
    except ValueError:
        key = value
    values[key] = values.get(key, 0) + 1
    if len(values) > MAX_CLASSES:
        raise ConfigError(f"{where}: more than {MAX_CLASSES} distinct values: not a class label "
                          f"(for a number to predict use task: regression)")


def _check_label_against_data(config: PipelineConfig, source: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The label column must fit the task: numeric for regression (and > -1 for log1p), the
    positive class present (binary), 2..MAX_CLASSES classes (multiclass). Returns the classes
    (multiclass) and notes on rare classes."""
    label = config.label
    if label.threshold_rule:
        return (), ()
    where = f"{source}: label.column ({label.column})"
    values: dict[str, int] = {}
    low = math.inf
    files = [str(f) for f in _csv_files(config.data_dir, config.split.span_pattern)]
    for header in reader.read_headers(files, config.csv_dialect):
        at = header.columns.index(label.column)
        for line, row in reader.read_rows(header, config.csv_dialect):
            value = row[at]
            if value is None:  # a missing-value token: the row is dropped before Transform
                continue
            if label.task == task_lib.REGRESSION:
                try:
                    number = reader.parse_number(value)
                except ValueError:
                    raise ConfigError(f"{where}: regression needs a numeric target, but {header.path} line {line} "
                                      f"has {value!r}") from None
                if number is not None:
                    low = min(low, number)
                continue
            _count_class(values, value, where)
    if label.task == task_lib.REGRESSION:
        if low == math.inf:
            raise ConfigError(f"{where}: the column has no value")
        if label.transform == "log1p" and low <= -1:
            raise ConfigError(f"{source}: label.transform: log1p needs targets > -1, but the data has {low:g}")
        return (), ()
    if label.task == task_lib.BINARY:
        if label.positive_class not in values:
            raise ConfigError(f"{source}: label.positive_class: {label.positive_class!r} never occurs in column "
                              f"'{label.column}'; its values: {', '.join(sorted(values)[:20])}")
        if len(values) < 2:
            raise ConfigError(f"{where}: every row is {label.positive_class!r}: nothing to learn")
        return (), _rare_notes(values, label.column)
    if len(values) < 2:
        raise ConfigError(f"{where}: multiclass needs at least 2 classes; found {sorted(values)}")
    return tuple(sorted(values)), _rare_notes(values, label.column)


def _rare_notes(counts: dict[str, int], column: str) -> tuple[str, ...]:
    return tuple(f"label '{column}': class {c!r} has only {n} row{'s' * (n > 1)}: the eval or test split may have "
                 "none, and then its per-class metrics and the macro averages are NaN (a threshold on them "
                 "fails); a class only eval/test has stops the run at DataCleaner"
                 for c, n in sorted(counts.items()) if n < RARE_CLASS_ROWS)


def _ratio_minimum(files: list[str], dialect: Dialect, num: str, den: str) -> float | None:
    low = None
    for row in reader.iter_dicts(files, dialect):
        if row[num] is None or row[den] is None:
            continue
        try:
            n, d = reader.parse_number(row[num]), reader.parse_number(row[den])
        except ValueError:  # text: the type check above names it
            continue
        if n is not None and d is not None and d != 0:
            low = n / d if low is None else min(low, n / d)
    return low


def _drift_config(top: _Reader, split: SplitConfig) -> dict[str, Any]:
    """Thresholds for DriftSkewGate (see components/drift_skew_gate/thresholds.py for the full form)."""
    from components.drift_skew_gate.thresholds import DEFAULTS, FEATURE_KEYS, HISTOGRAMS

    d = top.child("drift")
    d.mapping({*DEFAULTS, "features", "skip"})
    if split.span_pattern is None:
        raise top.fail("drift compares spans: set data.span_pattern (e.g. span-{SPAN}/*.csv)", "drift")
    out: dict[str, Any] = {}
    for key in ("categorical_linf", "numeric_js"):
        if key in d.data:
            out[key] = float(d.get(key, (int, float), check=lambda v: None if 0 <= v <= 1 else "must be in [0, 1]"))
    if "numeric_histogram" in d.data:
        out["numeric_histogram"] = d.get("numeric_histogram", (str,), check=lambda v: None if v in HISTOGRAMS
                                         else f"must be one of {', '.join(HISTOGRAMS)}")
    if "split" in d.data:
        out["split"] = d.get("split", (str,), check=lambda v: None if v in SPLIT_NAMES else "unknown split")
    features = d.get("features", (dict,), {})
    for name, limits in features.items():
        if not isinstance(limits, dict) or set(limits) - set(FEATURE_KEYS):
            raise d.fail(f"'{name}': a mapping of {', '.join(FEATURE_KEYS)}", "features")
    if features:
        out["features"] = features
    skip = d.get("skip", (list,), [])
    if skip:
        out["skip"] = skip
    return out
