"""Webhook notifications (pipeline/notify.py) against a real local HTTP receiver (http.server in a
thread): the payload of a failure and of a blessed push, the config checks, and that a webhook that
is down, slow or answers an error never fails a run. The blessed event of a real passing run is
checked in tests/test_model_card.py (it shares that module's pipeline run)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path

import pytest

from pipeline import notify
from pipeline.config import ConfigError, load_config
from pipeline.summary import NodeRun, RunSummary
from tests.conftest import derived_config, sample_rows, write_csv
from tests.serving_fixtures import LIGHT_FEATURES, TINY_TRAINING


class Receiver:
    """A real HTTP server on 127.0.0.1 recording each POST (path, headers, JSON body); it answers
    ``status`` after ``delay`` seconds."""

    def __init__(self, status: int = 200, delay: float = 0.0):
        self.posts: list[dict] = []
        self.status, self.delay = status, delay
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append({"path": self.path, "content_type": self.headers["Content-Type"],
                                       "body": json.loads(body)})
                time.sleep(receiver.delay)
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/pipeline"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _config(tmp_path: Path, webhook: dict | None, **overrides) -> Path:
    header, rows = sample_rows(200)
    data = write_csv(tmp_path / "data" / "data.csv", header, rows).parent
    notifications = {"notifications": {"webhook": webhook}} if webhook is not None else {}
    return derived_config(tmp_path, data, name="notify", training=TINY_TRAINING, features=LIGHT_FEATURES,
                          cleaning=None, feature_selection=None, **notifications, **overrides)


def _summary(pushed_state: str = "COMPLETE", blessed: bool = True) -> RunSummary:
    return RunSummary("notify", nodes=[NodeRun("Evaluator", "COMPLETE", 3.0, 7),
                                       NodeRun("Pusher", pushed_state, 1.0, 8),
                                       NodeRun("Pusher_mobile", "COMPLETE", 1.0, 9)],
                      metrics={"eval": {"auc": 0.81, "binary_accuracy": 0.74}}, blessed=blessed, pushed=True,
                      pushed_path="/x/pushed/serving/1795000000",
                      variants_pushed={"mobile": "/x/pushed/mobile/1795000001", "web": None})


# ---------------------------------------------------------------------------------- config --
def test_config_section_parses_and_rejects_bad_values(tmp_path):
    # Checks: the section reaches PipelineConfig with its defaults, and a URL without http(s) or
    # an unknown event is a ConfigError naming the key (a typo must not silently disable alerts).
    cfg = load_config(_config(tmp_path, {"url": "https://hooks.example.com/x"}), check_data=False)
    assert cfg.notifications.webhook.url == "https://hooks.example.com/x"
    assert cfg.notifications.webhook.on == ("failure", "blessed") and cfg.notifications.webhook.timeout_seconds == 10
    assert load_config(_config(tmp_path, None), check_data=False).notifications is None
    with pytest.raises(ConfigError, match=r"notifications\.webhook\.url: must be an http:// or https:// URL"):
        load_config(_config(tmp_path, {"url": "hooks.example.com/x"}), check_data=False)
    with pytest.raises(ConfigError, match=r"notifications\.webhook\.on\[0\]: must be one of failure, blessed"):
        load_config(_config(tmp_path, {"url": "http://h/x", "on": ["fail"]}), check_data=False)
    with pytest.raises(ConfigError, match=r"notifications\.webhook\.timeout_seconds: must be > 0"):
        load_config(_config(tmp_path, {"url": "http://h/x", "timeout_seconds": 0}), check_data=False)


def test_config_enums_and_defaults_are_the_senders_own():
    # Checks: the events the YAML accepts are the events pipeline/notify.py sends, and the pydantic
    # defaults (the JSON Schema's) are the parsed config's.
    import typing

    from pipeline.config import model, notifications

    assert typing.get_args(model.NotifyEvent) == notifications.EVENTS == (notify.FAILURE, notify.BLESSED)
    hook = model.Webhook(url="http://h/x")
    assert tuple(hook.on) == notifications.WebhookConfig("u").on
    assert hook.timeout_seconds == notifications.WebhookConfig("u").timeout_seconds


# ------------------------------------------------------------------------- fast: payloads --
def test_blessed_event_posts_the_run_and_its_new_pushes(tmp_path, receiver):
    # Checks: a blessed push POSTs JSON with the pipeline, event, reason, report path, metrics and the
    # versions pushed in this run (a failed web push is left out) to the configured URL.
    cfg = load_config(_config(tmp_path, {"url": receiver.url}), check_data=False)
    console = StringIO()
    sent = notify.run_finished(cfg, _summary(), tmp_path / "run.log", console)
    assert console.getvalue() == ""
    (post,) = receiver.posts
    assert post["path"] == "/hooks/pipeline" and post["content_type"] == "application/json"
    body = post["body"]
    assert body == sent
    assert body["pipeline"] == "notify" and body["event"] == "blessed"
    assert body["pushed"] == {"serving": "1795000000", "mobile": "1795000001"}
    assert body["metrics"] == {"eval": {"auc": 0.81, "binary_accuracy": 0.74}}
    assert "serving version 1795000000" in body["reason"]
    assert body["report"] == str(cfg.output_dir / "report") and body["log"] == str(tmp_path / "run.log")
    assert body["run_id"] is None  # no ML Metadata in this test


def test_no_blessed_event_for_a_cached_or_rejected_model(tmp_path, receiver):
    # Checks: the blessed event means a NEW blessed push: none when Pusher was cached (the version is
    # an earlier run's), when the model was not blessed, or when the config does not ask for it.
    cfg = load_config(_config(tmp_path, {"url": receiver.url}), check_data=False)
    assert notify.run_finished(cfg, _summary(pushed_state="CACHED"), None, StringIO()) is None
    assert notify.run_finished(cfg, _summary(blessed=False), None, StringIO()) is None
    only_failures = load_config(_config(tmp_path, {"url": receiver.url, "on": ["failure"]}), check_data=False)
    assert notify.run_finished(only_failures, _summary(), None, StringIO()) is None
    assert receiver.posts == []
    # ... while the same summary with a new push is sent (the checks above are not vacuous).
    assert notify.run_finished(cfg, _summary(), None, StringIO())["event"] == "blessed"
    assert len(receiver.posts) == 1


@pytest.mark.parametrize("trouble", ["down", "http_500", "slow"])
def test_a_failing_webhook_warns_and_never_raises(tmp_path, trouble):
    # Checks: a receiver that is down (connection refused), answers 500, or answers after the timeout
    # costs a warning on the console and at most ~timeout seconds; the call returns normally.
    r = Receiver(status=500 if trouble == "http_500" else 200, delay=3.0 if trouble == "slow" else 0.0)
    url = r.url
    if trouble == "down":
        r.close()
    cfg = load_config(_config(tmp_path, {"url": url, "timeout_seconds": 0.5}), check_data=False)
    console = StringIO()
    started = time.monotonic()
    body = notify.run_failed(cfg, "Trainer", RuntimeError("boom"), None, console)
    elapsed = time.monotonic() - started
    assert body["event"] == "failure"
    expected = {"down": "Connection refused", "http_500": "HTTP 500", "slow": "timed out"}[trouble]
    assert f"warning: webhook {url} (failure event) failed:" in console.getvalue()
    assert expected in console.getvalue(), console.getvalue()
    assert elapsed < 2.5, elapsed
    if trouble != "down":
        assert len(r.posts) == 1
        r.close()


# ---------------------------------------------------------------- e2e: a run that fails --
@pytest.mark.e2e
@pytest.mark.runs("notify_failure")
def test_failure_event_from_a_run_whose_component_fails(pipeline_runs):
    # Checks: a real component error (ImportSchemaGen given a schema file that is not a Schema proto,
    # tests/runs.py notify_failure) fails the run with exit code 1, and the webhook receives one
    # failure event naming that component, the error, the run id of the failed execution's
    # pipeline_run context in ML Metadata, and the run's log file.
    from pipeline.summary import latest_execution, open_store

    proc = pipeline_runs.wait("notify_failure")
    receiver, outputs = proc.workspace.resources["receiver"], proc.output_root
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "warning: webhook" not in proc.stderr
    (post,) = receiver.posts
    body = post["body"]
    assert body["event"] == "failure" and body["pipeline"] == "notify"
    assert body["component"] == "ImportSchemaGen", body
    assert body["reason"].startswith("ImportSchemaGen failed: ") and "NOT_A_TYPE" in body["reason"], body["reason"]
    cfg = proc.cfg
    store = open_store(cfg)
    failed = latest_execution(store, cfg.name, "ImportSchemaGen")
    (run_context,) = [c for c in store.get_contexts_by_execution(failed.id)
                      if store.get_context_types_by_id([c.type_id])[0].name == "pipeline_run"]
    assert body["run_id"] == run_context.name, (body["run_id"], run_context.name)
    assert Path(body["log"]).is_file() and Path(body["log"]).parent.parent == outputs / "notify"
    assert body["pushed"] == {} and body["metrics"] == {}
