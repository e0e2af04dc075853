"""int8 TFLite of the raw-in graph (raw features in, Transform's preprocessing embedded in
built-in ops, prediction out), per deployed model (trained, qat), with the code in this tree:

* size: the int8 .tflite / the float32 .tflite of the same raw-in graph; goal <= 0.5x
* agreement: the int8 model's decisions (LiteRT) vs the SavedModel's ``serving_raw`` on the raw
  rows of the deployment split (post-training int8 of the trained model is calibrated on
  ``representative_examples`` train rows; a QAT model brings its own ranges); goal >= 99%

Each .tflite is also broken down by where its bytes go (ondevice.tflite.size_breakdown:
weights, vocabulary tables, tensor names, quantization parameters, the flatbuffer's operator and
tensor tables) and which ops run in int8: when the size goal is missed, that table says why.

    python benchmarks/bench_tflite_int8.py --output-root outputs          # a finished run of --config
    python benchmarks/bench_tflite_int8.py [--workdir DIR] [--quick]      # runs --config first (no
        tuning, pruning, distillation or TF.js; --quick: 2,000 taxi rows and tiny budgets)
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

ROOT = Path(__file__).resolve().parent.parent

SIZE_GOAL, AGREEMENT_GOAL = 0.5, 0.99
# Ops whose constant inputs are the model's weights (QAT's float32 file passes them through QUANTIZE).
WEIGHT_CONSUMERS = ("FULLY_CONNECTED", "GATHER", "QUANTIZE", "DEQUANTIZE")
# deployment.models entry -> the component that trains it
MODEL_NODES = {"trained": "Trainer", "qat": "QuantizationAwareTrainer", "pruned": "Pruner", "student": "Distiller"}


def run_config(b: harness.Bench) -> object:
    """The run to measure: ``--output-root`` (a finished run of ``--config``), else ``--config``
    run now under the work folder without what this benchmark does not read (tuning, pruning,
    distillation, TF.js; TFLite variants float32 and int8); ``--quick``: 2,000 taxi rows."""
    from pipeline.config import load_config
    from pipeline.derive import derive

    if b.args.output_root is not None:
        return load_config(b.args.config, output_root=b.args.output_root.resolve())
    cfg = derive(b.args.config, drop=("tuning",), name="bench_tflite_int8")
    optimization = cfg.get("optimization") or {}
    for key in ("pruning", "distillation"):
        optimization.pop(key, None)
    if not optimization:
        cfg.pop("optimization", None)
    deployment = cfg.setdefault("deployment", {})
    deployment.pop("tfjs", None)
    deployment["tflite"] = {**(deployment.get("tflite") or {}), "variants": ["float32", "int8"]}
    if "quantization_aware" not in optimization:
        deployment["models"] = [m for m in deployment.get("models", ["trained"]) if m != "qat"] or ["trained"]
    if b.args.quick:
        if b.args.config.resolve() == harness.TAXI.resolve():
            cfg["data"]["csv_dir"] = str(harness.taxi_sample(b.work / "data", 2000))
        cfg["training"] = {**cfg.get("training", {}), "train_steps": 100, "eval_steps": 10, "epochs": 1}
        if "quantization_aware" in optimization:
            optimization["quantization_aware"] = {**optimization["quantization_aware"], "fine_tune_steps": 20}
        deployment["validation_examples"] = 200
    harness.run_ours(b.work, cfg)
    return load_config(b.work / "bench_tflite_int8.yaml", output_root=b.work / "outputs")


def measure(cfg, name: str, work: Path) -> list[dict]:
    """float32 and int8 of model ``name``'s raw-in graph: bytes, agreement, breakdown."""
    import tensorflow as tf
    import tensorflow_transform as tft

    from features import task
    from model.signatures import serving_columns
    from ondevice import data, raw_model
    from ondevice import tflite as lite

    custom_config = cfg.trainer_custom_config()
    transform = harness.output_uri(cfg, "Transform", "TransformGraph")
    examples = harness.output_uri(cfg, "DataCleaner", "Examples")
    model_uri = harness.output_uri(cfg, MODEL_NODES[name], "Model")
    spec = raw_model.build_spec_for(transform, custom_config)
    module = raw_model.build(model_uri, spec, target="tflite")
    saved = str(work / name / "saved_model_raw")
    tf.saved_model.save(module, saved, signatures={"serving_default": module.serve})
    columns = serving_columns(custom_config, tft.TFTransformOutput(transform).raw_feature_spec())
    d = cfg.deployment
    rows = data.raw_rows(examples, d.split, d.validation_examples, spec, columns)
    n = len(next(iter(rows.values())))
    reference = data.reference_predictions(model_uri, rows, spec)
    train = data.raw_rows(examples, "train", d.tflite.representative_examples, spec, columns)
    representative = [data.feed(train, spec, i, i + 1) for i in range(len(next(iter(train.values()))))]
    out = []
    for variant in ("float32", "int8"):
        print(f"  {name} {variant} ...", flush=True)
        content = lite.convert(saved, variant, representative if variant == "int8" else None,
                               quantization_aware=module.quantization_aware)
        (work / name / f"model_{variant}.tflite").write_bytes(content)
        measured = task.parity(spec["task"], lite.predict(content, data.feed(rows, spec)), reference)
        out.append({"model": name, "variant": variant, "calibration": (
                        "QAT ranges" if module.quantization_aware else f"{len(representative)} train rows")
                    if variant == "int8" else "-", "bytes": len(content), "rows": n, **measured,
                    "quantized_ops": lite.quantized_ops(content), "breakdown": lite.size_breakdown(content)})
    out += model_alone(module, spec, rows, train, representative, out[0], work / name / "model_alone")
    return out


def model_alone(module, spec, rows, train, representative, raw_float32: dict, folder: Path) -> list[dict]:
    """For the profile: the same Keras model without the embedded preprocessing (inputs already
    transformed, as Transform's output), float32 and int8, calibrated on the same train rows."""
    import numpy as np
    import tensorflow as tf

    from features import task
    from ondevice import builtin, data, raw_model
    from ondevice import tflite as lite

    def transformed(feeds: dict) -> dict:
        inputs = {k: tf.constant(v.astype(str) if v.dtype == object else v) for k, v in feeds.items()}
        graph = builtin.transformed_features(spec, inputs, module.tables, "tflite")
        return {k: v.numpy() for k, v in builtin.model_inputs(spec, graph).items()}

    names = [o["name"] for f in spec["features"] for o in f["outputs"]]
    sample = transformed(data.feed(rows, spec, 0, 1))
    signature = [tf.TensorSpec([None, *sample[n].shape[1:]], tf.as_dtype(sample[n].dtype), name=n) for n in names]

    class Alone(tf.Module):
        def __init__(self):
            super().__init__()
            self.model = module.model  # tracked: its variables are saved

        @tf.function(input_signature=signature)
        def serve(self, *values):
            y = self.model(dict(zip(names, values, strict=True)), training=False)
            return {spec["output"]: raw_model.target_units(y, spec.get("target"))}

    alone = Alone()
    tf.saved_model.save(alone, str(folder), signatures={"serving_default": alone.serve})
    feeds = transformed(data.feed(rows, spec))
    reference = np.asarray(alone.serve(*[feeds[n] for n in names])[spec["output"]]).reshape(len(feeds[names[0]]), -1)
    reference = reference[:, 0] if reference.shape[1] == 1 else reference
    calibration = [transformed(r) for r in representative]
    out = []
    for variant in ("float32", "int8"):
        content = lite.convert(str(folder), variant, calibration if variant == "int8" else None,
                               quantization_aware=module.quantization_aware)
        measured = task.parity(spec["task"], lite.predict(content, feeds), reference)
        out.append({"model": raw_float32["model"], "variant": f"{variant} (alone)", "calibration": "-",
                    "bytes": len(content), "rows": len(reference), **measured,
                    "quantized_ops": lite.quantized_ops(content), "breakdown": lite.size_breakdown(content)})
    return out


def breakdown_rows(rows: list[dict]) -> list[dict]:
    """One line per .tflite: its bytes by kind."""
    out = []
    for r in rows:
        b = r["breakdown"]
        weights = sum(v for k, v in b["constant_bytes_by_consumer"].items()
                      if k.split(" <- ")[0] in WEIGHT_CONSUMERS)
        tables = sum(v for k, v in b["constant_bytes_by_consumer"].items() if k.startswith("HASHTABLE"))
        out.append({"file": f"{r['model']} {r['variant']}", "bytes": b["bytes"], "weights": weights,
                    "vocab": tables, "other_const": b["constant_bytes"] - weights - tables,
                    "names": b["tensor_name_bytes"], "quant": b["quantization_param_bytes"],
                    "meta": sum(b["metadata_bytes"].values()), "structure": b["structure_bytes"],
                    "ops": b["operators"], "tensors": b["tensors"]})
    return out


def main() -> int:
    b = harness.bench("bench_tflite_int8", __doc__, harness.finished_run_args)
    cfg = run_config(b)
    if cfg.deployment is None or cfg.deployment.tflite is None:
        sys.exit(f"{b.args.config}: no deployment.tflite section")
    rows = [r for name in cfg.deployment.models for r in measure(cfg, name, b.work)]
    print("\nraw-in .tflite per model (agreement: decisions vs the SavedModel's serving_raw, LiteRT)")
    print(harness.table(rows, [("model", "model", "<8s"), ("variant", "variant", "<17s"),
                               ("calibration", "int8 ranges", "<16s"), ("bytes", "bytes", ">9,d"),
                               ("agreement", "agreement", ">11.4f"), ("max_abs_diff", "max|diff|", ">11.2e")]))
    for r in rows:
        if r["variant"].startswith("int8"):
            print(f"  {r['model']} {r['variant']} ops: {', '.join(r['quantized_ops'])}")
    parts = breakdown_rows(rows)
    print("\nwhere the bytes go (weights: constants of FULLY_CONNECTED/GATHER/QUANTIZE; vocab: hash table keys/values; "
          "structure: operator and tensor tables, shapes, buffer entries)")
    print(harness.table(parts, [("file", "file", "<23s"), ("bytes", "bytes", ">8,d"), ("weights", "weights", ">9,d"),
                                ("vocab", "vocab", ">7,d"), ("other_const", "consts", ">8,d"),
                                ("names", "names", ">7,d"), ("quant", "qparams", ">8,d"), ("meta", "meta", ">6,d"),
                                ("structure", "structure", ">10,d"), ("ops", "ops", ">5d"),
                                ("tensors", "tensors", ">8d")]))
    b.tables["models"] = rows
    b.tables["breakdown"] = parts
    goals = []
    for name in cfg.deployment.models:
        by = {r["variant"]: r for r in rows if r["model"] == name}
        alone = by["int8 (alone)"]["bytes"] / by["float32 (alone)"]["bytes"]
        fixed = {k: v for k, v in breakdown_rows([by["int8"]])[0].items() if k not in ("file", "bytes", "weights")}
        shared = sum(v for k, v in fixed.items() if k not in ("ops", "tensors"))
        goals.append(harness.Goal(f"{name}: int8 .tflite / float32 .tflite (same raw-in graph)",
                                  by["int8"]["bytes"] / by["float32"]["bytes"], "<=", SIZE_GOAL,
                                  note=f"{by['int8']['bytes']:,} / {by['float32']['bytes']:,} B; "
                                       f"{shared:,} B of the int8 file are not weights; the model "
                                       f"alone, without the preprocessing graph: {alone:.2f}x"))
        goals.append(harness.Goal(f"{name}: int8 decision agreement with the SavedModel",
                                  by["int8"]["agreement"], ">=", AGREEMENT_GOAL, unit="",
                                  note=f"{by['int8']['rows']} {cfg.deployment.split} rows"))
    (b.work / "bench_tflite_int8_rows.json").write_text(json.dumps(rows, indent=1, default=float))
    return b.report(goals)


if __name__ == "__main__":
    sys.exit(main())
