"""The ``features``, ``cleaning`` and ``feature_selection`` sections."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from features import feature_steps
from features.feature_steps import FeatureDef
from features.task import Label
from pipeline.config.errors import ConfigError, Reader, positive


@dataclass(frozen=True)
class OutlierRule:
    column: str
    method: str  # quantile | iqr | z_score
    lower: float = 0.01
    upper: float = 0.99
    k: float = 1.5


@dataclass(frozen=True)
class CleaningConfig:
    """Row and column deletion, run by the DataCleaner component (fitted on train)."""

    drop_columns_missing_fraction: float | None = None
    drop_rows_missing: tuple[str, ...] = ()
    max_missing_per_row: int | None = None
    max_missing_columns: tuple[str, ...] = ()
    remove_outliers: tuple[OutlierRule, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.drop_columns_missing_fraction is not None or self.drop_rows_missing
                    or self.max_missing_per_row is not None or self.remove_outliers)


@dataclass(frozen=True)
class SelectionConfig:
    method: str = "mutual_information"  # or correlation
    top_k: int | None = None
    threshold: float | None = None
    always_keep: tuple[str, ...] = ()
    sample_size: int = 50000


def parse_features(top: Reader, label: Label, source: Path) -> tuple[FeatureDef, ...]:
    """Each feature's steps are checked by features.feature_steps.check_steps (names, arguments, order)."""
    feats_r = top.child("features")
    features = []
    for i in range(len(feats_r.data)):
        f = feats_r.child(i)
        fname = f.get("name", (str,))
        ftype = f.get("type", (str,), check=lambda v: None if v in feature_steps.VALUE_TYPES
                      else f"must be one of {', '.join(feature_steps.VALUE_TYPES)}")
        steps_raw = f.get("steps", (list,), [])
        steps = []
        for j, step in enumerate(steps_raw):
            if isinstance(step, str):
                steps.append((step, {}))
            elif isinstance(step, dict) and len(step) == 1:
                (sname, sargs), = step.items()
                if sargs is None:
                    sargs = {}
                if not isinstance(sargs, dict):
                    raise f.fail(f"step '{sname}' takes a mapping of arguments, got {sargs!r}", f"steps[{j}]")
                steps.append((sname, dict(sargs)))
            else:
                raise f.fail("a step is a name or a one-key mapping {name: {args}}", f"steps[{j}]")
        ratio, cross, cyclical = _derivation(f, ftype)
        problems = [] if cyclical else feature_steps.check_steps(ftype, steps)
        if cyclical and steps:
            problems.append("a cyclical feature has fixed sin/cos outputs: remove its steps")
        if problems:
            raise ConfigError(f"{source}: features[{i}] ({fname}): {problems[0]}")
        features.append(FeatureDef(fname, ftype, tuple(steps), ratio, cross, cyclical))
    names = [f.name for f in features]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise top.fail(f"feature '{dupes[0]}' is listed twice", "features")
    if label.name in names:
        raise top.child("label").fail(f"label name '{label.name}' collides with a feature name", "name")
    for f in features:  # the threshold rule's second column (fare in tips > 0.2 * fare) may be one
        if label.column in f.source_columns:
                raise top.child("label").fail(f"'{label.column}' is also a source of feature '{f.name}': the model "
                                          "would be given the answer; remove that feature", "column")
    return tuple(features)


def _derivation(f: Reader, ftype: str) -> tuple[tuple | None, tuple | None, dict | None]:
    given = [k for k in ("ratio", "cross", "cyclical") if k in f.data]
    if len(given) > 1:
        raise f.fail(f"give at most one of ratio, cross, cyclical (got {', '.join(given)})")
    if not given:
        return None, None, None
    key = given[0]
    if key == "cyclical":
        cyc = f.child("cyclical")
        parts = cyc.get("parts", (list,), list(feature_steps.CYCLICAL_PARTS))
        bad = [p for p in parts if p not in feature_steps.CYCLICAL_PARTS]
        if not parts or bad:
            raise cyc.fail(f"parts are among {', '.join(feature_steps.CYCLICAL_PARTS)}; got {parts}", "parts")
        return None, None, {"column": cyc.get("column", (str,)), "parts": parts}
    cols = f.get(key, (list,))
    if not all(isinstance(c, str) for c in cols) or (key == "ratio" and len(cols) != 2) or len(cols) < 2:
        need = "[numerator, denominator]" if key == "ratio" else "a list of two or more columns"
        raise f.fail(f"must be {need}", key)
    if key == "ratio" and ftype != "float":
        raise f.fail("a ratio is a float feature", "type")
    if key == "cross" and ftype != "string":
        raise f.fail("a cross is a string feature (then hash or vocabulary it)", "type")
    return (tuple(cols), None, None) if key == "ratio" else (None, tuple(cols), None)


def parse_cleaning(top: Reader) -> CleaningConfig:
    c = top.child("cleaning")
    frac = c.get("drop_columns_missing_fraction", (int, float), None,
                 lambda v: None if 0 < v <= 1 else "must be in (0, 1]")
    rows = c.get("drop_rows_missing", (list,), [])
    max_missing, max_cols = None, ()
    if "max_missing_per_row" in c.data:
        mm = c.child("max_missing_per_row")
        max_missing = mm.get("max", (int,), check=lambda v: None if v >= 0 else "must be >= 0")
        max_cols = tuple(mm.get("columns", (list,)))
    rules = []
    outliers = c.get("remove_outliers", (list,), [])
    for k in range(len(outliers)):
        r = c.child("remove_outliers").child(k)
        method = r.get("method", (str,), check=lambda v: None if v in feature_steps.CLIP_METHODS
                       else f"must be one of {', '.join(feature_steps.CLIP_METHODS)}")
        lower = float(r.get("lower", (int, float), 0.01, feature_steps._fraction))
        upper = float(r.get("upper", (int, float), 0.99, feature_steps._fraction))
        if lower >= upper:
            raise r.fail("must be > lower", "upper")
        rules.append(OutlierRule(r.get("column", (str,)), method, lower, upper,
                                 float(r.get("k", (int, float), 1.5, positive))))
    return CleaningConfig(None if frac is None else float(frac), tuple(rows), max_missing, max_cols, tuple(rules))


def parse_selection(top: Reader, feature_names: list[str]) -> SelectionConfig:
    s = top.child("feature_selection")
    method = s.get("method", (str,), "mutual_information",
                   lambda v: None if v in ("mutual_information", "correlation")
                   else "must be mutual_information or correlation")
    top_k = s.get("top_k", (int,), None, positive)
    threshold = s.get("threshold", (int, float), None)
    if (top_k is None) == (threshold is None):
        raise s.fail("give exactly one of top_k or threshold")
    keep = s.get("always_keep", (list,), [])
    for k in keep:
        if k not in feature_names:
            raise s.fail(f"'{k}' is not a feature", "always_keep")
    return SelectionConfig(method, top_k, None if threshold is None else float(threshold), tuple(keep),
                           s.get("sample_size", (int,), 50000, positive))
