"""Prometheus text-format metrics, named like TF Serving's (``:tensorflow:serving:...``).

Latency is in microseconds, as in TF Serving's ``request_latency`` histogram, so dashboards
built on one work on the other.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

LATENCY_BUCKETS_US = (100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
                      500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class _Histogram:
    def __init__(self, buckets: tuple[int, ...]):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1


def _labels(pairs: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                     for k, v in pairs.items())
    return "{" + inner + "}"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple, int] = defaultdict(int)
        self._errors: dict[tuple, int] = defaultdict(int)
        self._latency: dict[tuple, _Histogram] = {}
        self._loads: dict[tuple, int] = defaultdict(int)
        self._batches: dict[str, _Histogram] = {}

    def request(self, model: str, version: str, api: str, entrypoint: str, status: str, seconds: float) -> None:
        key = (model, version, api, entrypoint)
        with self._lock:
            self._requests[(*key, status)] += 1
            if status != "OK":
                self._errors[(*key, status)] += 1
            hist = self._latency.get(key)
            if hist is None:
                hist = self._latency[key] = _Histogram(LATENCY_BUCKETS_US)
            hist.observe(seconds * 1e6)

    def load(self, model: str, version: int, status: str) -> None:
        with self._lock:
            self._loads[(model, str(version), status)] += 1

    def batch(self, model: str, rows: int) -> None:
        with self._lock:
            hist = self._batches.get(model)
            if hist is None:
                hist = self._batches[model] = _Histogram(BATCH_BUCKETS)
            hist.observe(rows)

    def render(self) -> str:
        lines: list[str] = []
        names = ("model_name", "model_version", "API", "entrypoint")
        with self._lock:
            for metric, counts, doc in (
                    ("request_count", self._requests, "Requests by model, version, API and status."),
                    ("request_error_count", self._errors, "Failed requests by model, version, API and status.")):
                lines += [f"# HELP :tensorflow:serving:{metric} {doc}", f"# TYPE :tensorflow:serving:{metric} counter"]
                for key, n in sorted(counts.items()):
                    labels = _labels(dict(zip((*names, "status"), key, strict=True)))
                    lines.append(f":tensorflow:serving:{metric}{labels} {n}")
            lines += ["# HELP :tensorflow:serving:request_latency Request latency in microseconds.",
                      "# TYPE :tensorflow:serving:request_latency histogram"]
            for key, hist in sorted(self._latency.items()):
                lines += _histogram(":tensorflow:serving:request_latency", dict(zip(names, key, strict=True)), hist)
            lines += ["# HELP :tensorflow:serving:model_load_count Model version loads by outcome.",
                      "# TYPE :tensorflow:serving:model_load_count counter"]
            for (model, version, status), n in sorted(self._loads.items()):
                labels = _labels({"model_name": model, "model_version": version, "status": status})
                lines.append(f":tensorflow:serving:model_load_count{labels} {n}")
            lines += ["# HELP :tensorflow:serving:batch_size Rows per executed batch (server-side batching).",
                      "# TYPE :tensorflow:serving:batch_size histogram"]
            for model, hist in sorted(self._batches.items()):
                lines += _histogram(":tensorflow:serving:batch_size", {"model_name": model}, hist)
        return "\n".join(lines) + "\n"


def _histogram(name: str, labels: dict[str, str], hist: _Histogram) -> list[str]:
    out, cumulative = [], 0
    for bound, count in zip((*hist.buckets, "+Inf"), hist.counts, strict=True):
        cumulative += count
        out.append(f"{name}_bucket{_labels({**labels, 'le': str(bound)})} {cumulative}")
    out.append(f"{name}_sum{_labels(labels)} {hist.total:.1f}")
    out.append(f"{name}_count{_labels(labels)} {hist.n}")
    return out
