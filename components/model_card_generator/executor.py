"""ModelCardGenerator's work: facts about a pushed model, read from the artifacts its component was
given, rendered as model_card.md and a self-contained model_card.html.

Everything comes from the component's input channels (no MLMD reads behind TFX's back):

- ``pushed_model`` (PushedModel): whether it was pushed and where (``pushed_destination``); its archive
  copy holds the converters' ``metadata.json`` (TFLite / TF.js parity and sizes);
- ``model_blessing`` and ``evaluation`` (the Evaluator that judged the model): TFMA metrics overall and per
  slice, the thresholds of its eval config and whether they passed;
- ``statistics`` (StatisticsGen), ``examples`` (ExampleGen: ``input_fingerprint``): rows per split, the
  time range of the timestamp column, the input files' fingerprint;
- ``feature_scores`` (FeatureSelector), ``cleaning_report`` (DataCleaner): dropped features and columns.

A card is written only when the Pusher pushed: into the pushed version folder
``<base>/<version>/`` (each file written aside, fsynced and renamed, so a reader sees the whole card
or none), and into the ModelCard artifact's own folder.
"""

from __future__ import annotations

import html
import json
import os
import platform
import uuid
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from features import task as task_lib

CARD_MD, CARD_HTML = "model_card.md", "model_card.html"
STACK = ("tfx", "tensorflow", "tensorflow-transform", "tensorflow-model-analysis", "tensorflow-data-validation")
WEAKEST = 3  # slices listed under known limits


# ------------------------------------------------------------------------------------ reading --
def stack_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in STACK:
        try:
            versions[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def read_statistics(uri: str, timestamp_column: str = "") -> dict[str, dict[str, Any]]:
    """{split: {rows, [time_range: [min, max]]}} from StatisticsGen's ``Split-*/FeatureStats.pb``."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    out: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(uri).glob("Split-*/FeatureStats.pb")):
        stats = statistics_pb2.DatasetFeatureStatisticsList()
        stats.ParseFromString(path.read_bytes())
        for dataset in stats.datasets:
            split = {"rows": int(dataset.num_examples)}
            for feature in dataset.features:
                name = feature.path.step[-1] if feature.path.step else feature.name
                if timestamp_column and name == timestamp_column and feature.HasField("num_stats"):
                    split["time_range"] = [feature.num_stats.min, feature.num_stats.max]
            out[path.parent.name.removeprefix("Split-")] = split
    return out


def _slice_name(slice_key: tuple) -> str:
    return ", ".join(f"{k}={v.decode() if isinstance(v, bytes) else v}" for k, v in slice_key) or "overall"


def _proto_slice_name(slice_key: Any) -> str:
    return _slice_name(tuple((c.column, getattr(c, c.WhichOneof("kind"))) for c in slice_key.single_slice_keys))


def _thresholds(eval_config: Any) -> list[dict[str, Any]]:
    """The blessing thresholds of a TFMA EvalConfig, as {metric, kind, bound}."""
    out = []
    for spec in eval_config.metrics_specs:
        for metric in spec.metrics:
            name = json.loads("{" + metric.config + "}").get("name", metric.class_name) if metric.config else \
                metric.class_name
            for per_slice in metric.per_slice_thresholds:
                t = per_slice.threshold
                if t.HasField("value_threshold"):
                    v = t.value_threshold
                    if v.HasField("lower_bound"):
                        out.append({"metric": name, "kind": "value", "op": ">=", "bound": v.lower_bound.value})
                    if v.HasField("upper_bound"):
                        out.append({"metric": name, "kind": "value", "op": "<=", "bound": v.upper_bound.value})
                if t.HasField("change_threshold"):
                    c = t.change_threshold
                    higher = c.direction == 1  # tfma.MetricDirection.HIGHER_IS_BETTER
                    out.append({"metric": name, "kind": "change vs baseline", "op": ">=" if higher else "<=",
                                "bound": c.absolute.value})
    return out


def read_evaluation(uri: str, task: str) -> dict[str, Any]:
    """TFMA's result: overall and per-slice metrics, thresholds, validation outcome, weakest slices."""
    import tensorflow_model_analysis as tfma

    result = tfma.load_eval_result(uri)
    overall, slices = {}, []
    for slice_key, metrics in result.slicing_metrics:
        flat = task_lib.flat_metrics(metrics)
        if slice_key == ():
            overall = flat
        else:
            slices.append({"slice": _slice_name(slice_key), "metrics": flat})
    slices.sort(key=lambda s: s["slice"])
    validation = tfma.load_validation_result(uri)
    failures = [f"{_proto_slice_name(v.slice_key)}: {f.metric_key.name} = "
                f"{f.metric_value.double_value.value:.4g} ({f.message})"
                for v in validation.metric_validations_per_slice for f in v.failures]
    thresholds = _thresholds(result.config)
    for t in thresholds:  # TFMA drops a change threshold when there is no baseline model (first push)
        t["applied"] = t["kind"] == "value" or f"{t['metric']}_diff" in overall
    primary = task_lib.PRIMARY[task]
    higher = task_lib.metric_direction(task, primary)
    ranked = sorted((s for s in slices if primary in s["metrics"]), key=lambda s: s["metrics"][primary],
                    reverse=not higher)
    return {"overall": overall, "slices": slices, "thresholds": thresholds,
            "validation_ok": bool(validation.validation_ok), "failures": failures, "primary": primary,
            "weakest": [{"slice": s["slice"], primary: s["metrics"][primary]} for s in ranked[:WEAKEST]]}


def read_parity(pushed_uri: str) -> dict[str, Any] | None:
    """On-device differences from the converters' metadata.json in the pushed model (None: a SavedModel)."""
    path = Path(pushed_uri) / "metadata.json"
    if not path.exists():
        return None
    meta = json.loads(path.read_text())
    keys = ("bytes", "max_abs_diff", "mean_abs_diff", "agreement", "blessed")
    if "variants" in meta:  # TFLite: one row per quantization variant
        return {"runtime": "TFLite (ai-edge-litert)",
                "rows": {name: {k: r[k] for k in keys if k in r} for name, r in meta["variants"].items()}}
    if "validation" in meta:  # TF.js: one graph model
        v = meta["validation"]
        return {"runtime": v.get("runtime", "TF.js"), "rows": {"tfjs": {k: v[k] for k in keys if k in v}}}
    return None


def dropped_features(feature_scores_uri: str | None, cleaning_uri: str | None) -> dict[str, list[str]]:
    out = {}
    if feature_scores_uri and (Path(feature_scores_uri) / "scores.json").exists():
        scores = json.loads((Path(feature_scores_uri) / "scores.json").read_text())
        out["not selected by feature selection"] = [s["feature"] for s in scores if not s["selected"]]
    if cleaning_uri and (Path(cleaning_uri) / "report.json").exists():
        out["dropped by cleaning"] = json.loads((Path(cleaning_uri) / "report.json").read_text())["dropped_columns"]
    return out


# ---------------------------------------------------------------------------------- rendering --
def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _time(v: float) -> str:
    """A timestamp column's bound: epoch seconds as UTC time (the taxi data's), anything else as is."""
    if 1e8 < v < 1e10:
        return datetime.fromtimestamp(v, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    return _fmt(v)


def _sections(card: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]] | None]]:
    """(title, paragraphs, table rows with the header first) for both renderings."""
    sections: list[tuple[str, list[str], list[list[str]] | None]] = []
    label = card["label"]
    sections.append(("What it predicts", [
        card["description"] or "(no description in the config)",
        f"Label `{label}`, task {card['task']}; model '{card['model_name']}', pushed to target "
        f"'{card['target']}' as version {card['version']} ({card['pushed_destination']})."], None))
    data = card["data"]
    rows = [["split", "rows", "time range"]] + [
        [s, _fmt(d["rows"]), " .. ".join(_time(t) for t in d["time_range"]) if "time_range" in d else "-"]
        for s, d in data["splits"].items()]
    sections.append(("Data", [f"Input files: {data['fingerprint'] or 'unknown'}"], rows if data["splits"] else None))
    ev = card["evaluation"]
    if ev:
        names = sorted(ev["overall"])
        sections.append(("Metrics overall", [], [["metric", "value"]] + [[n, _fmt(ev["overall"][n])] for n in names]))
        if ev["slices"]:
            shown = [n for n in names if not n.endswith("_diff")]
            sections.append(("Metrics per slice", [], [["slice", *shown]] + [
                [s["slice"], *(_fmt(s["metrics"].get(n, "-")) for n in shown)] for s in ev["slices"]]))
        passed = "passed" if card["blessed"] else "did not pass"
        sections.append(("Thresholds", [
            f"Blessed: {card['blessed']}; TFMA validation {'OK' if ev['validation_ok'] else 'failed'}; "
            f"the model {passed} these thresholds."] + [f"Failure: {f}" for f in ev["failures"]],
            [["metric", "kind", "bound", "applied"]] + [
                [t["metric"], t["kind"], f"{t['op']} {_fmt(t['bound'])}",
                 "yes" if t["applied"] else "no (no baseline model yet)"] for t in ev["thresholds"]]
            if ev["thresholds"] else None))
    limits = []
    if ev and ev["weakest"]:
        limits.append(f"Weakest slices by {ev['primary']}: " + "; ".join(
            f"{w['slice']} ({_fmt(w[ev['primary']])})" for w in ev["weakest"]))
    for why, names in card["dropped"].items():
        limits.append(f"Features {why}: {', '.join(names) or 'none'}")
    parity = card["parity"]
    sections.append(("Known limits", limits or ["None recorded."],
                     [["variant", "bytes", "max |diff|", "mean |diff|", "agreement", "blessed"]] + [
                         [name, *(_fmt(r.get(k, "-")) for k in ("bytes", "max_abs_diff", "mean_abs_diff",
                                                               "agreement", "blessed"))]
                         for name, r in parity["rows"].items()] if parity else None))
    if parity:
        sections[-1][1].append(f"On-device differences vs the SavedModel ({parity['runtime']}):")
    sections.append(("Stack", [], [["package", "version"]] + [[k, v] for k, v in card["stack"].items()]))
    return sections


def render_markdown(card: dict[str, Any]) -> str:
    lines = [f"# Model card: {card['pipeline']} / {card['target']} version {card['version']}", ""]
    for title, paragraphs, table in _sections(card):
        lines += [f"## {title}", ""]
        lines += [p + "\n" for p in paragraphs]
        if table:
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in table[0]) + " |")
            lines.append("|" + "---|" * len(table[0]))
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in table[1:]]
            lines.append("")
    return "\n".join(lines)


STYLE = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;color:#222}"
         "table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.2rem .5rem;"
         "text-align:left}th{background:#f3f3f3}code{background:#f3f3f3}")


def render_html(card: dict[str, Any]) -> str:
    """One file, inline CSS, no scripts or links: opens from file:// in an air-gapped network."""
    e = html.escape
    title = f"Model card: {card['pipeline']} / {card['target']} version {card['version']}"
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{e(title)}</title>",
             f"<style>{STYLE}</style></head><body>", f"<h1>{e(title)}</h1>"]
    for name, paragraphs, table in _sections(card):
        parts.append(f"<h2>{e(name)}</h2>")
        parts += [f"<p>{e(p)}</p>" for p in paragraphs]
        if table:
            parts.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in table[0]) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in table[1:]]
            parts.append("</table>")
    parts.append(f'<script type="application/json" id="card">{e(json.dumps(card, sort_keys=True))}</script>')
    parts.append("</body></html>")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------ writing --
def write_aside(folder: Path, name: str, text: str) -> Path:
    """``folder/name`` appears whole or not at all: written to a hidden temporary name, fsynced, renamed."""
    target = folder / name
    staging = folder / f".{name}.tmp-{uuid.uuid4().hex}"
    with staging.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(staging, target)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return target


def gather(pushed_model: Any, params: dict[str, str], model_blessing: Any = None, evaluation: Any = None,
           statistics: Any = None, examples: Any = None, feature_scores: Any = None,
           cleaning_report: Any = None) -> dict[str, Any]:
    """The card's facts (JSON-able) from the component's input artifacts."""
    destination = pushed_model.get_string_custom_property("pushed_destination")
    blessed = model_blessing.get_int_custom_property("blessed") == 1 if model_blessing is not None else None
    return {
        "pipeline": params["pipeline"], "description": params["description"], "label": params["label"],
        "task": params["task"], "target": params["target"], "model_name": params["model_name"],
        "version": pushed_model.get_string_custom_property("pushed_version"), "pushed_destination": destination,
        "blessed": blessed,
        "data": {"splits": read_statistics(statistics.uri, params.get("timestamp_column", ""))
                 if statistics is not None else {},
                 "fingerprint": examples.get_string_custom_property("input_fingerprint")
                 if examples is not None else ""},
        "evaluation": read_evaluation(evaluation.uri, params["task"]) if evaluation is not None else None,
        "parity": read_parity(pushed_model.uri),
        "dropped": dropped_features(feature_scores.uri if feature_scores is not None else None,
                                    cleaning_report.uri if cleaning_report is not None else None),
        "stack": stack_versions(),
    }


def run(pushed_model: Any, model_card: Any, params: dict[str, str], **inputs: Any) -> list[Path]:
    """Write the card of a pushed model beside it and into ``model_card``'s folder; [] when nothing was
    pushed (a card describes a model someone can use)."""
    if pushed_model.get_int_custom_property("pushed") != 1:
        model_card.set_int_custom_property("written", 0)
        return []
    card = gather(pushed_model, params, **inputs)
    texts = {CARD_MD: render_markdown(card), CARD_HTML: render_html(card)}
    out = Path(model_card.uri)
    out.mkdir(parents=True, exist_ok=True)
    (out / "card.json").write_text(json.dumps(card, indent=1, sort_keys=True))
    written = [write_aside(out, name, text) for name, text in texts.items()]
    destination = card["pushed_destination"]
    if destination and "://" not in destination:  # gs:// etc.: the artifact copy only (no atomic rename)
        written += [write_aside(Path(destination), name, text) for name, text in texts.items()]
    model_card.set_int_custom_property("written", 1)
    model_card.set_string_custom_property("pushed_destination", destination)
    return written
