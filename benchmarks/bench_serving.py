"""Serving benchmark: `python -m pipeline serve` (REST and gRPC, batching off and on) against
in-process SavedModel calls on the same inputs (the limit), at concurrency 1, 8 and 32.

Every request is one taxi row as a serialized tf.Example to `serving_default`. Prints p50 / p99
latency and throughput per setting and the ratios to in-process, a no-op Python gRPC server's
p50 at concurrency 1 (the round-trip floor of the client and grpcio), then the goal table
(benchmarks/harness.py; JSON in outputs/bench/bench_serving.json):

  gRPC p50 at concurrency 1 / in-process p50                     <= 1.3x
  batching throughput gain at concurrency 32 (gRPC, REST)        >= 2x
  server req/s at concurrency 32 / in-process (gRPC, REST; the
  better of batching off and on)                                 >= 0.7x

    python benchmarks/bench_serving.py [--model SAVED_MODEL_DIR] [--requests N] [--quick]

Without --model it uses the newest pushed taxi model (outputs/taxi/pushed/serving/<ver>), or
trains a small one on a taxi sample first. Client and server share this machine's cores, as
they would on one host. Clients: the blocking gRPC stub at concurrency 1, otherwise asyncio gRPC
channels (up to CHANNELS connections, requests round-robin) and asyncio keep-alive HTTP connections
(one per request in flight): light clients, so the server is what is measured. Pass server flags
with --server-flag, e.g. --server-flag=--num_server_processes=2.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout, when run as a script

from model.keras_env import KERAS_ENV

# This script is a process entry (model/keras_env.py): the Keras flavour before TensorFlow loads;
# the pipeline runs and servers it starts inherit it.
os.environ.update(KERAS_ENV)

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from benchmarks import harness
from tests.serving_fixtures import ServerProcess, newest_outputs, trained_model

ROOT = Path(__file__).resolve().parent.parent

CONCURRENCY = (1, 8, 32)
CHANNELS = 4  # gRPC channels (connections) of the client at concurrency > 1
BATCHING = "max_batch_size { value: 32 }\nbatch_timeout_micros { value: 1000 }\nnum_batch_threads { value: 2 }\n" \
           "max_enqueued_batches { value: 1000 }\n"


def newest_version(pushed: Path) -> Path | None:
    """The newest numbered version folder a Pusher wrote under ``pushed``, if any."""
    versions = sorted((p for p in pushed.glob("*") if p.name.isdigit()), key=lambda p: int(p.name))
    return versions[-1] if versions else None


def find_model(arg: Path | None) -> tuple[Path, list[dict]]:
    from tests.conftest import read_taxi_rows

    _, rows = read_taxi_rows()
    if arg is not None:
        return arg, rows
    newest = newest_version(ROOT / "outputs" / "taxi" / "pushed" / "serving")
    if newest is not None:
        return newest, rows
    cache = ROOT / ".cache" / "bench_serving_model"
    try:
        return newest_outputs(cache)[0] / "Format-Serving", rows  # trained by an earlier run
    except (OSError, ValueError):
        pass
    print("no pushed taxi model: training a small one on a sample (about 2 minutes)...", flush=True)
    return trained_model(cache).saved_model, rows


def _summary(latencies: list[float], total: int, elapsed: float) -> tuple[float, float, float]:
    ms = np.array(latencies) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), total / elapsed


def load_threads(fn: Callable[[int], object], concurrency: int, total: int) -> tuple[float, float, float]:
    """In-process calls fn(i), i < total, on `concurrency` threads: (p50 ms, p99 ms, calls/s)."""
    latencies: list[float] = []
    lock, counter = threading.Lock(), iter(range(total))

    def worker() -> None:
        mine = []
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            t0 = time.perf_counter()
            fn(i)
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)

    for i in range(min(20, total)):  # warm-up
        fn(i)
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return _summary(latencies, total, time.perf_counter() - started)


async def _drive(send: Callable[[int], Awaitable[object]], concurrency: int, total: int) -> tuple[float, float, float]:
    # `concurrency` requests in flight from one event loop: a light client, so the server is measured.
    for i in range(min(20, total)):  # warm-up (traces, connections)
        await send(i)
    counter, latencies = iter(range(total)), []

    async def worker() -> None:
        for i in counter:  # one thread: the shared iterator needs no lock
            t0 = time.perf_counter()
            await send(i)
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return _summary(latencies, total, time.perf_counter() - started)


def load_grpc(target: str, requests: list[bytes], concurrency: int, total: int) -> tuple[float, float, float]:
    if concurrency == 1:  # one caller: the blocking stub is the lighter client
        with grpc.insecure_channel(target) as channel:
            call = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
            return load_threads(lambda i: call(requests[i % len(requests)], timeout=60), 1, total)

    async def run() -> tuple[float, float, float]:
        # Up to CHANNELS channels, each its own connection (a local subchannel pool), requests
        # round-robin: what a client does to use several server processes behind one port.
        channels = [grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
                    for _ in range(min(concurrency, CHANNELS))]
        # Raw bytes in and out: the client does not spend time on (de)serialization.
        calls = [ch.unary_unary("/tensorflow.serving.PredictionService/Predict") for ch in channels]
        try:
            return await _drive(lambda i: calls[i % len(calls)](requests[i % len(requests)], timeout=60),
                                concurrency, total)
        finally:
            for ch in channels:
                await ch.close()
    return asyncio.run(run())


# A gRPC server that answers Predict with a canned response and does nothing else: the floor of
# a Python gRPC round trip (client + server) on this machine, measured with the same client.
NOOP_SERVER = """
import sys, threading
from concurrent import futures
import grpc
response = bytes.fromhex(sys.argv[1])
server = grpc.server(futures.ThreadPoolExecutor(max_workers=64))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("tensorflow.serving.PredictionService",
    {"Predict": grpc.unary_unary_rpc_method_handler(lambda request, context: response)}),))
print(server.add_insecure_port("127.0.0.1:0"), flush=True)
server.start()
sys.stdin.read()
"""


def grpc_floor(request: bytes, response: bytes, total: int) -> tuple[float, float, float]:
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", NOOP_SERVER, response.hex()], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())  # type: ignore[union-attr]
        return load_grpc(f"127.0.0.1:{port}", [request], 1, total)
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=30)


def load_rest(target: str, bodies: list[bytes], concurrency: int, total: int) -> tuple[float, float, float]:
    host, port = target.split(":")

    async def run() -> tuple[float, float, float]:
        pool: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

        async def send(i: int) -> None:
            reader, writer = pool.pop() if pool else await asyncio.open_connection(host, int(port))
            body = bodies[i % len(bodies)]
            writer.write(b"POST /v1/models/taxi:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            await reader.readexactly(length)
            if status != 200:
                raise RuntimeError(f"HTTP {status}")
            pool.append((reader, writer))  # keep-alive

        result = await _drive(send, concurrency, total)
        for _, writer in pool:
            writer.close()
        return result
    return asyncio.run(run())


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=None, help="a SavedModel directory (default: the newest "
                        "pushed taxi model, else a small one trained on a sample)")
    parser.add_argument("--requests", type=int, default=None,
                        help="requests per setting and round (default 400; 40 with --quick)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds over every setting; medians are reported (default 3; 1 with --quick)")
    parser.add_argument("--server-flag", action="append", default=[], dest="server_flags", metavar="--FLAG=VALUE",
                        help="an extra flag for every `python -m pipeline serve` (repeat for several)")
    harness.finished_run_args(parser)


def main() -> int:
    b = harness.bench("bench_serving", __doc__, add_args)
    args = b.args
    total = args.requests or (40 if args.quick else 400)
    args.rounds = args.rounds or (1 if args.quick else 3)
    if args.model is None and args.output_root is not None:  # the newest model a finished run pushed
        from pipeline.config import load_config

        pushed = load_config(args.config, output_root=args.output_root.resolve()).pushed_dir("serving")
        args.model = newest_version(pushed)
        if args.model is None:
            sys.exit(f"no pushed model under {pushed}: run the pipeline first")
    model_dir, rows = find_model(args.model)
    print(f"model: {model_dir}; {args.rounds} round(s) of {total} requests per setting", flush=True)
    local = tf.saved_model.load(str(model_dir))
    serve = local.signatures["serving_default"]
    specs = local.signatures["serving_raw"].structured_input_signature[1]
    from pipeline import raw_inputs

    raw_spec = {k: tf.io.VarLenFeature({tf.float64: tf.int64}.get(s.dtype, s.dtype)) for k, s in specs.items()}
    examples = raw_inputs.tf_examples(rows[:1000], raw_spec)
    n = len(examples)

    work = b.work / "serving"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(model_dir, work / "taxi" / "1")
    (work / "batching.pbtxt").write_text(BATCHING)

    tensors = [tf.constant([e]) for e in examples]
    requests = []
    for e in examples:
        r = predict_pb2.PredictRequest()
        r.model_spec.name = "taxi"
        r.inputs["examples"].CopyFrom(tf.make_tensor_proto([e]))
        requests.append(r.SerializeToString())
    bodies = [json.dumps({"instances": [{"b64": base64.b64encode(e).decode()}]}).encode() for e in examples]
    # A real response for the floor's canned answer.
    floor_response = predict_pb2.PredictResponse()
    floor_response.model_spec.name = "taxi"
    for key, value in serve(examples=tensors[0]).items():
        floor_response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))

    # Both servers stay up (an idle one costs nothing); every round measures in-process at a
    # concurrency right before the servers at it, so each ratio compares neighbours in time on a
    # machine whose load may change (medians over the rounds are reported).
    servers: dict[str, ServerProcess] = {}
    rounds: list[dict[tuple[str, str, int], tuple[float, float, float]]] = []
    try:
        for batching in (False, True):
            flags = [f"--model_base_path={work / 'taxi'}", "--model_name=taxi", "--file_system_poll_wait_seconds=0",
                     *args.server_flags]
            if batching:
                flags += ["--enable_batching", f"--batching_parameters_file={work / 'batching.pbtxt'}"]
            servers["batching" if batching else "no batching"] = ServerProcess(flags, work / f"server-{batching}.log")
        for r in range(args.rounds):
            got: dict[tuple[str, str, int], tuple[float, float, float]] = {}
            got[("no-op gRPC", "gRPC", 1)] = grpc_floor(requests[0], floor_response.SerializeToString(), total)
            for c in CONCURRENCY:
                got[("in-process", "-", c)] = load_threads(lambda i: serve(examples=tensors[i % n]), c, total)
                for mode, server in servers.items():
                    got[(mode, "gRPC", c)] = load_grpc(server.grpc, requests, c, total)
                    got[(mode, "REST", c)] = load_rest(server.rest, bodies, c, total)
                print(f"  round {r + 1} c={c}: " + "  ".join(
                    f"{m} {a} {got[(m, a, c)][0]:.2f} ms {got[(m, a, c)][2]:.0f}/s" for m, a, cc in got if cc == c),
                    flush=True)
            rounds.append(got)
    finally:
        for server in servers.values():
            server.stop()
    shutil.rmtree(work, ignore_errors=True)

    def median(values: list[float]) -> float:
        return float(np.median(values))

    def ratio(key: tuple[str, str, int], base: tuple[str, str, int], i: int) -> float:
        """Median over rounds of key's measure i / base's measure i in the same round."""
        return median([g[key][i] / g[base][i] for g in rounds])

    table = []
    for key in rounds[0]:
        mode, api, c = key
        base = ("in-process", "-", c)
        table.append({"setting": mode, "api": api, "concurrency": c,
                      "p50_ms": median([g[key][0] for g in rounds]), "p99_ms": median([g[key][1] for g in rounds]),
                      "req_s": median([g[key][2] for g in rounds]),
                      "p50_vs_in_process": ratio(key, base, 0), "req_s_vs_in_process": ratio(key, base, 2)})
    order = {"in-process": 0, "no-op gRPC": 1, "no batching": 2, "batching": 3}
    table.sort(key=lambda row: (order[row["setting"]], row["concurrency"], row["api"] != "gRPC"))
    print(f"\nmedians over {args.rounds} round(s) of {total} requests per setting; ratios are medians of "
          "per-round ratios")
    print(harness.table(table, [("setting", "setting", "<13s"), ("api", "API", "<6s"), ("concurrency", "conc", ">5d"),
                                ("p50_ms", "   p50 ms", ">9.2f"), ("p99_ms", "   p99 ms", ">9.2f"),
                                ("req_s", "    req/s", ">9.0f"),
                                ("p50_vs_in_process", "  p50 / in-proc", ">15.2f"),
                                ("req_s_vs_in_process", "  req/s / in-proc", ">17.2f")]))
    row = {(t["setting"], t["api"], t["concurrency"]): t for t in table}
    grpc1, in1, floor = row[("no batching", "gRPC", 1)], row[("in-process", "-", 1)], row[("no-op gRPC", "gRPC", 1)]
    goals = [harness.Goal("gRPC p50 at concurrency 1 / in-process", grpc1["p50_vs_in_process"], "<=", 1.3,
                          note=f"{grpc1['p50_ms']:.2f} vs {in1['p50_ms']:.2f} ms; a no-op Python gRPC server "
                               f"alone: {floor['p50_ms']:.2f} ms")]
    for api in ("gRPC", "REST"):
        off, on = ("no batching", api, 32), ("batching", api, 32)
        goals.append(harness.Goal(f"batching throughput gain at concurrency 32, {api}", ratio(on, off, 2), ">=", 2,
                                  note=f"{row[on]['req_s']:.0f} vs {row[off]['req_s']:.0f} req/s"))
    for api in ("gRPC", "REST"):
        best = max((row[(m, api, 32)] for m in ("no batching", "batching")), key=lambda t: t["req_s_vs_in_process"])
        goals.append(harness.Goal(f"{api} req/s at concurrency 32 / in-process", best["req_s_vs_in_process"], ">=",
                                  0.7, note=f"{best['setting']}: {best['req_s']:.0f} vs "
                                            f"{row[('in-process', '-', 32)]['req_s']:.0f} req/s"))
    b.tables = {"settings": table, "model": str(model_dir), "requests_per_setting": total, "rounds": args.rounds,
                "server_flags": args.server_flags,
                "per_round": [[{"setting": m, "api": a, "concurrency": c, "p50_ms": v[0], "p99_ms": v[1], "req_s": v[2]}
                               for (m, a, c), v in g.items()] for g in rounds]}
    return b.report(goals)


if __name__ == "__main__":
    sys.exit(main())
