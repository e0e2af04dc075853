"""The ``features``, ``cleaning`` and ``feature_selection`` sections."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from features import feature_steps
from features.feature_steps import FeatureDef
from features.task import Label
from pipeline.config import model
from pipeline.config.errors import ConfigError, Reader


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


def parse_features(top: Reader, feats: list[model.Feature], label: Label, source: Path) -> tuple[FeatureDef, ...]:
    """Each feature's steps are checked by features.feature_steps.check_steps (names, arguments, order)."""
    features = []
    for i, m in enumerate(feats):
        f = top.child("features").child(i)
        steps = []
        for j, step in enumerate(m.steps):
            if isinstance(step, str):
                steps.append((step, {}))
            elif len(step) == 1:
                (sname, sargs), = step.items()
                if sargs is None:
                    sargs = {}
                if not isinstance(sargs, dict):
                    raise f.fail(f"step '{sname}' takes a mapping of arguments, got {sargs!r}", f"steps[{j}]")
                steps.append((sname, dict(sargs)))
            else:
                raise f.fail("a step is a name or a one-key mapping {name: {args}}", f"steps[{j}]")
        ratio, cross, cyclical = _derivation(f, m)
        problems = [] if cyclical else feature_steps.check_steps(m.type, steps)
        if cyclical and steps:
            problems.append("a cyclical feature has fixed sin/cos outputs: remove its steps")
        if problems:
            raise ConfigError(f"{source}: features[{i}] ({m.name}): {problems[0]}")
        features.append(FeatureDef(m.name, m.type, tuple(steps), ratio, cross, cyclical))
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


def _derivation(f: Reader, m: model.Feature) -> tuple[tuple | None, tuple | None, dict | None]:
    given = [k for k in ("ratio", "cross", "cyclical") if getattr(m, k) is not None]
    if len(given) > 1:
        raise f.fail(f"give at most one of ratio, cross, cyclical (got {', '.join(given)})")
    if not given:
        return None, None, None
    key = given[0]
    if m.cyclical is not None:
        parts = m.cyclical.parts if m.cyclical.parts is not None else list(feature_steps.CYCLICAL_PARTS)
        if not parts:
            raise f.child("cyclical").fail(f"parts are among {', '.join(feature_steps.CYCLICAL_PARTS)}; "
                                           f"got {parts}", "parts")
        return None, None, {"column": m.cyclical.column, "parts": parts}
    cols = getattr(m, key)
    if (key == "ratio" and len(cols) != 2) or len(cols) < 2:
        need = "[numerator, denominator]" if key == "ratio" else "a list of two or more columns"
        raise f.fail(f"must be {need}", key)
    if key == "ratio" and m.type != "float":
        raise f.fail("a ratio is a float feature", "type")
    if key == "cross" and m.type != "string":
        raise f.fail("a cross is a string feature (then hash or vocabulary it)", "type")
    return (tuple(cols), None, None) if key == "ratio" else (None, tuple(cols), None)


def parse_cleaning(top: Reader, c: model.Cleaning | None) -> CleaningConfig:
    if c is None:
        return CleaningConfig()
    rules = []
    for k, r in enumerate(c.remove_outliers):
        if r.lower >= r.upper:
            raise top.child("cleaning").child("remove_outliers").child(k).fail("must be > lower", "upper")
        rules.append(OutlierRule(r.column, r.method, float(r.lower), float(r.upper), float(r.k)))
    mm = c.max_missing_per_row
    frac = c.drop_columns_missing_fraction
    return CleaningConfig(None if frac is None else float(frac), tuple(c.drop_rows_missing),
                          None if mm is None else mm.max, () if mm is None else tuple(mm.columns), tuple(rules))


def parse_selection(top: Reader, s: model.FeatureSelection | None, feature_names: list[str]
                    ) -> SelectionConfig | None:
    if s is None:
        return None
    r = top.child("feature_selection")
    if (s.top_k is None) == (s.threshold is None):
        raise r.fail("give exactly one of top_k or threshold")
    for k in s.always_keep:
        if k not in feature_names:
            raise r.fail(f"'{k}' is not a feature", "always_keep")
    return SelectionConfig(s.method, s.top_k, None if s.threshold is None else float(s.threshold),
                           tuple(s.always_keep), s.sample_size)
