"""The pipeline: TFX components wired from a validated PipelineConfig."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import tensorflow_model_analysis as tfma
from google.protobuf import wrappers_pb2
from tensorflow_model_analysis.proto import config_pb2

# TFX's defining modules, not `tfx.v1`: importing tfx.v1 also imports its Google Cloud extensions
# (google.cloud.aiplatform, bigquery), a fifth of the CLI's start-up (docs/benchmarks.md).
from tfx import components as tfx_components
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.base.base_component import BaseComponent
from tfx.dsl.components.common.resolver import Resolver
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import example_gen_pb2, pusher_pb2, trainer_pb2, transform_pb2
from tfx.types import standard_artifacts
from tfx.types.channel import Channel

from components.anomaly_gate import AnomalyGate
from components.atomic_pusher import AtomicPusher
from components.csv_example_gen import CsvExampleGen
from components.data_cleaner import DataCleaner
from components.distiller import Distiller
from components.drift_skew_gate import DriftSkewGate
from components.feature_selector import FeatureSelector
from components.infra_validator import infra_validator
from components.model_card_generator import ModelCardGenerator
from components.pruner import Pruner
from components.quantization_aware_trainer import QuantizationAwareTrainer
from components.temporal_csv_example_gen import TemporalCsvExampleGen
from components.tfjs_converter import TFJSConverter
from components.tflite_converter import TFLiteConverter
from components.variant_comparison import VariantComparison
from features import task as task_lib
from pipeline import span_resolvers
from pipeline.baseline import BLESSING, CANDIDATE, MODEL, PreviousBlessedModelStrategy
from pipeline.config import PipelineConfig, Threshold, deployment_config, metadata_connection_config

MODULES_DIR = Path(__file__).resolve().parent.parent / "modules"
PREPROCESSING_MODULE = MODULES_DIR / "preprocessing.py"
TRAINING_MODULE = MODULES_DIR / "training.py"
TUNING_MODULE = MODULES_DIR / "tuning.py"
# What the module files import from this project. TFX's cache key covers the module files' own
# folder (modules/); the fingerprint of these packages, passed in custom_config, covers the rest,
# so an edit to a preprocessing step or the model re-runs Transform / Tuner / Trainer.
LIBRARY_PACKAGES = ("features", "model")


def library_fingerprint() -> str:
    digest = hashlib.sha256()
    for package in LIBRARY_PACKAGES:
        for path in sorted((MODULES_DIR.parent / package).glob("*.py")):
            if not path.name.endswith("_test.py"):
                digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]
EVALUATOR_ID = "Evaluator"  # the one whose blessing gates the Pusher


def _metric_threshold(th: Threshold | None, higher_is_better: bool) -> tfma.MetricThreshold | None:
    if th is None:
        return None
    threshold = tfma.MetricThreshold()
    if th.lower_bound is not None or th.upper_bound is not None:
        value = tfma.GenericValueThreshold()
        if th.lower_bound is not None:
            value.lower_bound.value = th.lower_bound
        if th.upper_bound is not None:
            value.upper_bound.value = th.upper_bound
        threshold.value_threshold.CopyFrom(value)
    change = th.max_decrease if higher_is_better else th.max_increase
    if change is not None:  # ignored when no baseline was resolved (first run)
        threshold.change_threshold.CopyFrom(tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER if higher_is_better
            else tfma.MetricDirection.LOWER_IS_BETTER,
            absolute={"value": -change if higher_is_better else change}))
    return threshold


def eval_config(cfg: PipelineConfig, thresholds: tuple[Threshold, ...] = ()) -> tfma.EvalConfig:
    """Every metric of the config's task (``features.task.METRICS``), sliced as configured;
    ``thresholds`` (if any) decide the blessing, ``max_decrease`` / ``max_increase`` relative to
    the Evaluator's baseline model. Multiclass: per-class (one-vs-rest) metrics and their macro
    average, and the confusion matrix plot."""
    label = cfg.label
    by_metric = {t.metric: t for t in thresholds}
    plain, per_class = [], []
    for name, metric in task_lib.METRICS[label.task].items():
        threshold = _metric_threshold(by_metric.get(name), metric.higher_is_better)
        # Thresholds gate the overall slice only: small slices (a rare payment type) are
        # reported, not used to block a model.
        per_slice = [] if threshold is None else [config_pb2.PerSliceMetricThreshold(
            slicing_specs=[tfma.SlicingSpec()], threshold=threshold)]
        # Reported under the config's name (rmse, not root_mean_squared_error): thresholds,
        # the summary and the variant table all speak the same names.
        (per_class if metric.per_class else plain).append(tfma.MetricConfig(
            class_name=metric.class_name, config=f'"name": "{name}"', per_slice_thresholds=per_slice))
    # Unweighted only: the data has no example weights, and TFMA's weighted variant
    # of a metric without weights is meaningless (AUC 0.5).
    unweighted = config_pb2.ExampleWeightOptions(unweighted=True)
    specs = [tfma.MetricsSpec(metrics=plain, example_weights=unweighted)]
    if label.task == task_lib.MULTICLASS:
        specs[0].metrics.append(tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"))
        if per_class and cfg.label_classes:  # class ids 0..K-1 (Transform's vocabulary order)
            ids = list(range(len(cfg.label_classes)))
            specs.append(tfma.MetricsSpec(
                metrics=per_class, binarize=config_pb2.BinarizationOptions(class_ids={"values": ids}),
                # The macro average weighs every class alike (TFMA needs the weights spelled out).
                aggregate=config_pb2.AggregationOptions(macro_average=True, class_weights={i: 1.0 for i in ids}),
                example_weights=unweighted))
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name="serving_default", label_key=label.name,
            preprocessing_function_names=["transform_features"], prediction_key=label.prediction_key)],
        metrics_specs=specs,
        # Only the metrics above: not the Keras model's compiled ones again.
        options=config_pb2.Options(include_default_metrics=wrappers_pb2.BoolValue(value=False)),
        slicing_specs=[tfma.SlicingSpec()] + [
            tfma.SlicingSpec(feature_keys=list(cols)) for cols in cfg.evaluation.slices],
    )


def example_gen(cfg: PipelineConfig) -> BaseComponent:
    """ExampleGen for the configured split: hash of the row, of a partition column, or by time. Both read
    the CSVs through csvio/reader.py, with the config's dialect."""
    dialect = {"delimiter": cfg.csv_dialect.delimiter, "missing_values": cfg.csv_dialect.missing_values}
    if cfg.split.temporal:
        return TemporalCsvExampleGen(str(cfg.data_dir), cfg.split.timestamp_column, cfg.split.eval_from,
                                     cfg.split.test_from, **dialect)
    split_config = example_gen_pb2.SplitConfig(splits=[
        example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=buckets)
        for name, buckets in cfg.split_buckets.items()])
    if cfg.image is not None:  # a folder of images: bytes, label and size per file
        from components.image_example_gen import ImageExampleGen

        manifest = str(cfg.image.manifest.relative_to(cfg.data_dir)) if cfg.image.manifest else None
        return ImageExampleGen(str(cfg.data_dir), manifest,
                               output_config=example_gen_pb2.Output(split_config=split_config))
    if cfg.split.partition_column:
        # Rows sharing the column's value land in the same split (no leakage across groups).
        split_config.partition_feature_name = cfg.split.partition_column
    # Only the CSVs (a data folder also holds its PROVENANCE note); with spans, the latest span.
    pattern = cfg.split.span_pattern or "*.csv"
    return CsvExampleGen(
        input_base=str(cfg.data_dir),
        input_config=example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name="single_split", pattern=pattern)]),
        output_config=example_gen_pb2.Output(split_config=split_config), **dialect)


def _after(node: Any, gates: list[Any]) -> None:
    for gate in gates:
        node.add_upstream_node(gate)


def trained_model_blessings() -> Any:
    """Blessings of Trainer's models only (by the main Evaluator): a blessed pruned or student
    variant is never the baseline of a new model, nor the model whose training data is 'the
    training data' for skew."""
    return Channel(type=standard_artifacts.ModelBlessing,
                           producer_component_id=EVALUATOR_ID, output_key="blessing")


def drift_gate(cfg: PipelineConfig, statistics: Any, schema: Any, components: list) -> Any:
    """The new span's statistics vs the previous span's (drift) and the training data's (skew)."""
    artifacts = standard_artifacts
    previous = Resolver(
        strategy_class=span_resolvers.PreviousSpanStatistics,
        **{span_resolvers.STATISTICS: Channel(type=artifacts.ExampleStatistics),
           span_resolvers.CURRENT: statistics},
    ).with_id("previous_span_statistics_resolver")
    training = Resolver(
        strategy_class=span_resolvers.TrainingStatistics,
        **{span_resolvers.STATISTICS: Channel(type=artifacts.ExampleStatistics),
           span_resolvers.MODEL: Channel(type=artifacts.Model),
           span_resolvers.BLESSING: trained_model_blessings()},
    ).with_id("training_statistics_resolver")
    gate = DriftSkewGate(statistics=statistics, schema=schema, thresholds=json.dumps(cfg.drift),
                         previous_statistics=previous.outputs[span_resolvers.STATISTICS],
                         training_statistics=training.outputs[span_resolvers.STATISTICS])
    components += [previous, training, gate]
    return gate


CARD_ID = "ModelCard"  # ModelCard after Pusher, ModelCard_<target suffix> after Pusher_<target suffix>


def model_card(cfg: PipelineConfig, pusher: Any, target: str, model_name: str, evaluator: Any | None,
               card_inputs: dict[str, Any], blessing: Any | None = None) -> BaseComponent:
    """The card of what ``pusher`` pushes to ``pushed/<target>/`` (docs/model_cards.md): ``evaluator``
    judged the model (its metrics, slices and thresholds); ``blessing`` is the one that gated the push
    (default: the evaluator's); ``card_inputs``: the run's statistics, examples, feature scores, cleaning report."""
    return ModelCardGenerator(
        pushed_model=pusher.outputs["pushed_model"], pipeline=cfg.name, label=cfg.label.name,
        task=cfg.label.task, target=target,
        model_name=model_name, description=cfg.description,
        timestamp_column=cfg.split.timestamp_column if cfg.split.temporal else "",
        model_blessing=blessing if blessing is not None else (evaluator.outputs["blessing"] if evaluator else None),
        evaluation=evaluator.outputs["evaluation"] if evaluator else None, **card_inputs,
    ).with_id(CARD_ID + pusher.id.removeprefix("Pusher"))


VARIANT_COMPONENTS = {"Pruner": Pruner, "QuantizationAwareTrainer": QuantizationAwareTrainer,
                      "Distiller": Distiller}


def model_variants(cfg: PipelineConfig, model: Any, transform: Any, examples: Any,
                   models: dict[str, Any] | None = None, card_inputs: dict[str, Any] | None = None) -> list:
    """Pruned / QAT / student models made from the trained ``model``, each evaluated against it
    on the optimization split (its thresholds relative to the trained model) and pushed to
    ``pushed/serving_<variant>/`` only when blessed; then one comparison table. Each variant's
    Model channel is added to ``models`` (by variant name)."""
    assert cfg.optimization is not None
    nodes, compared = [], {}
    models = models if models is not None else {}
    for variant in cfg.optimization.variants:
        maker = VARIANT_COMPONENTS[variant.component](
            model=model, examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            config=json.dumps(cfg.variant_config(variant.name), sort_keys=True))
        (variant_model,) = maker.outputs.values()
        models[variant.name] = variant_model
        evaluator = tfx_components.Evaluator(
            examples=examples, model=variant_model, baseline_model=model,
            eval_config=eval_config(cfg, variant.thresholds), example_splits=[cfg.optimization.split],
        ).with_id(f"{EVALUATOR_ID}_{variant.name}")
        pusher = AtomicPusher(
            model=variant_model, model_blessing=evaluator.outputs["blessing"],
            push_destination=pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(
                base_directory=str(cfg.pushed_dir(f"serving_{variant.name}"))))).with_id(f"Pusher_{variant.name}")
        nodes += [maker, evaluator, pusher]
        if card_inputs is not None:
            nodes.append(model_card(cfg, pusher, f"serving_{variant.name}", variant.name, evaluator, card_inputs))
        compared.update({f"{variant.name}_model": variant_model,
                         f"{variant.name}_evaluation": evaluator.outputs["evaluation"],
                         f"{variant.name}_blessing": evaluator.outputs["blessing"]})
    nodes.append(VariantComparison(examples=examples, model=model, split=cfg.optimization.split,
                                   task=cfg.label.task, **compared))
    return nodes


# deployment target -> (converter component, its model output, pushed folder prefix)
DEPLOYMENT_TARGETS = {"tflite": (TFLiteConverter, "mobile_model", "mobile"),
                      "tfjs": (TFJSConverter, "web_model", "web")}


def deployment(cfg: PipelineConfig, target: str, models: dict[str, Any], transform: Any, examples: Any,
               blessings: dict[str, Any] | None = None, evaluators: dict[str, Any] | None = None,
               card_inputs: dict[str, Any] | None = None) -> list:
    """A converter per configured model (trained or variant) for ``target`` ("tflite": .tflite
    files validated in ai-edge-litert; "tfjs": a TF.js graph model and demo page validated in
    Node), each pushed to ``pushed/<mobile|web>[_<variant>]/`` when its converter blessed it.
    ``blessings`` (by model name: its Evaluator's blessing) also gate the push: a model its
    Evaluator did not bless is converted and measured, never pushed. With ``card_inputs``, each push
    gets its model card (metrics from ``evaluators``: by model name, the Evaluator that judged it)."""
    assert cfg.deployment is not None
    component, output, prefix = DEPLOYMENT_TARGETS[target]
    nodes = []
    for name in cfg.deployment.models:
        suffix = "" if name == "trained" else f"_{name}"
        converter = component(
            model=models[name], transform_graph=transform.outputs["transform_graph"], examples=examples,
            model_blessing=(blessings or {}).get(name),
            config=json.dumps({**deployment_config(cfg, target), "model_name": name}, sort_keys=True),
        ).with_id(f"{component.__name__}{suffix}")
        pusher = AtomicPusher(
            model=converter.outputs[output], model_blessing=converter.outputs["blessing"],
            push_destination=pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(
                base_directory=str(cfg.pushed_dir(f"{prefix}{suffix}"))))).with_id(f"Pusher_{prefix}{suffix}")
        nodes += [converter, pusher]
        if card_inputs is not None:
            nodes.append(model_card(cfg, pusher, f"{prefix}{suffix}", name, (evaluators or {}).get(name), card_inputs,
                                    blessing=converter.outputs["blessing"]))
    return nodes


def model_evaluators(cfg: PipelineConfig, components: list) -> dict[str, Any]:
    """{model name: the Evaluator that judged it} (trained: the main Evaluator)."""
    by_id = {c.id: c for c in components}
    ids = {"trained": EVALUATOR_ID, **{v.name: f"{EVALUATOR_ID}_{v.name}" for v in
                                       (cfg.optimization.variants if cfg.optimization else ())}}
    return {name: by_id[i] for name, i in ids.items() if i in by_id}


def evaluator_blessings(cfg: PipelineConfig, components: list) -> dict[str, Any]:
    """{model name: the blessing of the Evaluator that judged it} (trained: the main Evaluator)."""
    return {name: e.outputs["blessing"] for name, e in model_evaluators(cfg, components).items()}


def create_pipeline(cfg: PipelineConfig, until: str | None = None, infra_validation: bool = True
                    ) -> Pipeline:
    """The whole pipeline, or (``until``) its components up to and including that node id.
    ``infra_validation=False`` leaves InfraValidator out (KubeflowV2DagRunner cannot compile it)."""
    gen = example_gen(cfg)
    examples = gen.outputs["examples"]

    statistics_gen = tfx_components.StatisticsGen(examples=examples)
    if cfg.schema_path is not None and cfg.schema_path.exists():
        schema_gen = ImportSchemaGen(schema_file=str(cfg.schema_path))
    else:
        # infer_feature_shape=False: every raw column may be missing, here and at serving.
        schema_gen = tfx_components.SchemaGen(
            statistics=statistics_gen.outputs["statistics"], infer_feature_shape=False)
    schema = schema_gen.outputs["schema"]

    example_validator = tfx_components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema)
    gate = AnomalyGate(anomalies=example_validator.outputs["anomalies"])
    components = [gen, statistics_gen, schema_gen, example_validator, gate]
    gates = [gate]
    if cfg.drift is not None:
        gates.append(drift_gate(cfg, statistics_gen.outputs["statistics"], schema, components))

    # Row/column deletion, then feature selection: each hands on examples and a narrower schema.
    model_examples, model_schema, after_gate = examples, schema, []
    # What every model card reads besides its model's evaluation (components/model_card_generator).
    card_inputs: dict[str, Any] = {"statistics": statistics_gen.outputs["statistics"], "examples": examples}
    if cfg.cleaning_enabled:
        cleaner = DataCleaner(examples=examples, schema=schema, rules=json.dumps(cfg.cleaning_rules()))
        _after(cleaner, gates)
        model_examples, model_schema = cleaner.outputs["cleaned_examples"], cleaner.outputs["cleaned_schema"]
        after_gate.append(cleaner)
        card_inputs["cleaning_report"] = cleaner.outputs["report"]
    if cfg.selection is not None:
        selector = FeatureSelector(examples=model_examples, schema=model_schema,
                                   config=json.dumps(cfg.selection_config()))
        _after(selector, gates)
        model_schema = selector.outputs["selected_schema"]
        after_gate.append(selector)
        card_inputs["feature_scores"] = selector.outputs["scores"]
    components += after_gate

    library = library_fingerprint()  # one read of the sources for the three components below
    transform = tfx_components.Transform(
        examples=model_examples, schema=model_schema, module_file=str(PREPROCESSING_MODULE),
        custom_config={**cfg.transform_custom_config(), "library": library},
        # Fit on train only; materialize only what Trainer reads (Evaluator reads raw examples).
        splits_config=transform_pb2.SplitsConfig(analyze=["train"], transform=["train", "eval"]))
    _after(transform, gates)

    tuner = None
    if cfg.tuning is not None:
        tuning = cfg.tuning
        tuner = tfx_components.Tuner(
            module_file=str(TUNING_MODULE),
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            train_args=trainer_pb2.TrainArgs(num_steps=tuning.epochs * tuning.steps_per_epoch),
            eval_args=trainer_pb2.EvalArgs(num_steps=tuning.validation_steps),
            custom_config={**cfg.tuner_custom_config(), "library": library})

    trainer = tfx_components.Trainer(
        module_file=str(TRAINING_MODULE),
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=model_schema,
        # Tuned values when a Tuner ran; the config's model section otherwise.
        hyperparameters=tuner.outputs["best_hyperparameters"] if tuner else None,
        train_args=trainer_pb2.TrainArgs(num_steps=cfg.training.train_steps),
        eval_args=trainer_pb2.EvalArgs(num_steps=cfg.training.eval_steps),
        custom_config={**cfg.trainer_custom_config(), "library": library})

    baseline = Resolver(
        strategy_class=PreviousBlessedModelStrategy,
        **{MODEL: Channel(type=standard_artifacts.Model),
           BLESSING: trained_model_blessings(), CANDIDATE: trainer.outputs["model"]},
    ).with_id("baseline_model_resolver")

    blessing_split, *report_splits = cfg.evaluation.splits
    evaluator = tfx_components.Evaluator(
        examples=model_examples, model=trainer.outputs["model"],
        baseline_model=baseline.outputs[MODEL],
        eval_config=eval_config(cfg, cfg.evaluation.thresholds), example_splits=[blessing_split]
    ).with_id(EVALUATOR_ID)
    reports = [
        tfx_components.Evaluator(
            examples=model_examples, model=trainer.outputs["model"],
            eval_config=eval_config(cfg), example_splits=[split],
        ).with_id(f"{EVALUATOR_ID}_{split}")
        for split in report_splits
    ]

    # The model must load and answer real requests from the eval split before it is pushed.
    validators = [infra_validator(cfg, trainer.outputs["model"], model_examples)] if infra_validation else []
    pusher = AtomicPusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        infra_blessing=validators[0].outputs["blessing"] if validators else None,
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(
                base_directory=str(cfg.pushed_dir("serving"))))).with_id("Pusher")

    components += [transform, *([tuner] if tuner else []), trainer, baseline, evaluator, *reports, *validators,
                   pusher, model_card(cfg, pusher, "serving", "trained", evaluator, card_inputs)]
    models = {"trained": trainer.outputs["model"]}  # every model a deployment may convert
    if cfg.optimization is not None:
        components += model_variants(cfg, trainer.outputs["model"], transform, model_examples, models, card_inputs)
    if cfg.deployment is not None:  # on-device (TFLite) and in-browser (TF.js) models
        evaluators = model_evaluators(cfg, components)
        blessings = {name: e.outputs["blessing"] for name, e in evaluators.items()}
        for target in ("tflite", "tfjs"):
            if getattr(cfg.deployment, target) is not None:
                components += deployment(cfg, target, models, transform, model_examples, blessings, evaluators,
                                         card_inputs)
    if until is not None:
        ids = [c.id for c in components]
        if until not in ids:
            raise ValueError(f"no component '{until}' in pipeline '{cfg.name}': {', '.join(ids)}")
        components = components[: ids.index(until) + 1]  # the list is in topological order
        kept = {c.id for c in components}
        for node in components:  # e.g. the gates' explicit edges to Transform, when stopping before it
            for down in [d for d in node.downstream_nodes if d.id not in kept]:
                node.remove_downstream_node(down)
    return Pipeline(
        pipeline_name=cfg.name,
        pipeline_root=str(cfg.pipeline_root),
        components=components,
        enable_cache=True,
        metadata_connection_config=metadata_connection_config(cfg),  # sqlite or MySQL
        beam_pipeline_args=list(cfg.runner.beam_args),
    )
