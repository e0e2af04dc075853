"""Runs and lineage read back from ML Metadata (sqlite or MySQL: any ``mlmd.MetadataStore``).

TFX's orchestrators record three context types: ``pipeline`` (name = the pipeline name),
``pipeline_run`` (name = the run id, e.g. ``2026-11-26T21:02:27.069417``) and ``node`` (name =
``<pipeline>.<node id>``). Every execution is attached to all three. This module turns them into:

    runs(store, pipeline) -> list[RunInfo]        oldest first; one per pipeline_run context
        RunInfo: run_id, started / finished (epoch seconds; finished None while any execution is
        NEW/RUNNING: a run killed with -9 never finishes), seconds, status (COMPLETE / FAILED /
        RUNNING / CANCELED), nodes {node id: state}, metrics {metric: value} (the gating
        Evaluator's overall TFMA metrics), blessed (the gating Evaluator's blessing; None: no
        Evaluator ran), pushed {target: version} (target = the pushed/<target>/ folder).
    run_graph(store, run_id) -> (artifacts, executions, events)   this run's lineage, for drawing
    lineage(store, artifact_id) -> list[Step]     the chain back to the input files, depth first
    pushed_artifact(store, pushed_dir) -> Artifact | None          the PushedModel of pushed/<t>/<v>
    last_blessed_run(store, pipeline, before_run_id=None) -> RunInfo | None
    find_run(store, pipeline, ref) -> RunInfo     a run id, ``latest`` or ``latest-blessed``
    resolve_run(runs, pipeline, ref) -> RunInfo   the same on a list from ``runs``

A cached execution (state CACHED) re-publishes the artifacts of an earlier one; lineage follows
the execution that really produced an artifact (its first OUTPUT event that is not CACHED).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2 as pb

STATES = {v: k for k, v in pb.Execution.State.items()}
EVALUATOR_ID = "Evaluator"  # pipeline_def.EVALUATOR_ID (not imported: that pulls TFX in for a read)
OUTPUT_EVENTS = (pb.Event.OUTPUT, pb.Event.DECLARED_OUTPUT)
INPUT_EVENTS = (pb.Event.INPUT, pb.Event.DECLARED_INPUT)
# Inputs that point at an earlier run (the baseline model, Transform's analyzer cache): shown, not
# followed, or one model's lineage would be every earlier run's.
NOT_FOLLOWED = frozenset({"baseline_model", "analyzer_cache"})
# Properties worth showing per artifact / execution in a lineage step.
ARTIFACT_KEYS = ("span", "version", "input_fingerprint", "split_names", "blessed", "pushed",
                 "pushed_destination", "pushed_version", "infra_blessed")
EXECUTION_KEYS = ("input_base", "input_fingerprint", "span", "version", "input_config", "schema_file")
UNFINISHED = ("NEW", "RUNNING", "UNKNOWN")


@dataclass
class RunInfo:
    run_id: str
    started: float
    finished: float | None
    seconds: float | None
    status: str
    nodes: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    blessed: bool | None = None
    pushed: dict[str, str] = field(default_factory=dict)
    context_id: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Step:
    """One artifact in a lineage chain and the execution that produced it."""

    depth: int
    via: str  # the input key under which the child step's execution read this artifact ("" at the root)
    artifact_id: int
    artifact_type: str
    uri: str
    properties: dict[str, Any] = field(default_factory=dict)
    node: str | None = None  # the producing node id (None: imported from outside the pipeline)
    execution_id: int | None = None
    state: str | None = None
    run_id: str | None = None
    execution_properties: dict[str, Any] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)  # ExampleGen: the input files it read
    # The producer's other outputs (the Evaluator's ModelEvaluation beside its ModelBlessing): id, type, uri.
    siblings: list[dict[str, Any]] = field(default_factory=list)
    repeated: bool = False  # shown above already (reached by another path)
    followed: bool = True  # False: an input into an earlier run, not expanded (NOT_FOLLOWED)


def value(props: Any, key: str) -> Any:
    """A (custom) property's value, or None."""
    if key not in props:
        return None
    v = props[key]
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def _type_names(store: mlmd.MetadataStore) -> dict[int, str]:
    return {t.id: t.name for t in store.get_artifact_types()}


def _pipeline_execution_ids(store: mlmd.MetadataStore, pipeline: str) -> set[int]:
    ctx = store.get_context_by_type_and_name("pipeline", pipeline)
    return {e.id for e in store.get_executions_by_context(ctx.id)} if ctx else set()


def _node_names(store: mlmd.MetadataStore, pipeline: str) -> dict[int, str]:
    """execution id -> node id, from the pipeline's node contexts (``<pipeline>.<node id>``)."""
    out: dict[int, str] = {}
    for ctx in store.get_contexts_by_type("node"):
        if ctx.name.startswith(f"{pipeline}."):
            for execution in store.get_executions_by_context(ctx.id):
                out[execution.id] = ctx.name[len(pipeline) + 1:]
    return out


def run_status(executions: list[pb.Execution]) -> str:
    """The state of a run from its executions' last known states: a failure wins; then a cancel;
    then anything unfinished (a run killed with -9 stays RUNNING for ever: nothing records its end)."""
    states = {STATES[e.last_known_state] for e in executions}
    for status, members in (("FAILED", ("FAILED",)), ("CANCELED", ("CANCELED",)), ("RUNNING", UNFINISHED)):
        if states & set(members):
            return status
    return "COMPLETE"


def runs(store: mlmd.MetadataStore, pipeline: str, metrics: bool = True) -> list[RunInfo]:
    """Every run of ``pipeline`` in the store, oldest first. ``metrics=False`` skips loading TFMA."""
    mine = _pipeline_execution_ids(store, pipeline)
    if not mine:
        return []
    types = _type_names(store)
    known = _node_names(store, pipeline)
    out = []
    for ctx in store.get_contexts_by_type("pipeline_run"):
        executions = [e for e in store.get_executions_by_context(ctx.id) if e.id in mine]
        if not executions:
            continue
        names = {e.id: known.get(e.id, e.type.rsplit(".", 1)[-1]) for e in executions}
        status = run_status(executions)
        started = min(min(e.create_time_since_epoch for e in executions), ctx.create_time_since_epoch) / 1000
        finished = None if status == "RUNNING" else max(e.last_update_time_since_epoch for e in executions) / 1000
        info = RunInfo(ctx.name, started, finished, None if finished is None else round(finished - started, 3),
                       status, context_id=ctx.id)
        for e in sorted(executions, key=lambda e: e.id):
            info.nodes[names[e.id]] = STATES[e.last_known_state]
        _outcomes(store, executions, names, types, info, metrics)
        out.append(info)
    return sorted(out, key=lambda r: (r.started, r.context_id))


def _outcomes(store: mlmd.MetadataStore, executions: list[pb.Execution], names: dict[int, str],
              types: dict[int, str], info: RunInfo, metrics: bool) -> None:
    """Blessing, metrics and pushes of one run, from its Evaluator's and Pushers' outputs."""
    wanted = {e.id: names[e.id] for e in executions
              if names[e.id] == EVALUATOR_ID or names[e.id].startswith("Pusher")}
    if not wanted:
        return
    events = [ev for ev in store.get_events_by_execution_ids(list(wanted)) if ev.type in OUTPUT_EVENTS]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([ev.artifact_id for ev in events])}
    for ev in events:
        artifact, node = artifacts[ev.artifact_id], wanted[ev.execution_id]
        kind = types[artifact.type_id]
        if kind == "ModelBlessing" and node == EVALUATOR_ID:
            info.blessed = value(artifact.custom_properties, "blessed") == 1
        elif kind == "ModelEvaluation" and node == EVALUATOR_ID and metrics:
            from pipeline.summary import overall_metrics

            info.metrics = overall_metrics(artifact.uri)
        elif kind == "PushedModel" and value(artifact.custom_properties, "pushed") == 1:
            destination = Path(value(artifact.custom_properties, "pushed_destination") or "")
            info.pushed[destination.parent.name] = (value(artifact.custom_properties, "pushed_version")
                                                    or destination.name)


def find_run(store: mlmd.MetadataStore, pipeline: str, ref: str, metrics: bool = True) -> RunInfo:
    """A run by id, ``latest`` or ``latest-blessed``; LookupError naming the known ids otherwise."""
    return resolve_run(runs(store, pipeline, metrics=metrics), pipeline, ref)


def resolve_run(all_runs: list[RunInfo], pipeline: str, ref: str) -> RunInfo:
    """``find_run`` on a list from ``runs`` (several references, one read of the store)."""
    if not all_runs:
        raise LookupError(f"no runs of pipeline '{pipeline}' in the metadata store")
    if ref == "latest":
        return all_runs[-1]
    if ref == "latest-blessed":
        blessed = [r for r in all_runs if r.blessed]
        if not blessed:
            raise LookupError(f"no blessed run of pipeline '{pipeline}'")
        return blessed[-1]
    for r in all_runs:
        if r.run_id == ref:
            return r
    raise LookupError(f"no run '{ref}' of pipeline '{pipeline}'; runs: {', '.join(r.run_id for r in all_runs)}")


def last_blessed_run(store: mlmd.MetadataStore, pipeline: str, before_run_id: str | None = None,
                     metrics: bool = True) -> RunInfo | None:
    """The newest blessed run started before ``before_run_id`` (any run if None)."""
    all_runs = runs(store, pipeline, metrics=metrics)
    if before_run_id is not None:
        ids = [r.run_id for r in all_runs]
        all_runs = all_runs[: ids.index(before_run_id)] if before_run_id in ids else []
    blessed = [r for r in all_runs if r.blessed]
    return blessed[-1] if blessed else None


def run_graph(store: mlmd.MetadataStore, run_id: str
              ) -> tuple[list[pb.Artifact], list[pb.Execution], list[pb.Event]]:
    """The artifacts, executions and events of one run (inputs from earlier runs included)."""
    ctx = store.get_context_by_type_and_name("pipeline_run", run_id)
    if ctx is None:
        raise LookupError(f"no pipeline run '{run_id}' in the metadata store")
    executions = store.get_executions_by_context(ctx.id)
    events = store.get_events_by_execution_ids([e.id for e in executions]) if executions else []
    ids = sorted({ev.artifact_id for ev in events})
    return (store.get_artifacts_by_id(ids) if ids else []), executions, events


def pushed_artifact(store: mlmd.MetadataStore, pushed_dir: str | Path) -> pb.Artifact | None:
    """The PushedModel artifact whose destination is ``pushed_dir`` (pushed/<target>/<version>)."""
    target = Path(pushed_dir).resolve()
    found = [a for a in store.get_artifacts_by_type("PushedModel")
             if value(a.custom_properties, "pushed") == 1
             and Path(value(a.custom_properties, "pushed_destination") or "/nonexistent").resolve() == target]
    return max(found, key=lambda a: a.id) if found else None


def _producer(store: mlmd.MetadataStore, artifact_id: int) -> pb.Execution | None:
    """The execution that wrote the artifact: the first non-cached one with an OUTPUT event to it."""
    ids = sorted(ev.execution_id for ev in store.get_events_by_artifact_ids([artifact_id])
                 if ev.type in OUTPUT_EVENTS)
    executions = store.get_executions_by_id(ids) if ids else []
    real = [e for e in executions if STATES[e.last_known_state] != "CACHED"]
    return (real or executions or [None])[0]


def _run_of(store: mlmd.MetadataStore, execution_id: int) -> str | None:
    for ctx in store.get_contexts_by_execution(execution_id):
        if ctx.type == "pipeline_run":
            return ctx.name
    return None


def input_files(input_base: str, input_config: str | None) -> list[dict[str, Any]]:
    """The files ExampleGen's input patterns match now, with their sizes."""
    base = Path(input_base)
    patterns = [s.get("pattern", "*") for s in json.loads(input_config or "{}").get("splits", [])] or ["*"]
    files = sorted({p for pattern in patterns for p in base.glob(pattern) if p.is_file()})
    return [{"path": str(p), "bytes": p.stat().st_size} for p in files]


def fingerprint_bytes(fingerprint: str | None) -> int | None:
    """total_bytes of an ExampleGen input fingerprint (``split:..,num_files:1,total_bytes:N,...``)."""
    for part in (fingerprint or "").split(","):
        if part.startswith("total_bytes:"):
            return int(part.split(":", 1)[1])
    return None


def lineage(store: mlmd.MetadataStore, artifact_id: int) -> list[Step]:
    """The artifact, its producer, that execution's inputs, and so on back to the input files:
    depth first, each artifact once (later sightings are ``repeated`` leaves)."""
    types = _type_names(store)
    nodes: dict[int, str] = {}
    seen: set[int] = set()
    steps: list[Step] = []

    def node_of(execution: pb.Execution) -> str:
        if execution.id not in nodes:
            ctxs = store.get_contexts_by_execution(execution.id)
            nodes[execution.id] = next((c.name.split(".", 1)[-1] for c in ctxs if c.type == "node"),
                                       execution.type.rsplit(".", 1)[-1])
        return nodes[execution.id]

    def visit(aid: int, depth: int, via: str, follow: bool) -> None:
        (artifact,) = store.get_artifacts_by_id([aid])
        props = {k: v for k in ARTIFACT_KEYS if (v := value(artifact.custom_properties, k)) is not None}
        props.update({k: v for k in ARTIFACT_KEYS if (v := value(artifact.properties, k)) is not None})
        step = Step(depth, via, aid, types[artifact.type_id], artifact.uri, props,
                    repeated=aid in seen, followed=follow)
        steps.append(step)
        if step.repeated or not follow:
            return
        seen.add(aid)
        execution = _producer(store, aid)
        if execution is None:
            return
        step.node, step.execution_id = node_of(execution), execution.id
        step.state, step.run_id = STATES[execution.last_known_state], _run_of(store, execution.id)
        step.execution_properties = {k: v for k in EXECUTION_KEYS
                                     if (v := value(execution.custom_properties, k)) is not None}
        if "input_base" in step.execution_properties:
            step.files = input_files(step.execution_properties["input_base"],
                                     step.execution_properties.get("input_config"))
        events = store.get_events_by_execution_ids([execution.id])
        others = [ev.artifact_id for ev in events if ev.type in OUTPUT_EVENTS and ev.artifact_id != aid]
        step.siblings = [{"artifact_id": a.id, "artifact_type": types[a.type_id], "uri": a.uri}
                         for a in (store.get_artifacts_by_id(others) if others else [])]
        inputs = sorted((ev.path.steps[0].key if ev.path.steps else "", ev.artifact_id)
                        for ev in events if ev.type in INPUT_EVENTS)
        for key, child in inputs:
            visit(child, depth + 1, key, key not in NOT_FOLLOWED)

    visit(artifact_id, 0, "", True)
    return steps


def format_lineage(steps: list[Step]) -> str:
    """The chain as an indented text tree."""
    lines = []
    for s in steps:
        pad = "  " * s.depth
        via = f"{s.via}: " if s.via else ""
        head = f"{pad}{via}{s.artifact_type} #{s.artifact_id}"
        if s.repeated:
            lines.append(f"{head} (shown above)")
            continue
        if not s.followed:
            lines.append(f"{head} {s.uri} (an earlier run's; not followed)")
            continue
        by = f" <- {s.node} (execution {s.execution_id}, {s.state}, run {s.run_id})" if s.node else ""
        lines.append(f"{head}{by}")
        lines.append(f"{pad}    uri: {s.uri}")
        for k, v in s.properties.items():
            lines.append(f"{pad}    {k}: {v}")
        for sib in s.siblings:
            lines.append(f"{pad}    also wrote: {sib['artifact_type']} #{sib['artifact_id']} {sib['uri']}")
        for k, v in s.execution_properties.items():
            if k != "input_config" and s.properties.get(k) != v:
                lines.append(f"{pad}    {k}: {v}")
        if s.files:
            recorded = fingerprint_bytes(s.execution_properties.get("input_fingerprint"))
            now = sum(f["bytes"] for f in s.files)
            for f in s.files:
                lines.append(f"{pad}    file: {f['path']} ({f['bytes']:,} bytes)")
            if recorded is not None:
                verdict = "unchanged" if recorded == now else f"CHANGED since (now {now:,} bytes)"
                lines.append(f"{pad}    files vs fingerprint: {recorded:,} bytes recorded, {verdict}")
    return "\n".join(lines)
