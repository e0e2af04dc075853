"""The machine-readable preprocessing spec: every feature's steps with Transform's fitted values.

One JSON document says, for each raw input, its dtype and how "missing" is written, and for
each feature the exact steps (with constants) that turn raw values into the model's inputs.
Three things read it: the built-in-op graph embedded in TFLite / TF.js models
(``builtin.py``), the NumPy reference implementation (``reference.py``), and app developers
(it is pushed beside every mobile and web model).

A step that built-in ops cannot express (hashing strings, hashed OOV buckets, string joins)
marks its feature ``builtin: false`` with the reason; such a feature then enters the
on-device model already transformed, computed by the app as the spec (and reference) says.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from features.feature_steps import FeatureDef, OutputSpec

SPEC_FORMAT = "tfx-reference-pipeline/preprocessing-spec"
SPEC_VERSION = 1
CROSS_SEPARATOR = "_x_"  # feature_steps.derived_raw
# On-device input dtypes. Numbers travel as float32 with NaN for missing (int columns too:
# exact below 2**24); timestamps as int64 seconds, negative = missing (TF.js reads them as int32).
FLOAT, STRING, TIMESTAMP = "float32", "string", "int64"


def _f(value: Any) -> float:
    return float(np.asarray(value, dtype=np.float64).reshape(-1)[0])


def _floats(value: Any) -> list[float]:
    return [float(v) for v in np.asarray(value, dtype=np.float64).reshape(-1)]


def _vocabulary(tft_output: Any, filename: str) -> list[str]:
    return [t.decode() if isinstance(t, bytes) else str(t) for t in tft_output.vocabulary_by_name(filename)]


def _numeric_token(token: str) -> float | None:
    """The number a vocabulary token of a numeric column stands for, if it is an integer
    (feature_steps.as_tokens prints integers without a fraction; other floats are formatted
    strings that exact float comparison cannot match)."""
    try:
        value = float(token)
    except ValueError:
        return None
    return value if value == round(value) and str(int(value)) == token else None


class _Resolver:
    def __init__(self, feature: FeatureDef, fitted: dict, tft_output: Any):
        self.feature, self.fitted, self.tft_output = feature, fitted, tft_output
        self.not_builtin: list[str] = []

    def value(self, step: int, key: str) -> np.ndarray:
        try:
            return self.fitted[(self.feature.name, step, key)]
        except KeyError:
            raise ValueError(f"feature {self.feature.name}: the transform graph has no fitted value "
                             f"'{key}' for step {step}; was it built by this version of "
                             "features/feature_steps.py?") from None

    def steps(self) -> list[dict[str, Any]]:
        feature, out = self.feature, []
        numeric_input = feature.type != "string" and not feature.cross
        is_raw = True
        for i, (name, args) in enumerate(feature.steps):
            if name == "impute":
                strategy = args.get("strategy", "constant")
                if strategy == "constant":
                    fill: Any = args.get("value", "" if feature.type == "string" else 0.0)
                elif strategy == "most_frequent":
                    top = _vocabulary(self.tft_output, f"most_frequent_{feature.name}")
                    fill = top[0] if top else ("" if feature.type == "string" else "0")
                    fill = fill if feature.type == "string" else float(fill)
                else:
                    fill = _f(self.value(i, "fill"))
                out.append({"op": "impute", "fill": fill if feature.type == "string" else float(fill),
                            "indicator": bool(args.get("indicator", False))})
                is_raw = False
                continue
            if name == "bucketize" and is_raw:
                out.append({"op": "bucketize", "boundaries": _floats(self.value(i, "boundaries")),
                            "missing_bucket": args["num_buckets"]})
                is_raw = False
                continue
            if is_raw:  # feature_steps fills a raw column with 0 / "" before any other step
                out.append({"op": "impute", "fill": "" if feature.type == "string" else 0.0, "indicator": False})
                is_raw = False
            out.append(self._step(i, name, args, numeric_input))
            if name == "vocabulary" and any(s == "tokenize" for s, _ in feature.steps):  # text
                from ondevice import text

                out[-1] = text.vocabulary_step(out[-1])
        if is_raw:
            out.append({"op": "impute", "fill": "" if feature.type == "string" else 0.0, "indicator": False})
        return out

    def _step(self, i: int, name: str, args: dict, numeric_input: bool) -> dict[str, Any]:
        v = self.value
        if name in ("log", "log1p"):
            return {"op": name}
        if name == "clip":
            return {"op": "clip", "lower": _f(v(i, "lower")), "upper": _f(v(i, "upper"))}
        if name in ("box_cox", "yeo_johnson"):
            return {"op": name, "lambda": _f(v(i, "lambda"))}
        if name == "z_score":
            return {"op": "z_score", "mean": _f(v(i, "mean")), "std": _f(v(i, "std"))}
        if name == "min_max":
            return {"op": "min_max", "min": _f(v(i, "min")), "max": _f(v(i, "max")),
                    "range": [float(args.get("min", 0.0)), float(args.get("max", 1.0))]}
        if name == "robust":
            return {"op": "robust", "median": _f(v(i, "median")), "iqr": _f(v(i, "iqr"))}
        if name == "max_abs":
            return {"op": "max_abs", "max_abs": _f(v(i, "max_abs"))}
        if name == "bucketize":
            return {"op": "bucketize", "boundaries": _floats(v(i, "boundaries")), "missing_bucket": None}
        if name == "categorical_identity":
            return {"op": "categorical_identity", "num_buckets": args["num_buckets"]}
        if name == "tokenize":  # text: the app tokenizes (ondevice/text.py)
            from ondevice import text

            return text.tokenize_step(args)
        if name == "hash":
            self.not_builtin.append("hash: FarmHash fingerprints of strings have no built-in op")
            return {"op": "hash", "buckets": args["buckets"], "function": "farmhash_fingerprint64"}
        if name == "vocabulary":
            keys = _vocabulary(self.tft_output, f"vocab_{self.feature.name}")
            oov = args.get("oov_buckets", 1)
            step = {"op": "vocabulary", "keys": keys, "oov_buckets": oov,
                    "encoding": args.get("encoding", "index"), "size": args["top_k"] + oov,
                    "numeric": numeric_input}
            if oov > 1:
                self.not_builtin.append(f"vocabulary: oov_buckets={oov} spreads unseen values by FarmHash "
                                        "(no built-in op); oov_buckets: 1 can run on device")
            if numeric_input:
                numbers = [_numeric_token(k) for k in keys]
                if any(n is None for n in numbers):
                    self.not_builtin.append("vocabulary of a non-integer numeric column: tokens are formatted "
                                            "strings (no built-in op)")
                else:
                    step["keys"] = numbers
            return step
        raise ValueError(f"feature {self.feature.name}: unknown step {name}")


def _source(feature: FeatureDef) -> dict[str, Any]:
    if feature.ratio:
        return {"ratio": list(feature.ratio)}
    if feature.cross:
        return {"cross": list(feature.cross), "separator": CROSS_SEPARATOR}
    if feature.cyclical:
        return {"cyclical": {"column": feature.cyclical["column"], "parts": list(feature.cyclical["parts"])}}
    return {"column": feature.name}


def _output(o: OutputSpec) -> dict[str, Any]:
    return {"name": o.name, "kind": o.kind, "size": o.size, **({"shape": list(o.shape)} if o.shape else {})}


def build_spec(custom_config: dict, tft_output: Any, fitted: dict) -> dict[str, Any]:
    """The spec of ``custom_config``'s active features, with values fitted by ``tft_output``'s Transform."""
    from features.feature_steps import active_features
    from model.signatures import spec_value_type

    raw_spec = tft_output.raw_feature_spec()
    types = {c: spec_value_type(s) for c, s in raw_spec.items()}
    active = active_features(custom_config, raw_spec)
    features, columns, image_inputs = [], {}, []
    for feature in active:
        entry: dict[str, Any] = {"name": feature.name, "type": feature.type, "source": _source(feature),
                                 "outputs": [_output(o) for o in feature.outputs()]}
        if feature.type == "image":  # decoded pixels in, scaling and standardization built in
            from ondevice import image

            parts, image_input = image.spec_parts(feature, _Resolver(feature, fitted, tft_output).value)
            entry.update(parts, builtin=True)
            columns[feature.name] = image.IMAGE
            image_inputs.append(image_input)
            features.append(entry)
            continue
        if feature.cyclical:
            entry["steps"] = []
            columns.setdefault(feature.cyclical["column"], TIMESTAMP)
            reasons: list[str] = []
        else:
            resolver = _Resolver(feature, fitted, tft_output)
            entry["steps"] = resolver.steps()
            reasons = resolver.not_builtin
            if feature.cross:
                reasons.insert(0, "cross: joining strings has no built-in op")
            for c in feature.source_columns:
                columns.setdefault(c, STRING if types[c] == "string" else FLOAT)
        entry["builtin"] = not reasons
        if reasons:
            entry["not_builtin"] = reasons
        features.append(entry)
    for c, dtype in list(columns.items()):
        if dtype == TIMESTAMP and any(c in f.source_columns and not f.cyclical for f in active):
            raise ValueError(f"column {c}: used both as a timestamp (cyclical) and as a number; "
                             "on-device inputs need one dtype per column")
    inputs = list(image_inputs)
    for c, dtype in columns.items():
        if any(i["name"] == c for i in image_inputs):
            continue
        users = [f for f in features if c in _source_columns(f)]
        if all(not f["builtin"] for f in users):
            continue  # only feeds features the app transforms itself
        inputs.append({"name": c, "dtype": dtype,
                       "missing": {FLOAT: "NaN", STRING: "", TIMESTAMP: "negative"}[dtype]})
    for f in features:
        if not f["builtin"]:
            for o in f["outputs"]:
                inputs.append({"name": o["name"], "dtype": "float32" if o["kind"] != "categorical" else "int64",
                               "shape": [o["size"]] if o["kind"] == "vector" else [],
                               "transformed": True, "feature": f["name"]})
    # ``columns``: every raw column a feature reads, with its on-device dtype, including columns
    # only the app-transformed features read (they are not model inputs).
    from features import task

    label = task.label_of(custom_config)
    from ondevice import text

    inputs = text.text_inputs(inputs, features)  # text features: tokens in, not the raw text
    return {"format": SPEC_FORMAT, "version": SPEC_VERSION, "inputs": inputs, "columns": columns,
            "features": features, "label": label.name, "task": label.task, "output": label.prediction_key,
            "classes": task.class_names(label, tft_output), "target": _target(label, fitted)}


def _target(label: Any, fitted: dict) -> dict[str, Any] | None:
    """Regression: how the model's output becomes the target's units (y -> expm1(y), or
    y * std + mean with Transform's fitted moments)."""
    from features import task

    if label.task != task.REGRESSION:
        return None
    out: dict[str, Any] = {"transform": label.transform}
    if label.transform == "z_score":
        std = float(fitted[(label.name, 0, "std")])
        out.update(mean=float(fitted[(label.name, 0, "mean")]), std=std if std > 0 else 1.0)
    return out


def _source_columns(feature: dict[str, Any]) -> list[str]:
    s = feature["source"]
    return s.get("ratio") or s.get("cross") or ([s["cyclical"]["column"]] if "cyclical" in s else [s["column"]])


def not_builtin(spec: dict[str, Any]) -> dict[str, list[str]]:
    """{feature: reasons} for every feature the on-device model cannot compute from raw values."""
    return {f["name"]: f["not_builtin"] for f in spec["features"] if not f["builtin"]}
