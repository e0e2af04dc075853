"""Resolvers for incremental data: which statistics a new span is compared with.

* previous span: the statistics of the highest span below the current one (drift);
* training: the statistics of the data the latest blessed model was trained on, found by
  walking ML Metadata lineage from that model back to the ExampleGen output it came from
  (skew). Both resolve to nothing on a first run, and the comparison is then skipped.
"""

from __future__ import annotations

from typing import Any

from ml_metadata.proto import metadata_store_pb2
from tfx import types
from tfx.components.evaluator import constants as eval_consts
from tfx.dsl.components.common import resolver

STATISTICS, CURRENT, MODEL, BLESSING = "statistics", "current", "model", "model_blessing"
_INPUT = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)
_OUTPUT = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)


def _producer(store: Any, artifact_id: int) -> int | None:
    events = [e for e in store.get_events_by_artifact_ids([artifact_id]) if e.type in _OUTPUT]
    return events[0].execution_id if events else None


def _inputs(store: Any, execution_id: int) -> list[int]:
    return [e.artifact_id for e in store.get_events_by_execution_ids([execution_id]) if e.type in _INPUT]


def from_statistics_gen(store: Any, artifacts: list[types.Artifact]) -> list[types.Artifact]:
    """Only StatisticsGen's statistics of the raw data (not Transform's pre/post-transform ones)."""
    out = []
    for a in artifacts:
        execution = _producer(store, a.id)
        if execution is None:
            continue
        (ex,) = store.get_executions_by_id([execution])
        if store.get_execution_types_by_id([ex.type_id])[0].name.endswith("StatisticsGen"):
            out.append(a)
    return out


def example_span(store: Any, statistics: types.Artifact) -> int:
    """The span of the examples a statistics artifact describes. Read from the Examples artifact
    itself: in TFX 1.21 StatisticsGen's own ``span`` property stays 0 for CSV spans."""
    execution = _producer(store, statistics.id)
    for art in store.get_artifacts_by_id(_inputs(store, execution) if execution is not None else []):
        for props in (art.custom_properties, art.properties):
            if "span" in props:
                return props["span"].int_value
    return statistics.span


def source_examples(store: Any, artifact_id: int, max_depth: int = 12) -> set[int]:
    """Ids of the ingested artifacts (produced by an execution without inputs) upstream of an artifact."""
    found, frontier, seen = set(), [artifact_id], set()
    for _ in range(max_depth):
        nxt = []
        for aid in frontier:
            if aid in seen:
                continue
            seen.add(aid)
            execution = _producer(store, aid)
            if execution is None:
                continue
            parents = _inputs(store, execution)
            if not parents:
                found.add(aid)
            nxt += parents
        frontier = nxt
    return found


class PreviousSpanStatistics(resolver.ResolverStrategy):
    def __init__(self, **config: Any):
        self._config = config

    def resolve_artifacts(self, store: Any, input_dict: dict[str, list[types.Artifact]]
                          ) -> dict[str, list[types.Artifact]]:
        current = input_dict.get(CURRENT, [])
        span = max((example_span(store, a) for a in current), default=None)
        spans = {a.id: example_span(store, a) for a in from_statistics_gen(store, input_dict.get(STATISTICS, []))}
        earlier = [a for a in input_dict.get(STATISTICS, [])
                   if a.id in spans and span is not None and spans[a.id] < span]
        best = max(earlier, key=lambda a: (spans[a.id], a.id), default=None)
        return {STATISTICS: [best] if best else [], CURRENT: list(current)}


class TrainingStatistics(resolver.ResolverStrategy):
    def __init__(self, **config: Any):
        self._config = config

    def resolve_artifacts(self, store: Any, input_dict: dict[str, list[types.Artifact]]
                          ) -> dict[str, list[types.Artifact]]:
        result: dict[str, list[types.Artifact]] = {STATISTICS: [], MODEL: [], BLESSING: []}
        blessed = {b.get_int_custom_property(eval_consts.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY)
                   for b in input_dict.get(BLESSING, [])
                   if b.get_int_custom_property(eval_consts.ARTIFACT_PROPERTY_BLESSED_KEY) == 1}
        models = sorted((m for m in input_dict.get(MODEL, []) if m.id in blessed), key=lambda m: m.id)
        if not models:
            return result
        sources = source_examples(store, models[-1].id)
        matches = [s for s in from_statistics_gen(store, input_dict.get(STATISTICS, []))
                   if (ex := _producer(store, s.id)) is not None and sources & set(_inputs(store, ex))]
        if matches:
            result[STATISTICS] = [max(matches, key=lambda a: a.id)]
        return result
