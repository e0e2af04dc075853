"""Scores candidate features against the label on one in-memory sample, then selects.

The label is ``features.task``'s (0/1, class tokens or a numeric target): mutual information
for classification (``mutual_info_classif``) or regression (``mutual_info_regression``).

Pure numpy / scikit-learn on plain columns (name -> one value per row, ``None`` = missing),
so every number in the score table can be recomputed from the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

from features.task import REGRESSION, Label

MUTUAL_INFORMATION, CORRELATION = "mutual_information", "correlation"
METHODS = (MUTUAL_INFORMATION, CORRELATION)
VALUE_TYPES = ("float", "int", "string")
MISSING_TOKEN = "__missing__"  # a missing string value is its own category
MIN_ROWS = 4  # the k-NN MI estimator (k = 3 neighbours) needs more rows than neighbours

Columns = Mapping[str, Sequence[Any]]


@dataclass(frozen=True)
class Candidate:
    name: str
    type: str  # float | int | string

    @property
    def discrete(self) -> bool:
        """Strings and ints are categories for MI (label-encoded); floats are continuous."""
        return self.type != "float"

    @property
    def numeric(self) -> bool:
        return self.type != "string"


@dataclass(frozen=True)
class FeatureScore:
    feature: str
    type: str
    mutual_information: float | None
    correlation: float | None  # |Pearson r| with the label; None for strings
    selected: bool
    rank: int | None  # by the method's score, 1 = best; None when not scored
    reason: str

    def score(self, method: str) -> float | None:
        return self.mutual_information if method == MUTUAL_INFORMATION else self.correlation

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _as_float32(values: Sequence[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float32)


def label_values(columns: Columns, label: Label) -> np.ndarray:
    """The label as Transform computes it (``features.task.label_values``), as numbers: 0/1,
    class codes (multiclass, codes in sorted order of the class tokens) or the target."""
    from features import task

    other = columns[label.greater_than_column] if label.greater_than_column else None
    y = task.label_values(columns[label.column], label, other)
    if label.classification and y.dtype == object:
        return np.unique(y, return_inverse=True)[1].astype(np.int64)
    return y


def present_label_rows(columns: Columns, label: Label) -> np.ndarray:
    """Rows whose label is known: all of them for the threshold rule (missing = negative),
    the others drop rows without a label (as DataCleaner does before Transform)."""
    values = columns[label.column]
    if not label.drops_missing:
        return np.ones(len(values), dtype=bool)
    return np.array([not (v is None or (isinstance(v, float) and np.isnan(v))) for v in values], dtype=bool)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")  # distinct bytes stay distinct tokens
    return str(value)


def encode(values: Sequence[Any], candidate: Candidate) -> tuple[np.ndarray, np.ndarray | None]:
    """(column for MI, numeric column for correlation or None).

    Missing values: numeric -> the sample's median of the present values (0 if none is
    present); string -> the ``__missing__`` token. Strings and ints are label-encoded
    (codes in sorted order of the values) for MI, where they are discrete.
    """
    if not candidate.numeric:
        tokens = np.array([MISSING_TOKEN if v is None else _text(v) for v in values], dtype=object)
        return np.unique(tokens, return_inverse=True)[1].astype(np.float64), None
    x = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    present = x[~np.isnan(x)]
    x = np.where(np.isnan(x), float(np.median(present)) if present.size else 0.0, x)
    if candidate.discrete:
        return np.unique(x, return_inverse=True)[1].astype(np.float64), x
    return x, x


def abs_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """|Pearson r|; a constant column (or label) has no linear association: 0."""
    if np.std(x) == 0 or np.std(y) == 0:
        return 0.0
    return abs(float(np.corrcoef(x, y)[0, 1]))


def score(columns: Columns, candidates: Sequence[Candidate], rule: Label,
          seed: int) -> tuple[np.ndarray, list[float | None], np.ndarray]:
    """(MI per candidate, |r| per candidate (None for strings), label) on the given rows.

    MI comes from one ``mutual_info_classif`` call over all candidates in order: the
    estimator's jitter on continuous columns is drawn for all of them at once from
    ``random_state=seed``, so the result is reproducible from the same rows in the same order.
    """
    keep = present_label_rows(columns, rule)
    if not keep.all():
        columns = {name: [v for v, k in zip(values, keep, strict=True) if k] for name, values in columns.items()}
    y = label_values(columns, rule)
    if len(y) < MIN_ROWS:
        raise ValueError(f"only {len(y)} rows to score on; need at least {MIN_ROWS}")
    encoded = [encode(columns[c.name], c) for c in candidates]
    matrix = np.column_stack([mi_col for mi_col, _ in encoded])
    discrete = np.array([c.discrete for c in candidates], dtype=bool)
    estimate = mutual_info_regression if rule.task == REGRESSION else mutual_info_classif
    mi = estimate(matrix, y, discrete_features=discrete, random_state=seed)
    corr = [None if num is None else abs_correlation(num, y.astype(np.float64)) for _, num in encoded]
    return mi, corr, y


def select(candidates: Sequence[Candidate], mi: Sequence[float], corr: Sequence[float | None], *,
           method: str, top_k: int | None, threshold: float | None,
           always_keep: Sequence[str] = ()) -> list[FeatureScore]:
    """Rank by the method's score (ties by name) and keep the top_k, or those >= threshold.

    ``always_keep`` are kept whatever their score (and do not count towards top_k); a string
    candidate under ``correlation`` has no score and is kept.
    """
    by_name = {c.name: (float(m), None if r is None else float(r))
               for c, m, r in zip(candidates, mi, corr, strict=True)}
    method_score = {name: (m if method == MUTUAL_INFORMATION else r) for name, (m, r) in by_name.items()}
    ranked = sorted((n for n, s in method_score.items() if s is not None), key=lambda n: (-method_score[n], n))
    rank = {name: i + 1 for i, name in enumerate(ranked)}
    table = []
    for c in candidates:
        s = method_score[c.name]
        if s is None:
            selected, why = True, f"not scored: {method} needs a numeric feature; kept"
        elif top_k is not None:
            selected = rank[c.name] <= top_k
            why = f"rank {rank[c.name]} {'<=' if selected else '>'} top_k {top_k}"
        else:
            selected = s >= threshold
            why = f"{method} {s:.4g} {'>=' if selected else '<'} threshold {threshold:g}"
        if c.name in always_keep and not selected:
            selected, why = True, f"always_keep ({why})"
        table.append(FeatureScore(c.name, c.type, by_name[c.name][0], by_name[c.name][1], selected,
                                  rank.get(c.name), why))
    return table
