"""Model variants against the trained model, on the same test split, printed as ratios.

Runs the shipped taxi pipeline (real components, the config's budgets: Tuner, Trainer,
Pruner, QuantizationAwareTrainer, Distiller, one Evaluator per variant) on the full taxi CSV,
then reads the VariantComparison table and checks the goals:

* pruned at 80% sparsity: weights gzip size <= 0.4x, AUC loss <= 0.005
* student: <= 0.3x parameters, AUC loss <= 0.01
* QAT model converted to full-integer int8 TFLite (representative data from train), run in
  ai-edge-litert on the transformed test split: >= 99% decision agreement with the trained model

Measures a finished run of the shipped config (``--output-root``, ``--config``), or runs it first.

    python benchmarks/bench_optimization.py [--workdir DIR | --output-root ROOT [--config CONFIG]] [--quick]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout, when run as a script

from model.keras_env import KERAS_ENV

# This script is a process entry (model/keras_env.py): the Keras flavour before TensorFlow loads;
# the pipeline runs and servers it starts inherit it.
os.environ.update(KERAS_ENV)

from benchmarks import harness
from benchmarks.harness import output_uri

ROOT = Path(__file__).resolve().parent.parent

SPLIT = "test"


def int8_agreement(cfg) -> tuple[float, int, int]:
    """Decisions of the int8 TFLite QAT model vs the trained Keras model on the transformed test split."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_transform as tft
    from ai_edge_litert.interpreter import Interpreter
    from tfx.types import standard_artifacts

    from components.variant_comparison.executor import raw_examples
    from model import model_io, signatures, training

    def artifact(cls, uri, splits=None):
        a = cls()
        a.uri = uri
        if splits:
            a.split_names = json.dumps(splits)
        return a

    custom_config = cfg.trainer_custom_config()
    transform_graph = artifact(standard_artifacts.TransformGraph, output_uri(cfg, "Transform", "TransformGraph"))
    tft_output = tft.TFTransformOutput(transform_graph.uri)
    outputs = training.model_outputs(custom_config, tft_output)
    raw = artifact(standard_artifacts.Examples, output_uri(cfg, "DataCleaner", "Examples"), ["train", "eval", "test"])
    records = raw_examples(raw, SPLIT, 100_000)
    parsed = tf.io.parse_example(tf.constant(records), tft_output.raw_feature_spec())
    features = signatures.model_inputs(tft_output.transform_features_layer()(parsed), outputs)

    trained = model_io.load_model(output_uri(cfg, "Trainer", "Model"))
    qat = model_io.load_model(output_uri(cfg, "QuantizationAwareTrainer", "Model"))
    examples = artifact(standard_artifacts.Examples, output_uri(cfg, "Transform", "Examples"),
                        ["train", "eval"])
    data = model_io.ModelData.of(custom_config, transform_graph, examples)

    def representative():
        for batch, _ in data.dataset("train", 1).take(300):
            yield {k: v for k, v in batch.items()}

    converter = tf.lite.TFLiteConverter.from_keras_model(qat)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    tflite = converter.convert()
    runner = Interpreter(model_content=tflite).get_signature_runner()
    n = int(next(iter(features.values())).shape[0])
    lite = np.concatenate([
        next(iter(runner(**{k: v[i:i + 1].numpy() for k, v in features.items()}).values())).ravel()
        for i in range(n)])
    reference = trained(features).numpy().ravel()
    return float(np.mean((lite > 0.5) == (reference > 0.5))), n, len(tflite)


def main() -> int:
    b = harness.bench("bench_optimization", __doc__, harness.finished_run_args)
    cfg = harness.finished_run(b, "bench_optimization")
    table = json.loads((Path(output_uri(cfg, "VariantComparison", "VariantTable")) / "comparison.json").read_text())
    auc = f"auc_{table['split']}"
    rows = {r["variant"]: r for r in table["rows"]}
    trained = rows["trained"]
    for r in table["rows"]:
        r["auc_loss"] = trained[auc] - r[auc]
    print(f"\nvariants vs the trained model on split '{table['split']}' (AUC {trained[auc]:.4f}, "
          f"{trained['parameters']:,} parameters, weights {trained['weights_gzip_bytes']:,} B gzipped)")
    print(harness.table(table["rows"], [
        ("variant", "variant", "<9"), ("parameter_ratio", "params x", ">10.3f"), ("gzip_ratio", "gzip x", ">9.3f"),
        ("sparsity", "sparsity", ">10.3f"), ("auc_loss", "AUC loss", ">10.4f"), ("latency_ms", "ms/ex", ">8.2f"),
        ("blessed", "  blessed", ">9")]))
    agreement, n, size = int8_agreement(cfg)
    pruned, student = rows["pruned"], rows["student"]
    b.tables = {"variants": table["rows"], "qat_int8": {"agreement": agreement, "rows": n, "bytes": size}}
    return b.report([
        harness.Goal("pruned: weights gzip size / trained", pruned["gzip_ratio"], "<=", 0.4),
        harness.Goal("pruned: AUC loss", pruned["auc_loss"], "<=", 0.005, unit=""),
        harness.Goal("student: parameters / trained", student["parameter_ratio"], "<=", 0.3),
        harness.Goal("student: AUC loss", student["auc_loss"], "<=", 0.01, unit=""),
        harness.Goal(f"QAT int8 TFLite decision agreement ({n} test rows)", agreement, ">=", 0.99, unit=""),
    ])


if __name__ == "__main__":
    sys.exit(main())
