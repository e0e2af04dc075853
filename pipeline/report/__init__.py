"""The run report: pictures (PNG, matplotlib: training curves, metrics per slice, the multiclass
confusion matrix) here; the self-contained page index.html in html.py (builders) and page.py (what a
run wrote, read back from ML Metadata)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from features.task import flat_metrics


def training_curves(training_json: Path, out: Path) -> Path:
    history = json.loads(training_json.read_text())["history"]
    metrics = [m for m in ("loss", "auc", "binary_accuracy", "accuracy", "rmse", "mae") if m in history]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4))
    for ax, metric in zip(axes, metrics, strict=True):
        epochs = range(1, len(history[metric]) + 1)
        ax.plot(epochs, history[metric], marker="o", label="train")
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], marker="o", label="eval")
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Trainer: training curves")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def confusion_entries(result: Any) -> list[dict]:
    """The overall slice's multi-class confusion matrix entries from a TFMA EvalResult
    (``actualClassId``, ``predictedClassId``, ``numWeightedExamples``)."""
    entries: list[dict] = []
    for key, plots in result.plots:
        if key == ():
            for sub in plots.values():
                for values in sub.values():
                    matrices = values.get("multiClassConfusionMatrixAtThresholds", {}).get("matrices", [])
                    # Threshold 0: every example counts as its top class (argmax), as accuracy does.
                    matrix = next((m for m in matrices if not m.get("threshold")), {})
                    entries = matrix.get("entries", entries)
    return entries


def confusion_matrix(evaluation_uri: str, classes: list[str], out: Path) -> Path:
    """TFMA's multi-class confusion matrix (overall slice, argmax predictions) as a heat map, rows
    normalised: what each true class was predicted as."""
    import numpy as np
    import tensorflow_model_analysis as tfma

    entries = confusion_entries(tfma.load_eval_result(evaluation_uri))
    k = max([len(classes)] + [int(e.get(f, 0)) + 1 for e in entries for f in ("actualClassId", "predictedClassId")])
    counts = np.zeros((k, k))
    for e in entries:
        predicted = int(e.get("predictedClassId", 0))
        if predicted >= 0:  # -1: no prediction above the threshold
            counts[int(e.get("actualClassId", 0)), predicted] += float(e.get("numWeightedExamples", 0))
    names = [classes[i] if i < len(classes) else str(i) for i in range(k)]
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.2 * k + 2.5, 1.0 * k + 2))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{int(counts[i, j])}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(k), names, rotation=45)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("Evaluator: confusion matrix (rows: true class)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def slice_metrics(evaluation_uri: str, metric: str, out: Path, min_examples: int = 20,
                  higher_is_better: bool = True) -> Path:
    """One bar chart per slicing column: the metric per value, with the overall value as a line."""
    import tensorflow_model_analysis as tfma

    result = tfma.load_eval_result(evaluation_uri)
    overall, by_column = None, {}
    for key, metrics in result.slicing_metrics:
        flat = flat_metrics(metrics)
        if key == ():
            overall = flat.get(metric)
        elif len(key) == 1 and (flat.get("example_count") or 0) >= min_examples and flat.get(metric) is not None:
            column, value = key[0]
            by_column.setdefault(column, []).append((str(value), flat[metric], int(flat["example_count"])))
    columns = sorted(by_column)
    fig, axes = plt.subplots(len(columns) or 1, 1, figsize=(9, 2.8 * max(1, len(columns))), squeeze=False)
    for ax, column in zip(axes[:, 0], columns, strict=False):
        rows = sorted(by_column[column], key=lambda r: (len(r[0]), r[0]))
        ax.bar([r[0] for r in rows], [r[1] for r in rows], color="#4878a8")
        if overall is not None:
            ax.axhline(overall, color="#c44e52", linestyle="--", label=f"overall {overall:.3f}")
            ax.legend(loc="lower right")
        ax.set_title(f"{metric} by {column} (slices with >= {min_examples} examples)")
        if higher_is_better:  # scores in [0, 1]; errors (rmse) start at 0
            ax.set_ylim(min(0.5, *(r[1] for r in rows)) if rows else 0, 1.0)
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
