"""The pipeline YAML as pydantic models: one model per section, unknown keys forbidden, types
and per-key constraints (positive ints, fractions, enums) declared once here.

``load_config`` validates the raw YAML against ``PipelineYAML`` before any parser runs, so a
parser only checks what spans keys or sections; ``python -m pipeline config-schema`` prints
``PipelineYAML.model_json_schema()`` for editors. Validation errors become ``ConfigError``
naming the key path as the parsers do (``model.hidden_units[1]: must be > 0``).
"""

from __future__ import annotations

import types
import typing
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.config.errors import ConfigError, join

Positive = Annotated[int, Field(gt=0)]
PositiveNumber = Annotated[float, Field(gt=0)]
NonNegative = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]  # [0, 1]
PositiveInts = Annotated[list[Positive], Field(min_length=1)]
SplitName = Literal["train", "eval", "test"]
Metric = str  # the task's metrics (features.task.METRICS): checked against label.task by evaluation.py
IsoDate = str | date  # YAML reads an unquoted 2016-01-01 as a date


class Section(BaseModel):
    """Strict: YAML ``"3"`` is not an int, ``true`` not a number; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", strict=True)


# ---------------------------------------------------------------- data --
class Splits(Section):
    train: Positive
    eval: Positive
    test: Positive


class SplitBy(Section):
    column: str | None = None  # hash of a partition column, or...
    timestamp_column: str | None = None  # ...temporal, with eval_from and test_from
    eval_from: IsoDate | None = None
    test_from: IsoDate | None = None


class Manifest(Section):
    manifest: str  # a CSV `path,label`, relative to image_dir


class Data(Section):
    csv_dir: str | None = None
    image_dir: str | None = None
    labels: Literal["folders"] | Manifest | None = None  # image data only
    splits: Splits | None = None
    split_by: SplitBy | None = None
    span_pattern: str | None = None  # contains {SPAN}
    delimiter: str | None = None  # ',', ';', '\t', '|', tab, comma, semicolon, pipe; absent: sniffed
    missing_values: list[Any] | None = None  # strings; checked by data.py for a precise message

    @field_validator("labels", mode="before")
    @classmethod
    def _folders_or_manifest(cls, v: Any) -> Any:
        if isinstance(v, str) and v != "folders":
            raise ValueError(f"must be 'folders' (the sub-folder name) or {{manifest: <file.csv>}}, got {v!r}")
        return v


# --------------------------------------------------------------- label --
class PositiveWhen(Section):
    greater_than_column: str | None = None
    factor: float = 1.0
    greater_than: float | None = None


class Label(Section):
    name: str | None = None
    column: str
    task: Literal["binary_classification", "multiclass_classification", "regression"] = "binary_classification"
    positive_when: PositiveWhen | None = None
    positive_class: str | int | None = None
    transform: Literal["none", "log1p", "z_score"] | None = None

    @field_validator("positive_class", mode="before")
    @classmethod
    def _not_a_boolean(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError("YAML reads an unquoted yes/no/true/false as a boolean: quote the class, "
                             'e.g. positive_class: "yes"')
        return v


# ------------------------------------------------------------ features --
class Cyclical(Section):
    column: str
    parts: list[Literal["hour", "weekday", "month"]] | None = None


class Feature(Section):
    name: str
    type: Literal["float", "int", "string", "image"]
    # A step is a name or {name: {args}}; names and arguments: features.feature_steps.check_steps.
    steps: list[str | dict[str, Any]] = []
    ratio: list[str] | None = None  # [numerator, denominator]
    cross: list[str] | None = None  # two or more string columns
    cyclical: Cyclical | None = None


class OutlierRule(Section):
    column: str
    method: Literal["quantile", "iqr", "z_score"]
    lower: Fraction = 0.01
    upper: Fraction = 0.99
    k: PositiveNumber = 1.5


class MaxMissing(Section):
    columns: list[str]
    max: NonNegative


class Cleaning(Section):
    drop_columns_missing_fraction: Annotated[float, Field(gt=0, le=1)] | None = None
    drop_rows_missing: list[str] = []
    max_missing_per_row: MaxMissing | None = None
    remove_outliers: list[OutlierRule] = []


class FeatureSelection(Section):
    method: Literal["mutual_information", "correlation"] = "mutual_information"
    top_k: Positive | None = None
    threshold: float | None = None
    always_keep: list[str] = []
    sample_size: Positive = 50000


class DriftLimits(Section):
    categorical_linf: Fraction | None = None
    numeric_js: Fraction | None = None
    numeric_histogram: Literal["standard", "quantiles"] | None = None


class Drift(Section):
    """DriftSkewGate's thresholds (components/drift_skew_gate/thresholds.py)."""

    split: SplitName | None = None
    categorical_linf: Fraction | None = None
    numeric_js: Fraction | None = None
    numeric_histogram: Literal["standard", "quantiles"] | None = None
    features: dict[str, DriftLimits] = {}  # per feature
    skip: list[str] = []


# ---------------------------------------------------- model / training --
class Sequence(Section):
    """Text features' Embedding + LSTM (features/text.py DEFAULT_SEQUENCE)."""

    embedding_dim: Positive = 32
    lstm_units: Positive = 32
    bidirectional: bool = False


class Conv(Section):
    """Image models' Conv2D stack."""

    filters: PositiveInts
    kernel_size: Positive = 3
    pool_size: Positive = 2


class Model(Section):
    hidden_units: PositiveInts = [64, 32]
    embedding_dim: Positive = 8
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    learning_rate: PositiveNumber = 0.001
    batch_size: Positive = 128
    sequence: Sequence | None = None
    conv: Conv | None = None


class Augmentation(Section):
    rotation: Fraction = 0.0
    brightness: Fraction = 0.0
    contrast: Fraction = 0.0
    flip: bool = False


class Training(Section):
    train_steps: Positive = 1000
    eval_steps: Positive = 100
    epochs: Positive = 5
    early_stopping_patience: Positive = 2
    augmentation: Augmentation | None = None


class Threshold(Section):
    metric: Metric
    lower_bound: float | None = None
    upper_bound: float | None = None
    max_decrease: Annotated[float, Field(ge=0)] | None = None  # higher-is-better metrics
    max_increase: Annotated[float, Field(ge=0)] | None = None  # lower-is-better metrics


class Evaluation(Section):
    splits: Annotated[list[SplitName], Field(min_length=1)] = ["eval", "test"]
    slices: list[str | list[str]] = []  # feature names
    thresholds: list[Threshold] = []


# ------------------------------------------------- tuning / optimization --
class Tuning(Section):
    search_space: dict[str, Any]  # model.hyperparameters.check_space
    algorithm: Literal["random", "hyperband", "bayesian"] = "random"
    max_trials: Positive = 4
    epochs: Positive = 2
    steps_per_epoch: Positive = 100
    validation_steps: Positive = 20
    objective: str | None = None  # a validation metric: val_auc, val_rmse, ...
    seed: int = 42


class Pruning(Section):
    target_sparsity: Annotated[float, Field(gt=0, lt=1)] = 0.8
    fine_tune_steps: Positive = 400
    epochs: Positive = 2
    learning_rate: PositiveNumber = 0.001
    thresholds: list[Threshold] | None = None


class QuantizationAware(Section):
    fine_tune_steps: Positive = 200
    epochs: Positive = 2
    learning_rate: PositiveNumber = 0.00002
    thresholds: list[Threshold] | None = None


class Student(Section):
    hidden_units: PositiveInts | None = None
    embedding_dim: Positive | None = None
    dropout: Annotated[float, Field(ge=0, lt=1)] | None = None
    conv: Conv | None = None


class Distillation(Section):
    student: Student | None = None
    temperature: PositiveNumber = 2.0
    alpha: Fraction = 0.5
    train_steps: Positive = 1000
    learning_rate: PositiveNumber = 0.003
    thresholds: list[Threshold] | None = None


class Optimization(Section):
    split: SplitName = "test"  # one of evaluation.splits
    thresholds: list[Threshold] | None = None
    pruning: Pruning | None = None
    quantization_aware: QuantizationAware | None = None
    distillation: Distillation | None = None


# ---------------------------------------------------------- deployment --
class ConversionThresholds(Section):
    max_abs_diff: PositiveNumber | None = None
    max_rel_diff: PositiveNumber | None = None
    min_agreement: Annotated[float, Field(gt=0, le=1)] | None = None


class TFLiteThresholds(Section):
    float32: ConversionThresholds | None = None
    float16: ConversionThresholds | None = None
    dynamic_range: ConversionThresholds | None = None
    int8: ConversionThresholds | None = None


TFLiteVariant = Literal["float32", "float16", "dynamic_range", "int8"]


class TFLite(Section):
    variants: list[TFLiteVariant] | None = None
    thresholds: TFLiteThresholds | None = None  # only for the listed variants
    representative_examples: Positive = 200


class TFJS(Section):
    quantization: Literal["none", "float16", "uint8"] = "none"
    thresholds: ConversionThresholds | None = None


class Deployment(Section):
    models: list[str] | None = None  # trained and/or optimization variants (pruned, qat, student)
    split: SplitName = "test"
    validation_examples: Positive = 500
    tflite: TFLite | None = None
    tfjs: TFJS | None = None


# ------------------------------------------------------- notifications --
NotifyEvent = Literal["failure", "blessed"]


class Webhook(Section):
    url: str  # http:// or https:// (notifications.py checks it)
    on: Annotated[list[NotifyEvent], Field(min_length=1)] = ["failure", "blessed"]
    timeout_seconds: PositiveNumber = 10.0


class Notifications(Section):
    webhook: Webhook | None = None


# -------------------------------------------------------------- runner --
class Direct(Section):
    mode: Literal["in_memory", "multi_processing", "multi_threading"] | None = None
    workers: Positive | None = None


EnvironmentType = Literal["DOCKER", "PROCESS", "EXTERNAL", "LOOPBACK"]


class Dataflow(Section):
    project: str
    region: str
    temp_location: str  # gs://
    staging_location: str | None = None
    machine_type: str | None = None
    max_num_workers: Positive | None = None
    sdk_container_image: str | None = None
    service_account_email: str | None = None


class Flink(Section):
    job_endpoint: str  # host:port
    environment_type: EnvironmentType | None = None
    environment_config: str | None = None
    parallelism: Positive | None = None


class Spark(Section):
    job_endpoint: str
    environment_type: EnvironmentType | None = None
    environment_config: str | None = None


class Beam(Section):
    runner: Literal["DirectRunner", "DataflowRunner", "FlinkRunner", "SparkRunner"] = "DirectRunner"
    direct: Direct | None = None
    dataflow: Dataflow | None = None
    flink: Flink | None = None
    spark: Spark | None = None


class Airflow(Section):
    schedule: str | None = "@daily"  # 5-field cron, an Airflow preset (@daily), or null: manual only
    start_date: IsoDate = "2024-01-01"
    catchup: bool = False
    retries: NonNegative = 0


class MySQL(Section):
    host: str = "127.0.0.1"
    port: int = 3306
    database: str = "mlmd"
    user: str = "root"
    password_env: str | None = None  # the variable holding the password
    socket: str | None = None


class SQLite(Section):
    pass


class Metadata(Section):
    sqlite: SQLite | None = None
    mysql: MySQL | None = None


class Runner(Section):
    engine: Literal["local", "beam"] = "local"
    beam_args: list[str] | None = None  # '--flag=value'
    beam: Beam | None = None  # instead of beam_args
    airflow: Airflow | None = None
    metadata: Metadata | None = None


# ----------------------------------------------------------------- top --
class PipelineYAML(Section):
    """A pipeline config (pipeline/configs/<name>/pipeline.yaml); relative paths are relative to it."""

    model_config = ConfigDict(extra="forbid", strict=True, title="Pipeline config")

    name: str  # letters, digits, '-' and '_'
    description: str = ""
    data: Data
    schema_: str | None = Field(None, alias="schema")  # a reviewed schema.pbtxt; absent: inferred
    label: Label
    features: Annotated[list[Feature], Field(min_length=1)]
    model: Model | None = None
    training: Training | None = None
    evaluation: Evaluation | None = None
    runner: Runner | None = None
    output_root: str | None = None
    cleaning: Cleaning | None = None
    feature_selection: FeatureSelection | None = None
    drift: Drift | None = None
    tuning: Tuning | None = None
    optimization: Optimization | None = None
    deployment: Deployment | None = None
    notifications: Notifications | None = None


def json_schema() -> dict[str, Any]:
    return PipelineYAML.model_json_schema(by_alias=True)


def validate(raw: Any, source: Path) -> PipelineYAML:
    """``raw`` (the loaded YAML) against the models; the first error as a ConfigError."""
    try:
        return PipelineYAML.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc.errors()[0], raw)}") from None


# --------------------------------------------------- error messages --
_TYPES = {"int_type": "int", "float_type": "int/float", "string_type": "str", "bool_type": "bool",
          "list_type": "a list", "date_type": "a date", "none_required": "null"}


def _describe(err: dict[str, Any], raw: Any) -> str:
    """One pydantic error as ``<key path>: <message>`` in the parsers' words."""
    keys, data, node = [], raw, PipelineYAML
    for part in err["loc"]:  # skip union tags ('str', 'Manifest', ...): follow the raw data
        if (isinstance(data, dict) and part in data) or (isinstance(part, int) and isinstance(data, list)
                                                       and part < len(data)):
            keys.append(part)
            data = data[part]
            node = _child(node, part)
        elif err["type"] in ("missing", "extra_forbidden") and part == err["loc"][-1]:
            keys.append(part)
            node = _child(node, part)
    where, kind, ctx = "", err["type"], err.get("ctx", {})
    for k in keys[:-1] if kind == "extra_forbidden" else keys:
        where = join(where, k)
    if kind == "extra_forbidden":
        allowed = sorted(_fields(_parent_model(keys[:-1])))
        msg = f"unknown key '{keys[-1]}'" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
    elif kind == "missing":
        msg = "missing required key"
    elif kind in ("model_type", "dict_type", "model_attributes_type"):
        msg = f"expected a mapping, got {type(data).__name__}"
    elif kind == "literal_error":
        msg = "must be one of " + ctx["expected"].replace("'", "").replace(" or ", ", ")
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        msg = _bounds(node, ctx, kind)
    elif kind == "too_short":
        msg = "must be a non-empty list" + (" of positive integers" if _positive_ints(node) else "")
    elif kind == "value_error":
        msg = str(ctx.get("error", err["msg"]))
    elif kind in _TYPES:
        msg = f"must be {_TYPES[kind]}, got {data!r}"
    else:
        msg = f"{err['msg']}, got {data!r}"
    return f"{where or '<top level>'}: {msg}"


def _bounds(node: Any, ctx: dict[str, Any], kind: str) -> str:
    """``must be in (0, 1]`` when the key has both bounds, else ``must be > 0``."""
    low = high = None
    for m in _constraints(node):
        for c in getattr(m, "metadata", [m]):
            for attr, sign in (("gt", "("), ("ge", "[")):
                if getattr(c, attr, None) is not None:
                    low = (sign, getattr(c, attr))
            for attr, sign in (("lt", ")"), ("le", "]")):
                if getattr(c, attr, None) is not None:
                    high = (sign, getattr(c, attr))
    if low and high:
        return f"must be in {low[0]}{low[1]:g}, {high[1]:g}{high[0]}"
    op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[kind]
    bound = next(v for k, v in ctx.items() if k in ("gt", "ge", "lt", "le"))
    return f"must be {op} {bound:g}"


def _constraints(node: Any) -> list[Any]:
    """The Annotated metadata of ``node``, through unions (``Annotated[float, Field(gt=0)] | None``)."""
    if typing.get_origin(node) is Annotated:
        return [*typing.get_args(node)[1:], *_constraints(typing.get_args(node)[0])]
    if typing.get_origin(node) in (typing.Union, types.UnionType):
        return [c for arg in typing.get_args(node) for c in _constraints(arg)]
    return []


def _child(node: Any, part: str | int) -> Any:
    """The annotation of key/index ``part`` under annotation ``node``."""
    for model in _models(node):
        for name, field in model.model_fields.items():
            if part in (name, field.alias):
                return Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
    for arg in _flatten(node):  # a list item, or a value of a mapping (drift.features.<name>)
        if typing.get_origin(arg) is (list if isinstance(part, int) else dict):
            return typing.get_args(arg)[-1]
    return None


def _flatten(node: Any) -> list[Any]:
    """``node`` with Annotated and unions opened."""
    if typing.get_origin(node) is Annotated:
        return _flatten(typing.get_args(node)[0])
    if typing.get_origin(node) in (typing.Union, types.UnionType):
        return [a for arg in typing.get_args(node) for a in _flatten(arg)]
    return [node]


def _models(node: Any) -> list[type[BaseModel]]:
    return [a for a in _flatten(node) if isinstance(a, type) and issubclass(a, BaseModel)]


def _parent_model(keys: list[str | int]) -> Any:
    node: Any = PipelineYAML
    for k in keys:
        node = _child(node, k)
    return node


def _fields(node: Any) -> set[str]:
    return {f.alias or name for m in _models(node) for name, f in m.model_fields.items()}


def _positive_ints(node: Any) -> bool:
    return any(typing.get_origin(a) is list and _models(typing.get_args(a)[0]) == []
               and "gt=0" in repr(typing.get_args(a)[0]) for a in _flatten(node))
