"""HTML builders for the run report (index.html): plain data in, one self-contained page out.

No network and no JavaScript: inline CSS, inline SVG, pictures as PNG data URIs, so the page works
from file:// and in an air-gapped network. Each number a reader may want to check carries a
``data-check`` key (e.g. ``metric/eval/auc``): tests read the page's numbers back through them and
compare them with ML Metadata."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#c9d1e0}nav{padding:6px 24px;background:#e9edf3}nav a{margin-right:14px}
main{padding:8px 24px 40px;max-width:1200px}section{background:#fff;border:1px solid #dde2ea;border-radius:6px;
padding:10px 18px;margin:14px 0}h2{font-size:17px;margin:6px 0 10px}h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}th,td{border-bottom:1px solid #e4e7ec;padding:3px 9px;
text-align:left;vertical-align:middle}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f0f2f6}.ok{color:#1a7f37;font-weight:600}.bad{color:#c0392b;font-weight:600}.muted{color:#6b7280}
img{max-width:100%;border:1px solid #eee}.cols{display:flex;flex-wrap:wrap;gap:28px}
svg text{font:11px system-ui,sans-serif}.note{color:#6b7280;font-size:12px}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any, digits: int = 4) -> str:
    """Numbers as a reader wants them: ints with thousands separators, floats to ``digits`` places."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return f"{value:.{digits}f}" if abs(value) < 1e6 else f"{value:.4g}"
    return str(value)


def cell(value: Any, check: str | None = None, digits: int = 4, cls: str | None = None) -> str:
    """A table cell; numbers right-aligned; ``check`` becomes the data-check key."""
    classes = [c for c in ("n" if isinstance(value, int | float) and not isinstance(value, bool) else None, cls) if c]
    attrs = (f' class="{" ".join(classes)}"' if classes else "") + (f' data-check="{esc(check)}"' if check else "")
    return f"<td{attrs}>{esc(fmt(value, digits))}</td>"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric_from: int = 1) -> str:
    """``rows``: already rendered cells (cell(...) or raw <td>)."""
    head = "".join(f'<th{" class=n" if i >= numeric_from else ""}>{esc(h)}</th>' for i, h in enumerate(headers))
    body = "".join(f"<tr>{''.join(r)}</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def verdict(ok: bool | None, yes: str = "passed", no: str = "failed", check: str | None = None) -> str:
    attr = f' data-check="{esc(check)}"' if check else ""
    if ok is None:
        return f'<span class="muted"{attr}>—</span>'
    return f'<span class="{"ok" if ok else "bad"}"{attr}>{esc(yes if ok else no)}</span>'


def png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def picture(path: Path | None, alt: str) -> str:
    if path is None or not path.exists():
        return ""
    return f'<p><img alt="{esc(alt)}" src="{png_data_uri(path)}"></p>'


def histogram_svg(counts: Sequence[float], width: int = 140, height: int = 30, title: str = "") -> str:
    """Small inline bar chart of bucket counts (a distribution at a glance)."""
    if not counts:
        return ""
    top = max(counts) or 1.0
    w = width / len(counts)
    bars = "".join(f'<rect x="{i * w:.1f}" y="{height - height * c / top:.1f}" width="{max(w - 1, 0.5):.1f}" '
                   f'height="{height * c / top:.1f}" fill="#4878a8"/>' for i, c in enumerate(counts))
    label = f"<title>{esc(title)}</title>" if title else ""
    return (f'<svg class="hist" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img">{label}{bars}</svg>')


def bars_svg(items: Sequence[tuple[str, float, bool]], width: int = 520) -> str:
    """Horizontal bars (label, value, highlighted): feature-selection scores."""
    if not items:
        return ""
    top = max((abs(v) for _, v, _ in items), default=1.0) or 1.0
    row, left = 18, 150
    parts = []
    for i, (label, value, on) in enumerate(items):
        y = i * row
        length = (width - left - 60) * abs(value) / top
        parts.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">{esc(label)}</text>'
                     f'<rect x="{left}" y="{y + 3}" width="{length:.1f}" height="{row - 6}" '
                     f'fill="{"#4878a8" if on else "#c7c7c7"}"/>'
                     f'<text x="{left + length + 4:.1f}" y="{y + 13}">{value:.4f}</text>')
    height = row * len(items)
    return f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">{"".join(parts)}</svg>'


def section(section_id: str, title: str, body: str) -> str:
    return f'<section id="{esc(section_id)}"><h2>{esc(title)}</h2>{body}</section>' if body else ""


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole document; ``sections``: (id, title, body); empty bodies are left out."""
    shown = [(i, t, b) for i, t, b in sections if b]
    nav = "".join(f'<a href="#{esc(i)}">{esc(t)}</a>' for i, t, _ in shown)
    body = "".join(section(i, t, b) for i, t, b in shown)
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            # No request may leave the page: the CSP forbids every fetch except inline styles and data: images.
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "style-src 'unsafe-inline'; img-src data:\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header><nav>{nav}</nav>"
            f"<main>{body}</main></body></html>\n")


# ----------------------------------------------------------------------------- sections --

def statistics_html(stats: dict[str, dict[str, Any]]) -> str:
    """``stats``: split -> {rows, features: {name: {type, missing, mean, unique, histogram: [counts]}}};
    one row per feature, splits side by side."""
    if not stats:
        return ""
    splits = list(stats)
    names = sorted({n for d in stats.values() for n in d["features"]})
    headers = ["feature", "type"] + [f"{s}: {h}" for s in splits for h in ("missing", "mean / unique", "distribution")]
    rows = []
    for name in names:
        first = next(d["features"][name] for d in stats.values() if name in d["features"])
        row = [f"<td>{esc(name)}</td>", f"<td>{esc(first.get('type', ''))}</td>"]
        for split in splits:
            f = stats[split]["features"].get(name, {})
            centre = (cell(f.get("mean"), f"mean/{split}/{name}", 3) if f.get("mean") is not None
                      else cell(f.get("unique"), f"unique/{split}/{name}"))
            row += [cell(f.get("missing"), f"missing/{split}/{name}"), centre,
                    f"<td>{histogram_svg(f.get('histogram') or [], width=110, title=f'{name} ({split})')}</td>"]
        rows.append(row)
    counts = ", ".join(f'{esc(s)} <b data-check="rows/{esc(s)}">{fmt(d["rows"])}</b>' for s, d in stats.items())
    return (f"<h3>Statistics per split (StatisticsGen)</h3><p>rows: {counts}</p>"
            "<p class=note>numeric: mean and a 10-bucket histogram; strings: distinct values and the "
            "frequencies of the most common ones</p>" + table(headers, rows, numeric_from=2))


def anomalies_html(anomalies: dict[str, list[tuple[str, str]]]) -> str:
    """``anomalies``: split -> [(feature, description)] from ExampleValidator."""
    if not anomalies:
        return ""
    parts = ["<h3>Anomalies (ExampleValidator)</h3>"]
    for split, found in anomalies.items():
        n = f'<span data-check="anomalies/{esc(split)}">{len(found)}</span>'
        parts.append(f"<p>{esc(split)}: {n} anomal{'y' if len(found) == 1 else 'ies'}</p>")
        if found:
            parts.append(table(["feature", "description"],
                               [[f"<td>{esc(f)}</td>", f"<td>{esc(d)}</td>"] for f, d in found], numeric_from=9))
    return "".join(parts)


def drift_html(report: dict[str, Any] | None) -> str:
    """DriftSkewGate's report.json."""
    if not report:
        return ""
    parts = [f"<h3>Drift and skew (DriftSkewGate, split {esc(report['split'])}): "
             f"{verdict(report['passed'], check='drift/passed')}</h3>"]
    parts += [f"<p class=bad>{esc(line)}</p>" for line in report.get("exceeded", [])]
    for name, comp in report.get("comparisons", {}).items():
        if not comp["compared"]:
            parts.append(f"<p class=muted>{esc(name)} vs {esc(comp['baseline'])}: {esc(comp['note'])}</p>")
            continue
        rows = [[f"<td>{esc(feature)}</td>", f"<td>{esc(f['metric'])}</td>",
                 cell(f["measured"], f"drift/{name}/{feature}"), cell(f["threshold"]),
                 f"<td>{verdict(not f['exceeded'], 'ok', 'EXCEEDED') if f['measured'] is not None else 'not measured'}"
                 "</td>"] for feature, f in comp["features"].items()]
        parts.append(f"<p>{esc(name)} vs {esc(comp['baseline'])}</p>"
                     + table(["feature", "metric", "measured", "threshold", "result"], rows, numeric_from=2))
    return "".join(parts)


def cleaning_html(report: dict[str, Any] | None) -> str:
    """DataCleaner's report.json."""
    if not report:
        return ""
    rows = []
    for split, steps in report["splits"].items():
        rows += [[f"<td>{esc(split)}</td>", f"<td>{esc(r['rule'])}</td>", cell(r["rows_in"]),
                  cell(r["rows_removed"]), cell(r["rows_out"])] for r in steps]
        t = report["totals"][split]
        rows.append([f"<td>{esc(split)}</td>", "<td><b>total</b></td>", cell(t["rows_in"], f"cleaning/{split}/in"),
                     cell(t["rows_in"] - t["rows_out"]), cell(t["rows_out"], f"cleaning/{split}/out")])
    dropped = ", ".join(report.get("dropped_columns", [])) or "none"
    return (f"<h3>Cleaning (DataCleaner, fitted on {esc(report['fit_split'])})</h3>"
            f"<p>dropped columns: <span data-check=\"cleaning/dropped\">{esc(dropped)}</span></p>"
            + table(["split", "rule", "rows in", "removed", "rows out"], rows, numeric_from=2))


def feature_scores_html(scores: list[dict[str, Any]] | None) -> str:
    """FeatureSelector's scores.json (best first)."""
    if not scores:
        return ""
    key = "mutual_information" if any(s.get("mutual_information") is not None for s in scores) else "correlation"
    ranked = sorted(scores, key=lambda s: -(s.get(key) or 0.0))
    rows = [[f"<td>{esc(s['feature'])}</td>", cell(s.get(key), f"score/{s['feature']}"),
             f"<td>{verdict(s['selected'], 'selected', 'dropped')}</td>", f"<td>{esc(s.get('reason') or '')}</td>"]
            for s in ranked]
    chart = bars_svg([(s["feature"], float(s.get(key) or 0.0), bool(s["selected"])) for s in ranked])
    return (f"<h3>Feature selection (FeatureSelector, {esc(key.replace('_', ' '))})</h3>{chart}"
            + table(["feature", key.replace("_", " "), "", "reason"], rows, numeric_from=1))


def metrics_html(metrics: dict[str, dict[str, float]], blessed: bool | None) -> str:
    """Overall metrics per evaluated split (RunSummary.metrics)."""
    if not metrics:
        return ""
    names = sorted({m for split in metrics.values() for m in split if "@" not in m and not m.endswith("_diff")})
    order = {"train": 0, "eval": 1, "test": 2}
    splits = sorted(metrics, key=lambda s: (order.get(s, 9), s))

    def value(split: str, name: str) -> Any:
        v = metrics[split].get(name)
        return int(v) if name == "example_count" and v is not None else v

    rows = [[f"<td>{esc(n)}</td>", *(cell(value(s, n), f"metric/{s}/{n}") for s in splits)] for n in names]
    return (f"<h3>Metrics (TFMA, overall) — blessed: {verdict(blessed, 'yes', 'no', check='blessed')}</h3>"
            + table(["metric", *splits], rows))


def thresholds_html(checks: list[dict[str, Any]], validation_ok: bool | None) -> str:
    """The blessing decision: each configured threshold against the measured value.
    ``checks``: {metric, lower_bound, upper_bound, max_decrease, value, baseline_diff, passed}."""
    if not checks:
        return ""
    rows = [[f"<td>{esc(c['metric'])}</td>", cell(c.get("lower_bound")), cell(c.get("upper_bound")),
             cell(c.get("max_decrease")), cell(c.get("value"), f"threshold/{c['metric']}/value"),
             cell(c.get("baseline_diff"), f"threshold/{c['metric']}/diff"),
             f"<td>{verdict(c['passed'], check='threshold/' + c['metric'] + '/passed')}</td>"] for c in checks]
    decision = verdict(validation_ok, "BLESSED: every threshold passed", "REJECTED: a threshold failed",
                       check="decision")
    return (f"<h3>Threshold decision (Evaluator)</h3><p>{decision}</p>"
            + table(["metric", "lower bound", "upper bound", "max decrease", "value", "vs baseline", "result"],
                    rows))


def slices_html(slices: dict[str, list[tuple[str, int, float]]], metric: str, min_examples: int = 20) -> str:
    """``slices``: column -> [(value, examples, metric value)]; slices under ``min_examples`` are greyed:
    their values are noise, not a weakness of the model."""
    if not slices:
        return ""
    tables = []
    for column, rows in slices.items():
        tables.append(f"<div><p>{esc(column)}</p>" + table(
            ["value", "examples", metric],
            [[f"<td>{esc(v)}</td>", cell(n), cell(m, f"slice/{column}/{v}", cls="muted" if n < min_examples else None)]
             for v, n, m in rows]) + "</div>")
    return (f"<h3>{esc(metric)} per slice (TFMA)</h3><p class=note>grey: fewer than {min_examples} examples</p>"
            f'<div class="cols">{"".join(tables)}</div>')


def binary_confusion(n: float, accuracy: float, precision: float, recall: float) -> list[list[float]] | None:
    """The 2x2 confusion matrix (rows: true 0/1) that TFMA's example count, accuracy, precision and recall
    at its 0.5 threshold imply: TP = n(a - 1) / (2 - 1/p - 1/r), FP = TP/p - TP, FN = TP/r - TP.
    None when they do not determine it (p or r is 0, or both are 1)."""
    if not precision or not recall or abs(2 - 1 / precision - 1 / recall) < 1e-12:
        return None
    tp = n * (accuracy - 1) / (2 - 1 / precision - 1 / recall)
    fp, fn = tp / precision - tp, tp / recall - tp
    tn = n - tp - fp - fn
    cells = [round(tn), round(fp), round(fn), round(tp)]
    return None if min(cells) < 0 else [[cells[0], cells[1]], [cells[2], cells[3]]]


def confusion_html(matrix: list[list[float]], names: Sequence[str], title: str) -> str:
    """A small confusion matrix as a table (rows: true class), shaded by row share."""
    if not matrix:
        return ""
    rows = []
    for i, row in enumerate(matrix):
        total = sum(row) or 1.0
        cells = []
        for j, count in enumerate(row):
            share = count / total
            colour = f"rgba(72,120,168,{share:.2f})"
            cells.append(f'<td class=n style="background:{colour}" data-check="confusion/{i}/{j}">{int(count):,}</td>')
        rows.append([f"<th>{esc(names[i] if i < len(names) else i)}</th>", *cells])
    headers = ["true \\ predicted", *(str(n) for n in names)]
    return f"<h3>{esc(title)}</h3>" + table(headers, rows)


def tuning_html(best: dict[str, Any], trials: list[dict[str, Any]]) -> str:
    if not best and not trials:
        return ""
    parts = ["<h3>Tuning (Tuner)</h3>"]
    if best:
        parts.append(table(["hyperparameter", "best"], [[f"<td>{esc(k)}</td>", cell(v, f"tuned/{k}")]
                                                         for k, v in sorted(best.items())], numeric_from=1))
    if trials:
        keys = sorted({k for t in trials for k in t.get("hyperparameters", {})})
        parts.append(table(["trial", "score", *keys], [
            [f"<td>{esc(t.get('trial_id', i))}</td>", cell(t.get("score")),
             *(cell(t.get("hyperparameters", {}).get(k)) for k in keys)] for i, t in enumerate(trials)]))
    return "".join(parts)


def variants_html(variants: list[dict[str, Any]], split: str | None, metric: str,
                  pushed: dict[str, str | None]) -> str:
    if not variants:
        return ""
    rows = [[f"<td>{esc(r['variant'])}</td>", cell(r.get("parameters")), cell(r.get("weights_gzip_bytes")),
             cell(r.get("sparsity"), digits=2), cell(r.get(f"{metric}_{split}"), f"variant/{r['variant']}/{metric}"),
             cell(r.get(f"{metric}_change")), cell(r.get("latency_ms"), digits=2),
             f"<td>{verdict(r.get('blessed'), 'yes', 'no')}</td>",
             f"<td>{esc('-' if r['variant'] == 'trained' else (pushed.get(r['variant']) or 'no'))}</td>"]
            for r in variants]
    return (f"<h3>Model variants (on {esc(split)})</h3>"
            + table(["variant", "params", "gzip bytes", "sparsity", metric, "Δ", "ms/example", "blessed", "pushed"],
                    rows))


def ondevice_html(kind: str, models: dict[str, dict[str, dict[str, Any]]], metric: str) -> str:
    """TFLite / TF.js validation numbers: model -> variant -> {bytes, max_abs_diff, agreement, tfma, blessed}."""
    if not models:
        return ""
    rows = []
    for model, variants in models.items():
        for variant, r in variants.items():
            rows.append([f"<td>{esc(model)}</td>", f"<td>{esc(variant)}</td>",
                         cell(r.get("bytes"), f"{kind}/{model}/{variant}/bytes"),
                         cell(r.get("max_abs_diff"), f"{kind}/{model}/{variant}/max_abs_diff", 6),
                         cell(r.get("agreement"), f"{kind}/{model}/{variant}/agreement"),
                         cell((r.get("tfma") or {}).get(metric)), f"<td>{verdict(r.get('blessed'), 'yes', 'no')}</td>"])
    return (f"<h3>{esc(kind)}: parity with the SavedModel and size</h3>"
            + table(["model", "variant", "bytes", "max |diff|", "agreement", metric, "blessed"], rows, numeric_from=2))


def pushes_html(pushes: list[tuple[str, bool | None, str | None]], infra: list[tuple[str, bool | None]]) -> str:
    """(Pusher id, pushed, destination) and (InfraValidator id, blessed)."""
    if not pushes and not infra:
        return ""
    parts = []
    if infra:
        parts.append("<h3>Infra validation</h3>" + table(
            ["validator", "result"], [[f"<td>{esc(i)}</td>", f"<td>{verdict(ok, check=f'infra/{i}')}</td>"]
                                      for i, ok in infra], numeric_from=9))
    if pushes:
        parts.append("<h3>Pushed</h3>" + table(
            ["pusher", "pushed", "where"],
            [[f"<td>{esc(p)}</td>", f"<td>{verdict(ok, 'yes', 'no')}</td>",
              f'<td data-check="pushed/{esc(p)}">{esc(where or "—")}</td>'] for p, ok, where in pushes],
            numeric_from=9))
    return "".join(parts)


def lineage_svg(nodes: dict[str, dict[str, str]], edges: Sequence[tuple[str, str]]) -> str:
    """A layered drawing of a run's graph: ``nodes`` id -> {label, kind: artifact|execution, title};
    ``edges`` (from, to). Layers by longest path from a source (topological order), left to right."""
    if not nodes:
        return ""
    incoming: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        if a in nodes and b in nodes:
            incoming[b].append(a)
    layer: dict[str, int] = {}

    def depth(n: str, seen: frozenset = frozenset()) -> int:
        if n not in layer:
            layer[n] = 1 + max((depth(p, seen | {n}) for p in incoming[n] if p not in seen), default=-1)
        return layer[n]

    for n in nodes:
        depth(n)
    columns: dict[int, list[str]] = {}
    for n in sorted(nodes, key=lambda n: (layer[n], nodes[n].get("label", n))):
        columns.setdefault(layer[n], []).append(n)
    box_w, box_h, gap_x, gap_y = 150, 30, 40, 12
    pos = {n: (20 + c * (box_w + gap_x), 20 + r * (box_h + gap_y))
           for c, names in columns.items() for r, n in enumerate(names)}
    width = 40 + (max(columns) + 1) * (box_w + gap_x)
    height = 40 + max(len(v) for v in columns.values()) * (box_h + gap_y)
    lines = []
    for a, b in edges:
        if a in pos and b in pos:
            (x1, y1), (x2, y2) = pos[a], pos[b]
            lines.append(f'<path d="M{x1 + box_w},{y1 + box_h / 2} C{x1 + box_w + gap_x / 2},{y1 + box_h / 2} '
                         f'{x2 - gap_x / 2},{y2 + box_h / 2} {x2},{y2 + box_h / 2}" fill="none" stroke="#8a94a6" '
                         'marker-end="url(#arrow)"/>')
    boxes = []
    for n, (x, y) in pos.items():
        d = nodes[n]
        execution = d.get("kind") == "execution"
        fill = ("#fde2e1" if d.get("failed") else "#dbe7f5") if execution else "#eef7e9"
        rx = 3 if execution else 14
        label = d.get("label", n)
        boxes.append(f'<g class="{"execution" if execution else "artifact"}" data-node="{esc(n)}">'
                     f'<title>{esc(d.get("title", label))}</title>'
                     f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="{rx}" fill="{fill}" '
                     f'stroke="#6b7280"/><text x="{x + box_w / 2}" y="{y + box_h / 2 + 4}" text-anchor="middle">'
                     f'{esc(label[:24])}</text></g>')
    arrow = ('<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#8a94a6"/></marker></defs>')
    return (f'<div style="overflow-x:auto"><svg class="lineage" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img">{arrow}{"".join(lines)}{"".join(boxes)}</svg></div>')


def changes_html(changes: dict[str, Any]) -> str:
    """Since the last blessed run: {run, metrics: {name: (before, now)}, schema: {added, removed, changed},
    statistics: {split: (rows before, rows now)}, config: {key: (before, now)}}."""
    if not changes:
        return ""
    parts = [f"<p>compared with the last blessed run <b data-check=\"changes/run\">{esc(changes['run'])}</b></p>"]
    if changes.get("metrics"):
        parts.append("<h3>Metrics</h3>" + table(["metric", "last blessed", "this run", "Δ"], [
            [f"<td>{esc(m)}</td>", cell(a), cell(b),
             cell(None if a is None or b is None else b - a, f"changes/metric/{m}")]
            for m, (a, b) in sorted(changes["metrics"].items())]))
    schema = changes.get("schema")
    if schema is not None:
        items = ([f"added: {f}" for f in schema.get("added", [])] + [f"removed: {f}" for f in schema.get("removed", [])]
                 + [f"type changed: {f} {a} → {b}" for f, (a, b) in schema.get("changed", {}).items()])
        parts.append("<h3>Schema</h3>" + ("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"
                                         if items else '<p data-check="changes/schema">no change</p>'))
    if changes.get("statistics"):
        parts.append("<h3>Data</h3>" + table(["split / feature", "last blessed", "this run"], [
            [f"<td>{esc(k)}</td>", cell(a), cell(b, f"changes/stats/{k}")]
            for k, (a, b) in changes["statistics"].items()]))
    if changes.get("config"):
        parts.append("<h3>Config</h3>" + table(["key", "last blessed", "this run"], [
            [f"<td>{esc(k)}</td>", f"<td>{esc(a)}</td>", f"<td>{esc(b)}</td>"]
            for k, (a, b) in sorted(changes["config"].items())], numeric_from=9))
    return "".join(parts)
