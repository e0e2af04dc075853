"""Run notifications: the config's ``notifications.webhook`` gets an HTTP POST with a JSON body

    {"pipeline", "run_id", "event", "reason", "component", "report", "log", "pushed", "metrics", "sent_at"}

- ``event: "failure"`` when a run fails (a component raised; ``component`` names it);
- ``event: "blessed"`` when this run pushed a new model the Evaluator blessed (``pushed``:
  {target: version} of every Pusher that pushed in this run, not cached from an earlier one).

A webhook that is down, slow or answers an error never fails the run: the error is logged and one
warning line goes to the console. ``run_id`` is the TFX pipeline run (the ``pipeline_run`` context in
ML Metadata) of the newest execution; None when nothing reached ML Metadata.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, TextIO

from pipeline.config import PipelineConfig
from pipeline.config.notifications import WebhookConfig

log = logging.getLogger(__name__)
FAILURE, BLESSED = "failure", "blessed"
NEW = "COMPLETE"  # a node state of this run's own execution (CACHED: an earlier run's outputs)


def run_id(cfg: PipelineConfig) -> str | None:
    """The pipeline run of the newest execution of ``cfg``'s pipeline in ML Metadata."""
    from pipeline.summary import open_store

    if cfg.runner.mysql is None and not cfg.metadata_path.exists():
        return None
    store = open_store(cfg)
    pipeline = store.get_context_by_type_and_name("pipeline", cfg.name)
    if pipeline is None:
        return None
    executions = store.get_executions_by_context(pipeline.id)
    if not executions:
        return None
    newest = max(executions, key=lambda e: e.id)
    run_type = store.get_context_type("pipeline_run").id
    runs = [c.name for c in store.get_contexts_by_execution(newest.id) if c.type_id == run_type]
    return runs[0] if runs else None


def report_path(cfg: PipelineConfig) -> str:
    """The run report's page when this run wrote one, else its folder (summary.json, plots)."""
    report = cfg.output_dir / "report"
    return str(report / "index.html" if (report / "index.html").exists() else report)


def payload(cfg: PipelineConfig, event: str, reason: str, *, run: str | None, log_file: Path | None,
            component: str | None = None, pushed: dict[str, str] | None = None,
            metrics: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    return {"pipeline": cfg.name, "run_id": run, "event": event, "reason": reason, "component": component,
            "report": report_path(cfg), "log": str(log_file) if log_file else None, "pushed": pushed or {},
            "metrics": metrics or {}, "sent_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def send(webhook: WebhookConfig, body: dict[str, Any]) -> str | None:
    """POST ``body``; None on a 2xx answer, else what went wrong (never raises)."""
    request = urllib.request.Request(webhook.url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "User-Agent": "tfx-reference-pipeline"})
    try:
        with urllib.request.urlopen(request, timeout=webhook.timeout_seconds) as response:
            response.read()
        return None
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}"
    except Exception as exc:  # URLError, timeout, a reset connection: a webhook must not fail the run
        return f"{type(exc).__name__}: {getattr(exc, 'reason', None) or exc}"


def _notify(cfg: PipelineConfig, event: str, make: Any, console: TextIO) -> dict[str, Any] | None:
    """Build (``make()``) and send the event if the config asks for it; warn on any error."""
    notifications = cfg.notifications
    webhook = notifications.webhook if notifications else None
    if webhook is None or event not in webhook.on:
        return None
    try:
        body = make()
        error = send(webhook, body)
    except Exception as exc:  # reading ML Metadata for the payload failed: still never fail the run
        body, error = None, f"{type(exc).__name__}: {exc}"
    if error is not None:
        log.warning("webhook %s (%s event) failed: %s", webhook.url, event, error)
        print(f"warning: webhook {webhook.url} ({event} event) failed: {error}; the run's result stands",
              file=console)
    return body


def run_failed(cfg: PipelineConfig, component: str | None, cause: BaseException, log_file: Path | None,
               console: TextIO) -> dict[str, Any] | None:
    """The ``failure`` event of a run that raised in ``component``; the body sent (None: not configured)."""
    def make() -> dict[str, Any]:
        where = f"{component} failed" if component else "the pipeline failed before any component ran"
        return payload(cfg, FAILURE, f"{where}: {type(cause).__name__}: {cause}"[:2000], run=run_id(cfg),
                       log_file=log_file, component=component)
    return _notify(cfg, FAILURE, make, console)


def new_pushes(summary: Any) -> dict[str, str]:
    """{target: version} of the Pushers that pushed in this run (a cached Pusher pushed nothing new)."""
    states = {n.node_id: n.state for n in summary.nodes}
    pushed = {}
    if summary.pushed and summary.pushed_path and states.get("Pusher") == NEW:
        pushed["serving"] = Path(summary.pushed_path).name
    for target, path in summary.variants_pushed.items():
        if path and states.get(f"Pusher_{target}") == NEW:
            pushed[target] = Path(path).name
    return pushed


def run_finished(cfg: PipelineConfig, summary: Any, log_file: Path | None, console: TextIO
                 ) -> dict[str, Any] | None:
    """The ``blessed`` event when this run pushed a new blessed model (``summary``: pipeline.summary.RunSummary)."""
    pushed = new_pushes(summary)
    if not (summary.blessed and "serving" in pushed):
        return None

    def make() -> dict[str, Any]:
        reason = (f"the Evaluator blessed the new model and Pusher pushed serving version {pushed['serving']}"
                  + (f" (also: {', '.join(f'{t} {v}' for t, v in sorted(pushed.items()) if t != 'serving')})"
                     if len(pushed) > 1 else ""))
        return payload(cfg, BLESSED, reason, run=run_id(cfg), log_file=log_file, pushed=pushed,
                       metrics=summary.metrics)
    return _notify(cfg, BLESSED, make, console)
