"""The score table's three renderings (JSON, CSV, bar chart), built in memory as bytes so the
executor writes files only once everything has been computed."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence

from components.feature_selector.scoring import FeatureScore

JSON_FILE, CSV_FILE, PNG_FILE = "scores.json", "scores.csv", "scores.png"
FIELDS = ("feature", "type", "mutual_information", "correlation", "selected", "rank", "reason")


def to_json(table: Sequence[FeatureScore]) -> bytes:
    return (json.dumps([row.to_json() for row in table], indent=2, allow_nan=False) + "\n").encode()


def to_csv(table: Sequence[FeatureScore]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in table:
        writer.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v)
                         for k, v in row.to_json().items()})
    return out.getvalue().encode()


def to_png(table: Sequence[FeatureScore], method: str, title: str, threshold: float | None = None) -> bytes:
    """Horizontal bars of the method's score, best first; selected features highlighted."""
    # Figure + the Agg canvas directly: no pyplot global state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    rows = sorted(table, key=lambda r: (r.rank is None, r.rank or 0, r.feature))
    values = [r.score(method) or 0.0 for r in rows]
    colors = ["#1f77b4" if r.selected else "#c7c7c7" for r in rows]
    fig = Figure(figsize=(7, 1.2 + 0.35 * len(rows)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    y = list(range(len(rows)))
    ax.barh(y, values, color=colors)
    ax.set_yticks(y, [r.feature + ("  (not scored, kept)" if r.score(method) is None else "") for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel(method.replace("_", " ") + (" (nats)" if method == "mutual_information" else " |r|"))
    ax.set_title(title)
    top = max(values) if values and max(values) > 0 else 1.0
    for yi, v, r in zip(y, values, rows, strict=True):
        if r.score(method) is not None and math.isfinite(v):
            ax.text(v + 0.01 * top, yi, f"{v:.3g}", va="center", fontsize=8)
    handles = [Patch(color="#1f77b4", label="selected"), Patch(color="#c7c7c7", label="dropped")]
    if threshold is not None:
        handles.append(ax.axvline(threshold, color="#d62728", linestyle="--", label=f"threshold {threshold:g}"))
        top = max(top, threshold)
    ax.set_xlim(0, top * 1.15)
    ax.legend(handles=handles, loc="lower right")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
