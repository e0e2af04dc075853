"""Our pipeline vs the upstream TFX taxi example doing the same work, back to back in one run.

Both run under LocalDagRunner with the same Beam arguments, each in a fresh process from an empty
pipeline root, on the same taxi CSV. Made equal: the split (upstream's ExampleGen is given our
8:1:1 hash buckets), the rows evaluated (the eval split, one Evaluator, no slices), the training
budget (upstream's 1000 train / 150 eval steps, one epoch, so early stopping cannot act), schema
inference on both sides (our reviewed schema is left out) and the preprocessing (upstream's, in our
config language). Still different, and printed: the model (ours: the config's model section;
upstream: its wide-and-deep net), our AnomalyGate and InfraValidator (upstream has neither), and
Transform materializing train and eval (ours) vs every split (upstream). Then our run again,
cached, as a fraction of the first.

    python benchmarks/bench_pipeline.py [--workdir DIR] [--quick]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout, when run as a script

from model.keras_env import KERAS_ENV

# This script is a process entry (model/keras_env.py): the Keras flavour before TensorFlow loads;
# the pipeline runs and servers it starts inherit it.
os.environ.update(KERAS_ENV)

from benchmarks import harness
from pipeline.derive import derive

ROOT = Path(__file__).resolve().parent.parent

SPLITS = {"train": 8, "eval": 1, "test": 1}
# Our node ids next to upstream's for the same work (None: the other side has no such step).
PAIRS = [("CsvExampleGen", "CsvExampleGen"), ("StatisticsGen", "StatisticsGen"), ("SchemaGen", "SchemaGen"),
         ("ExampleValidator", "ExampleValidator"), ("AnomalyGate", None), ("Transform", "Transform"),
         ("Trainer", "Trainer"), ("Evaluator", "Evaluator"), ("InfraValidator", None), ("Pusher", "Pusher")]
DIFFERENCES = [
    "model: ours the config's model section (embeddings + Dense), upstream a wide-and-deep Keras net",
    "ours adds AnomalyGate (stop on anomalies) and InfraValidator (serve the model before pushing)",
    "Transform materializes train+eval (ours; Evaluator reads raw examples) vs every split (upstream)",
]


def ours_config(data: Path, steps: tuple[int, int]) -> dict:
    return derive(
        harness.TAXI, drop=("schema", "cleaning", "feature_selection", "tuning", "optimization", "deployment"),
        name="bench_taxi", data={"csv_dir": str(data), "splits": SPLITS}, features=harness.UPSTREAM_FEATURES,
        training={"train_steps": steps[0], "eval_steps": steps[1], "epochs": 1},
        evaluation={"splits": ["eval"], "slices": []},
        runner={"engine": "local", "beam_args": harness.BEAM_ARGS})


def split_rows(root: Path, split: str) -> int:
    """Examples in ``split`` of the newest ExampleGen output under a pipeline root."""
    import tensorflow as tf

    newest = max((root / "CsvExampleGen" / "examples").iterdir(), key=lambda p: int(p.name))
    return sum(1 for _ in tf.data.TFRecordDataset([str(f) for f in (newest / f"Split-{split}").glob("*.gz")],
                                                   compression_type="GZIP"))


def main() -> int:
    b = harness.bench("bench_pipeline", __doc__)
    quick = b.args.quick
    steps = (20, 5) if quick else harness.UPSTREAM_STEPS
    data = harness.taxi_sample(b.work / "data", 600) if quick else harness.scaled_taxi(b.work, 15_002)
    cfg = ours_config(data, steps)
    print(f"{steps[0]}/{steps[1]} train/eval steps; Beam {' '.join(harness.BEAM_ARGS)}", flush=True)
    upstream = harness.run_upstream(b.work, data, steps=steps, splits=SPLITS)
    ours = harness.run_ours(b.work, cfg)
    cached = harness.run_ours(b.work, cfg, tag="cached")

    rows = []
    for mine, theirs in PAIRS:
        a = ours.nodes.get(mine)
        u = upstream.nodes.get(theirs) if theirs else None
        rows.append({"component": mine, "ours_s": a, "upstream_s": u, "ratio": a / u if a and u else None})
    rows.append({"component": "wall (process)", "ours_s": ours.wall, "upstream_s": upstream.wall,
                 "ratio": ours.wall / upstream.wall})
    eval_rows = {"ours": split_rows(b.work / "outputs" / "bench_taxi" / "pipeline_root", "eval"),
                 "upstream": split_rows(b.work / "upstream" / "pipeline_root", "eval")}
    print("\n" + harness.table(rows, [("component", "component", "<18"), ("ours_s", "ours s", ">9.1f"),
                                     ("upstream_s", "upstream s", ">12.1f"), ("ratio", "ratio", ">8.2f")]))
    print(f"\n  rows evaluated: ours {eval_rows['ours']:,}, upstream {eval_rows['upstream']:,}")
    print("  still different:\n" + "\n".join(f"    - {d}" for d in DIFFERENCES))
    b.tables = {"components": rows, "eval_rows": eval_rows, "steps": steps, "beam_args": harness.BEAM_ARGS,
                "differences": DIFFERENCES, "cached_s": cached.wall,
                "peak_gib": {"ours": ours.peak_bytes / 2**30, "upstream": upstream.peak_bytes / 2**30}}
    return b.report([
        harness.Goal("whole pipeline, ours / upstream (wall)", ours.wall / upstream.wall, "<=", 0.9),
        harness.Goal("cached re-run / first run (ours)", cached.wall / ours.wall, "<=", 0.10),
    ])


if __name__ == "__main__":
    sys.exit(main())
