"""Model variants against the trained model, on the same test split, printed as ratios.

Runs the shipped taxi pipeline (real components, the config's budgets: Tuner, Trainer,
Pruner, QuantizationAwareTrainer, Distiller, one Evaluator per variant) on the full taxi CSV,
then reads the VariantComparison table and checks the goals:

* pruned at 80% sparsity: weights gzip size <= 0.4x, AUC loss <= 0.005
* student: <= 0.3x parameters, AUC loss <= 0.01
* QAT model converted to full-integer int8 TFLite (representative data from train), run in
  ai-edge-litert on the transformed test split: >= 99% decision agreement with the trained model

    python benchmarks/bench_optimization.py [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pipeline  # noqa: E402,F401  (Keras flavour before TensorFlow)
from benchmarks.taxi_run import output_uri, run_pipeline  # noqa: E402
from pipeline.config import load_config  # noqa: E402

SPLIT = "test"


def int8_agreement(cfg) -> tuple[float, int, int]:
    """Decisions of the int8 TFLite QAT model vs the trained Keras model on the transformed test split."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_transform as tft
    from ai_edge_litert.interpreter import Interpreter
    from tfx.types import standard_artifacts

    from components import model_io
    from components.variant_comparison.executor import raw_examples
    from modules import signatures, training

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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_optimization_"))
    work.mkdir(parents=True, exist_ok=True)
    cfg = load_config(run_pipeline(work, 'bench_optimization', 'tuning and variants'), output_root=work / "outputs")
    table = json.loads((Path(output_uri(cfg, "VariantComparison", "VariantTable")) / "comparison.json").read_text())
    rows = {r["variant"]: r for r in table["rows"]}
    trained = rows["trained"]
    print(f"\nvariants vs the trained model on split '{table['split']}' (AUC {trained[f'auc_{SPLIT}']:.4f}, "
          f"{trained['parameters']:,} parameters, weights {trained['weights_gzip_bytes']:,} B gzipped)")
    print(f"  {'variant':<9}{'params x':>10}{'gzip x':>9}{'sparsity':>10}{'AUC loss':>10}{'ms/ex':>8}  blessed")
    for r in table["rows"]:
        loss = trained[f"auc_{SPLIT}"] - r[f"auc_{SPLIT}"]
        print(f"  {r['variant']:<9}{r['parameter_ratio']:>10.3f}{r['gzip_ratio']:>9.3f}{r['sparsity']:>10.3f}"
              f"{loss:>10.4f}{r['latency_ms']:>8.2f}  {r['blessed']}")
    agreement, n, size = int8_agreement(cfg)
    pruned, student = rows["pruned"], rows["student"]
    goals = [
        ("pruned gzip size <= 0.4x", pruned["gzip_ratio"], pruned["gzip_ratio"] <= 0.4),
        ("pruned AUC loss <= 0.005", trained[f"auc_{SPLIT}"] - pruned[f"auc_{SPLIT}"],
         trained[f"auc_{SPLIT}"] - pruned[f"auc_{SPLIT}"] <= 0.005),
        ("student parameters <= 0.3x", student["parameter_ratio"], student["parameter_ratio"] <= 0.3),
        ("student AUC loss <= 0.01", trained[f"auc_{SPLIT}"] - student[f"auc_{SPLIT}"],
         trained[f"auc_{SPLIT}"] - student[f"auc_{SPLIT}"] <= 0.01),
        (f"QAT int8 TFLite decision agreement >= 0.99 ({n} test rows, {size:,} B)", agreement, agreement >= 0.99),
    ]
    print("\ngoals:")
    for name, value, ok in goals:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}: {value:.4f}")
    return 0 if all(ok for *_, ok in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
