"""Soak benchmark: `python -m pipeline serve` under a bounded load while new versions are pushed.

One phase per server setting (batching off, then on; --phases picks). Each phase starts a real
server on a fresh base path with version 1 = the model, then sends --requests requests (default
20,000; --quick: 400) from --concurrency threads (default 32; --quick: 8), half REST `:predict`
(JSON, b64 tf.Examples) and half gRPC Predict, ROWS rows each, addressed to the model without a
version (latest), so they follow the pushes. During the load it pushes versions 2, 3, 4 (copies
of the model) and a broken version 5 (its saved_model.pb replaced by garbage), each written aside
as `.tmp-N` and renamed to `N` (the atomic push Pusher does). Measured: failed requests, p50 / p99
/ max latency per protocol, the longest time no request finished (a stall percentiles hide),
throughput, the versions that answered (gRPC responses name theirs; REST's come from the server's
per-version request counter), and the server's RSS (VmRSS of the server and any child process,
sampled every 0.5 s). Goal table (benchmarks/harness.py; JSON in
outputs/bench/bench_soak.json), per phase:

  failed requests                                            == 0
  RSS growth from 25% to 100% of the load                    <= 10%
  RSS growth over the last sixth (requests only, no pushes)  <= 2%
  versions that answered include 1..4                        all 4
  final status: version 5 failed to load, latest still 4     yes

How the load is paced: the requests are cut into six equal segments. Version k+1 is pushed when
segment k starts (k = 1..4) and loads while segment k runs; a request of segment k+1 starts only
once the server's status shows that push done (version k+1 AVAILABLE, or version 5 failed). So
every version answers some requests, and the whole last segment runs after the broken push was
reported failed. On a full run a segment lasts many seconds and nobody waits (the time workers did
wait is reported); --quick's tiny segments may wait.

    python benchmarks/bench_soak.py [--model SAVED_MODEL_DIR | --config C --output-root R]
                                    [--requests N] [--concurrency C] [--phases no-batching,batching]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import shutil
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout, when run as a script

from model.keras_env import KERAS_ENV

# A process entry (model/keras_env.py): the Keras flavour before TensorFlow loads; the servers it
# starts inherit it.
os.environ.update(KERAS_ENV)

import grpc
import numpy as np
import psutil
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from benchmarks import harness
from benchmarks.bench_serving import BATCHING, find_model, newest_version
from tests.serving_fixtures import ServerProcess

MODEL = "soak"
ROWS = 3                 # rows per request
SEGMENTS = 6             # pushes at the start of segments 1..4 (0-based); the last runs after the broken push
GOOD_PUSHES = (2, 3, 4)
BROKEN = 5
RSS_BOUND = 0.10         # growth from 25% to 100% of the load; why 10%: docs/benchmarks.md
RSS_BOUND_STEADY = 0.02  # growth over the last sixth (requests only, no pushes)
POLL_S = 0.5             # --file_system_poll_wait_seconds
RSS_EVERY_S = 0.5
PUSH_TIMEOUT_S = 120.0   # a push the server has not picked up by then is reported, and the load goes on
METRICS_PATH = "/monitoring/prometheus/metrics"
WARM_UP = 5              # requests per protocol before the load (not counted)


@dataclass
class Load:
    """What one phase's load measured; written by the worker threads under ``lock``."""

    total: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    issued: int = 0
    done: int = 0
    failures: list[str] = field(default_factory=list)
    failed: int = 0
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"REST": [], "gRPC": []})
    grpc_versions: list[Counter] = field(default_factory=lambda: [Counter() for _ in range(SEGMENTS)])
    finished: list[float] = field(default_factory=list)  # monotonic time each request ended
    waited_s: float = 0.0

    def segment(self, i: int) -> int:
        return i * SEGMENTS // self.total


def rss_bytes(pid: int) -> int:
    """VmRSS of ``pid`` and its descendants (the server's worker processes, if any), from /proc."""
    total = 0
    try:
        pids = [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    except psutil.NoSuchProcess:
        return 0
    for p in pids:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue  # exited meanwhile
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        total += int(match.group(1)) * 1024 if match else 0
    return total


class RssSampler(threading.Thread):
    """(seconds since start, requests done, RSS bytes) every RSS_EVERY_S."""

    def __init__(self, pid: int, load: Load):
        super().__init__(daemon=True)
        self.pid, self.load, self.samples, self.stop = pid, load, [], threading.Event()
        self.started = time.monotonic()

    def sample(self) -> None:
        self.samples.append((time.monotonic() - self.started, self.load.done, rss_bytes(self.pid)))

    def run(self) -> None:
        while not self.stop.wait(RSS_EVERY_S):
            self.sample()

    def at(self, fraction: float) -> int:
        """RSS of the first sample taken once ``fraction`` of the requests were done."""
        target = fraction * self.load.total
        return next(rss for _, done, rss in self.samples if done >= target)


def status(server: ServerProcess) -> dict[int, dict]:
    """version -> its GET /v1/models/<name> entry (state, status.error_message)."""
    conn = http.client.HTTPConnection(*server.rest.split(":"), timeout=30)
    try:
        conn.request("GET", f"/v1/models/{MODEL}")
        body = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    return {int(v["version"]): v for v in body.get("model_version_status", [])}


def rest_versions(server: ServerProcess) -> Counter:
    """Successful REST predictions per version, from the server's request counter."""
    conn = http.client.HTTPConnection(*server.rest.split(":"), timeout=30)
    try:
        conn.request("GET", METRICS_PATH)
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    out: Counter = Counter()
    for line in text.splitlines():
        # TF Serving's labels: API is the call (Predict), entrypoint the protocol (REST, GRPC).
        if line.startswith(":tensorflow:serving:request_count{") and 'API="Predict"' in line \
                and 'entrypoint="REST"' in line and 'status="OK"' in line and f'model_name="{MODEL}"' in line:
            version = re.search(r'model_version="(\d*)"', line).group(1)  # type: ignore[union-attr]
            out[int(version)] += int(line.rsplit(" ", 1)[1])
    return out


def push(model_dir: Path, base: Path, version: int, broken: bool = False) -> None:
    """Version ``version`` written aside and renamed into place: the server never sees half of it."""
    tmp = base / f".tmp-{version}"
    shutil.copytree(model_dir, tmp)
    if broken:
        (tmp / "saved_model.pb").write_bytes(b"not a SavedModel, a broken push\n" * 64)
    os.rename(tmp, base / str(version))


def pusher(model_dir: Path, base: Path, server: ServerProcess, load: Load, ready: list[threading.Event],
           log: list[dict]) -> None:
    """Push version k+1 at the start of segment k and set ready[k] once the server reports it done."""
    try:
        for k, version in enumerate((*GOOD_PUSHES, BROKEN), start=1):
            while load.issued < k * load.total // SEGMENTS:
                time.sleep(0.02)
            pushed_at = time.monotonic()
            push(model_dir, base, version, broken=version == BROKEN)
            entry: dict[str, Any] = {"version": version, "broken": version == BROKEN, "at_request": load.issued}
            state: dict = {}
            while time.monotonic() - pushed_at < PUSH_TIMEOUT_S:
                try:
                    state = status(server).get(version, {})
                except (OSError, http.client.HTTPException, ValueError) as exc:  # a busy server: ask again
                    entry["status_errors"] = entry.get("status_errors", 0) + 1
                    entry["last_status_error"] = f"{type(exc).__name__}: {exc}"
                if version != BROKEN and state.get("state") == "AVAILABLE":
                    break
                # TF Serving's END with the load error, once the retries are used up.
                if version == BROKEN and state.get("state") == "END" and state["status"]["error_message"]:
                    entry["error"] = state["status"]["error_message"][:200]
                    break
                time.sleep(0.1)
            else:
                entry["timeout"] = True
            entry["seconds_to_done"] = round(time.monotonic() - pushed_at, 2)
            entry["state"] = state.get("state", "absent")
            log.append(entry)
            print(f"    pushed version {version}{' (broken)' if version == BROKEN else ''} at request "
                  f"{entry['at_request']}: {entry['state']} after {entry['seconds_to_done']} s", flush=True)
            ready[k].set()
    finally:
        for event in ready:  # whatever happened here, the load never waits forever
            event.set()


def worker(server: ServerProcess, channel: grpc.Channel, requests: list[bytes], bodies: list[bytes], load: Load,
           ready: list[threading.Event]) -> None:
    """Takes the next request index until none is left: even -> REST, odd -> gRPC; a request of
    segment k >= 2 waits for ready[k-1] (the push made at the start of segment k-1 done)."""
    predict = channel.unary_unary("/tensorflow.serving.PredictionService/Predict",
                                  response_deserializer=predict_pb2.PredictResponse.FromString)
    host, port = server.rest.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)  # keep-alive, one per thread
    path = f"/v1/models/{MODEL}:predict"
    try:
        while True:
            with load.lock:
                i = load.issued
                if i >= load.total:
                    return
                load.issued += 1
            segment = load.segment(i)
            gate = ready[max(segment - 1, 0)]  # the push made at the start of the previous segment
            if not gate.is_set():
                t0 = time.monotonic()
                gate.wait()
                with load.lock:
                    load.waited_s += time.monotonic() - t0
                conn.close()  # idle meanwhile: the server may have timed the keep-alive out; reconnect
            api, error, version = ("REST" if i % 2 == 0 else "gRPC"), None, None
            t0 = time.perf_counter()
            try:
                if api == "REST":
                    conn.request("POST", path, body=bodies[i % len(bodies)],
                                 headers={"Content-Type": "application/json"})
                    response = conn.getresponse()
                    text = response.read()
                    if response.status != 200:
                        error = f"REST HTTP {response.status}: {text[:200]!r}"
                    elif len(json.loads(text)["predictions"]) != ROWS:
                        error = f"REST: not {ROWS} predictions: {text[:200]!r}"
                else:
                    reply = predict(requests[i % len(requests)], timeout=60)
                    version = reply.model_spec.version.value
                    rows = {tf.make_ndarray(t).shape[0] for t in reply.outputs.values()}
                    if rows != {ROWS}:
                        error = f"gRPC: outputs with {rows} rows, not {ROWS}"
            except Exception as exc:  # any failure is counted, never raised: the soak goes on
                error = f"{api} {type(exc).__name__}: {str(exc)[:200]}"
                if api == "REST":
                    conn.close()  # a fresh connection for the next one
            elapsed = time.perf_counter() - t0
            with load.lock:
                load.done += 1
                load.finished.append(time.monotonic())
                if error:
                    load.failed += 1
                    if len(load.failures) < 20:
                        load.failures.append(f"request {i}: {error}")
                else:
                    load.latencies[api].append(elapsed)
                    if version is not None:
                        load.grpc_versions[segment][version] += 1
    finally:
        conn.close()


def warm_up(server: ServerProcess, channel: grpc.Channel, requests: list[bytes], bodies: list[bytes]) -> None:
    """A few requests of each protocol before the clock starts: the first call traces the model's
    functions (seconds), which is start-up, not soak."""
    predict = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
    conn = http.client.HTTPConnection(*server.rest.split(":"), timeout=120)
    try:
        for i in range(WARM_UP):
            predict(requests[i], timeout=120)
            conn.request("POST", f"/v1/models/{MODEL}:predict", body=bodies[i],
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            if response.status != 200:
                sys.exit(f"warm-up request failed: HTTP {response.status} {response.read()[:300]!r}")
            response.read()
    finally:
        conn.close()


def run_phase(name: str, model_dir: Path, work: Path, requests: list[bytes], bodies: list[bytes], total: int,
              concurrency: int, server_flags: list[str]) -> dict[str, Any]:
    base = work / "models" / MODEL
    shutil.rmtree(work, ignore_errors=True)
    base.mkdir(parents=True)
    shutil.copytree(model_dir, base / "1")
    (work / "monitoring.pbtxt").write_text(f'prometheus_config {{ enable: true, path: "{METRICS_PATH}" }}\n')
    flags = [f"--model_base_path={base}", f"--model_name={MODEL}", f"--file_system_poll_wait_seconds={POLL_S}",
             f"--monitoring_config_file={work / 'monitoring.pbtxt'}", *server_flags]
    if name == "batching":
        (work / "batching.pbtxt").write_text(BATCHING)
        flags += ["--enable_batching", f"--batching_parameters_file={work / 'batching.pbtxt'}"]
    print(f"\n{name}: server on {base} ({total} requests, concurrency {concurrency})", flush=True)
    server = ServerProcess(flags, work / "server.log")
    load = Load(total)
    ready = [threading.Event() for _ in range(SEGMENTS)]
    ready[0].set()
    pushes: list[dict] = []
    channel = grpc.insecure_channel(server.grpc)
    try:
        warm_up(server, channel, requests, bodies)
        rest_before = rest_versions(server)  # the warm-up's, taken off the load's counts below
        rss_start = rss_bytes(server.process.pid)
        sampler = RssSampler(server.process.pid, load)
        sampler.start()
        threads = [threading.Thread(target=worker, args=(server, channel, requests, bodies, load, ready), daemon=True)
                   for _ in range(concurrency)]
        push_thread = threading.Thread(target=pusher, args=(model_dir, base, server, load, ready, pushes), daemon=True)
        started = time.monotonic()
        for t in (*threads, push_thread):
            t.start()
        last = 0.0
        while any(t.is_alive() for t in threads):
            time.sleep(0.2)
            if time.monotonic() - last >= 5:
                last = time.monotonic()
                print(f"    {load.done}/{total} requests, {load.failed} failed, "
                      f"RSS {rss_bytes(server.process.pid) / 2**20:.0f} MiB, {last - started:.0f} s", flush=True)
        elapsed = time.monotonic() - started
        push_thread.join(timeout=PUSH_TIMEOUT_S)
        sampler.stop.set()
        sampler.join()
        sampler.sample()  # the 100% sample: every request done
        final = status(server)
        by_rest = rest_versions(server) - rest_before
        alive = server.process.poll() is None
    finally:
        channel.close()
        server.stop()
    by_grpc: Counter = sum(load.grpc_versions, Counter())
    broken, latest = final.get(BROKEN, {}), max((v for v, s in final.items() if s["state"] == "AVAILABLE"), default=0)
    rss25, rss100, rss_last = sampler.at(0.25), sampler.at(1.0), sampler.at((SEGMENTS - 1) / SEGMENTS)
    # The longest time no request finished: a stall (e.g. a version swap) that percentiles hide.
    stall = float(np.max(np.diff([started, *sorted(load.finished)]))) if load.finished else float("nan")
    ms = {api: np.array(v) * 1000 for api, v in load.latencies.items()}
    result = {
        "phase": name, "requests": total, "concurrency": concurrency, "failed": load.failed,
        "failures": load.failures, "seconds": round(elapsed, 2), "req_s": total / elapsed,
        "waited_s": round(load.waited_s, 2), "server_alive": alive,
        "p50_ms": {api: float(np.percentile(v, 50)) if len(v) else float("nan") for api, v in ms.items()},
        "p99_ms": {api: float(np.percentile(v, 99)) if len(v) else float("nan") for api, v in ms.items()},
        "max_ms": {api: float(np.max(v)) if len(v) else float("nan") for api, v in ms.items()},
        "longest_stall_s": round(stall, 2),
        "rss_mib": {"start": rss_start / 2**20, "at_25": rss25 / 2**20, "at_last_segment": rss_last / 2**20,
                    "at_100": rss100 / 2**20,
                    "peak": max(r for _, _, r in sampler.samples) / 2**20},
        "rss_growth": rss100 / rss25 - 1,
        "rss_growth_last_segment": rss100 / rss_last - 1,
        "versions_grpc": {str(k): n for k, n in sorted(by_grpc.items())},
        "versions_rest": {str(k): n for k, n in sorted(by_rest.items())},
        "versions_grpc_per_segment": [{str(k): n for k, n in sorted(c.items())} for c in load.grpc_versions],
        "pushes": pushes,
        "final_status": {str(v): {"state": s["state"], "error": s["status"]["error_message"][:200]}
                         for v, s in sorted(final.items())},
        "broken_failed": broken.get("state") == "END" and bool(broken.get("status", {}).get("error_message")),
        "latest_available": latest,
        "rss_samples": [(round(t, 2), d, round(r / 2**20, 1)) for t, d, r in sampler.samples],
    }
    print(f"  {name}: {load.failed} failed of {total}; {result['req_s']:.0f} req/s; p50/p99 ms "
          + ", ".join(f"{api} {result['p50_ms'][api]:.1f}/{result['p99_ms'][api]:.1f}" for api in ms)
          + f"; longest stall {result['longest_stall_s']} s"
          + f"; RSS {result['rss_mib']['at_25']:.0f} -> {result['rss_mib']['at_100']:.0f} MiB "
          f"({100 * result['rss_growth']:+.1f}%); versions gRPC {result['versions_grpc']} REST "
          f"{result['versions_rest']}; final {result['final_status']}", flush=True)
    for f in load.failures[:5]:
        print(f"    {f}", flush=True)
    return result


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=None, help="a SavedModel directory (default: the newest "
                        "pushed model of --config/--output-root, else bench_serving's fallback)")
    parser.add_argument("--requests", type=int, default=None, help="requests per phase (default 20000; 400 quick)")
    parser.add_argument("--concurrency", type=int, default=None, help="client threads (default 32; 8 quick)")
    parser.add_argument("--phases", default="no-batching,batching", help="comma-separated: no-batching, batching")
    parser.add_argument("--server-flag", action="append", default=[], dest="server_flags", metavar="--FLAG=VALUE",
                        help="an extra flag for `python -m pipeline serve` (repeat for several)")
    harness.finished_run_args(parser)


def main() -> int:
    b = harness.bench("bench_soak", __doc__, add_args)
    args = b.args
    total = args.requests or (400 if args.quick else 20_000)
    concurrency = args.concurrency or (8 if args.quick else 32)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if unknown := set(phases) - {"no-batching", "batching"}:
        sys.exit(f"unknown phase(s) {sorted(unknown)}: use no-batching, batching")
    if total < SEGMENTS * concurrency:
        sys.exit(f"--requests must be at least {SEGMENTS * concurrency} (six segments of --concurrency)")
    if args.model is None and args.output_root is not None:  # the newest model a finished run pushed
        from pipeline.config import load_config

        pushed = load_config(args.config, output_root=args.output_root.resolve()).pushed_dir("serving")
        args.model = newest_version(pushed)
        if args.model is None:
            sys.exit(f"no pushed model under {pushed}: run the pipeline first")
    model_dir, rows = find_model(args.model)
    print(f"model: {model_dir}", flush=True)
    from pipeline import raw_inputs

    specs = tf.saved_model.load(str(model_dir)).signatures["serving_raw"].structured_input_signature[1]
    raw_spec = {k: tf.io.VarLenFeature({tf.float64: tf.int64}.get(s.dtype, s.dtype)) for k, s in specs.items()}
    examples = raw_inputs.tf_examples(rows[:999], raw_spec)
    groups = [examples[i:i + ROWS] for i in range(0, len(examples) - ROWS + 1, ROWS)]
    requests, bodies = [], []
    for g in groups:
        r = predict_pb2.PredictRequest()
        r.model_spec.name = MODEL  # no version: the latest, so requests follow the pushes
        r.inputs["examples"].CopyFrom(tf.make_tensor_proto(g))
        requests.append(r.SerializeToString())
        bodies.append(json.dumps({"instances": [{"b64": base64.b64encode(e).decode()} for e in g]}).encode())

    results = [run_phase(p, model_dir, b.work / p, requests, bodies, total, concurrency, args.server_flags)
               for p in phases]
    shutil.rmtree(b.work / "models", ignore_errors=True)

    print()
    print(harness.table([{**r, "p50_rest": r["p50_ms"]["REST"], "p99_rest": r["p99_ms"]["REST"],
                          "p50_grpc": r["p50_ms"]["gRPC"], "p99_grpc": r["p99_ms"]["gRPC"],
                          "max_ms": max(r["max_ms"].values()), "rss25": r["rss_mib"]["at_25"],
                          "rss100": r["rss_mib"]["at_100"]} for r in results],
                        [("phase", "phase", "<12s"), ("requests", "requests", ">8d"), ("failed", "failed", ">6d"),
                         ("req_s", "req/s", ">6.0f"), ("p50_rest", "REST p50", ">8.1f"),
                         ("p99_rest", "REST p99", ">8.1f"), ("p50_grpc", "gRPC p50", ">8.1f"),
                         ("p99_grpc", "gRPC p99", ">8.1f"), ("max_ms", "  max ms", ">8.0f"),
                         ("longest_stall_s", "stall s", ">7.1f"), ("rss25", "RSS@25% MiB", ">11.0f"),
                         ("rss100", "RSS@100% MiB", ">12.0f"), ("waited_s", "waited s", ">8.1f")]))
    goals = []
    for r in results:
        p = r["phase"]
        answered = {int(v) for v in (*r["versions_grpc"], *r["versions_rest"])}
        goals += [
            harness.Goal(f"{p}: failed requests", r["failed"], "<=", 0, unit="",
                         note=f"of {r['requests']} at concurrency {r['concurrency']}, "
                              f"server {'up' if r['server_alive'] else 'DEAD'} at the end"),
            harness.Goal(f"{p}: RSS growth 25% -> 100% of the load", 100 * r["rss_growth"], "<=",
                         100 * RSS_BOUND, unit="%", note=f"{r['rss_mib']['at_25']:.0f} -> "
                                                         f"{r['rss_mib']['at_100']:.0f} MiB"),
            # The last sixth has no pushes, only requests: growth there is what requests leak.
            harness.Goal(f"{p}: RSS growth over the last sixth (no pushes)", 100 * r["rss_growth_last_segment"],
                         "<=", 100 * RSS_BOUND_STEADY, unit="%",
                         note=f"{r['rss_mib']['at_last_segment']:.0f} -> {r['rss_mib']['at_100']:.0f} MiB"),
            harness.Goal(f"{p}: versions 1..4 answered", len(answered & {1, 2, 3, 4}), ">=", 4, unit="",
                         note=f"gRPC {r['versions_grpc']}, REST {r['versions_rest']}"),
            # After the broken push was reported failed (the last segment), version 4 answered every
            # gRPC request and is still the latest AVAILABLE version at the end.
            harness.Goal(f"{p}: version 5 failed, 4 still served", float(
                r["broken_failed"] and r["latest_available"] == 4 and r["server_alive"]
                and set(r["versions_grpc_per_segment"][-1]) == {"4"}), ">=", 1, unit="",
                note=f"final status {r['final_status'].get(str(BROKEN), {}).get('state', 'absent')}, latest "
                     f"AVAILABLE {r['latest_available']}, last segment gRPC {r['versions_grpc_per_segment'][-1]}"),
        ]
    b.tables = {"model": str(model_dir), "rows_per_request": ROWS, "rss_bound": RSS_BOUND, "phases": results}
    return b.report(goals)


if __name__ == "__main__":
    sys.exit(main())
