"""Server-side batching with TF Serving's BasicBatchScheduler semantics.

Concurrent requests for the same model version and signature (and the same non-batch input
shapes) are queued; a batch thread takes the oldest task, waits up to ``batch_timeout_micros``
for more until ``max_batch_size`` rows, runs them as one call and splits the outputs along
dimension 0. One call per batch instead of one per request is where the throughput comes from:
the per-call cost (function dispatch, kernel launches) is shared by every row of the batch.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np

from serving.options import BatchingOptions
from serving.status import ServingError, deadline_exceeded, invalid

Arrays = dict[str, np.ndarray]
RunFn = Callable[[Arrays], Arrays]


@dataclass(eq=False)
class _Task:
    inputs: Arrays
    size: int
    enqueued: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    outputs: Arrays | None = None
    error: BaseException | None = None
    abandoned: bool = False  # its request stopped waiting (deadline): skipped if still queued


class _Queue:
    def __init__(self, opts: BatchingOptions, run: RunFn, on_batch: Callable[[int], None]):
        self._opts, self._run, self._on_batch = opts, run, on_batch
        self._tasks: deque[_Task] = deque()
        self._queued_rows = 0
        self._cv = threading.Condition()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, daemon=True, name="batch")
                         for _ in range(opts.num_batch_threads)]
        for t in self._threads:
            t.start()

    def submit(self, task: _Task) -> bool:
        """False if the queue is closed (its version was unloaded): the caller runs the task itself."""
        with self._cv:
            if self._closed:
                return False
            if self._queued_rows + task.size > self._opts.max_enqueued_batches * self._opts.max_batch_size:
                raise ServingError(grpc.StatusCode.UNAVAILABLE,
                                   "The batch scheduling queue to which this task was submitted is full")
            self._tasks.append(task)
            self._queued_rows += task.size
            # Wake a batch thread only when there is something new for it to do: a first task (the
            # threads wait for one without a timeout) or a full batch. A thread filling a batch
            # wakes at its timeout anyway; waking it for every task costs a thread switch each.
            if len(self._tasks) == 1 or self._queued_rows >= self._opts.max_batch_size:
                self._cv.notify()
        return True

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def _next_batch(self) -> list[_Task] | None:
        timeout = self._opts.batch_timeout_micros / 1e6
        with self._cv:
            while not self._tasks:
                if self._closed:
                    return None
                self._cv.wait()
            deadline = self._tasks[0].enqueued + timeout
            while self._queued_rows < self._opts.max_batch_size and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0 or not self._tasks:
                    break
                self._cv.wait(left)
            batch, rows, dropped = [], 0, 0
            while self._tasks and rows + self._tasks[0].size <= self._opts.max_batch_size:
                task = self._tasks.popleft()
                if task.abandoned:  # nobody waits for it: do not spend a batch slot on it
                    dropped += task.size
                    continue
                batch.append(task)
                rows += task.size
            self._queued_rows -= rows + dropped
            if self._tasks:
                self._cv.notify()  # more work left: wake another batch thread
            return batch

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            if batch:
                self._execute(batch)

    def _execute(self, batch: list[_Task]) -> None:
        rows = sum(t.size for t in batch)
        padded = next((s for s in self._opts.allowed_batch_sizes if s >= rows), rows)
        try:
            inputs = {}
            for name in batch[0].inputs:
                parts = [t.inputs[name] for t in batch]
                if padded > rows:  # pad with copies of the first row, as TF Serving does
                    parts.append(np.repeat(parts[0][:1], padded - rows, axis=0))
                inputs[name] = np.concatenate(parts) if len(parts) > 1 else parts[0]
            outputs = self._run(inputs)
            for name, array in outputs.items():
                if array.ndim == 0 or array.shape[0] != padded:
                    raise invalid(f"output '{name}' has shape {list(array.shape)}: a batched output needs "
                                  f"dimension 0 = batch size ({padded}); disable batching for this model")
            self._on_batch(rows)
            start = 0
            for task in batch:
                task.outputs = {k: v[start:start + task.size] for k, v in outputs.items()}
                start += task.size
        except BaseException as exc:  # handed to every waiting request, never kills the thread
            for task in batch:
                task.error = exc
        for task in batch:
            task.done.set()


class Batcher:
    """One queue per (servable, signature, non-batch input shapes)."""

    def __init__(self, opts: BatchingOptions, on_batch: Callable[[str, int], None] | None = None):
        self.opts = opts
        self._queues: dict[tuple, _Queue] = {}
        self._lock = threading.Lock()
        self._on_batch = on_batch or (lambda model, rows: None)

    def run(self, servable: Any, signature_name: str, inputs: Arrays, run: RunFn,
            deadline: float | None = None) -> Arrays:
        """``deadline`` (time.monotonic()): past it the request fails with DEADLINE_EXCEEDED."""
        sizes = {a.shape[0] if a.ndim else None for a in inputs.values()}
        if None in sizes:
            return run(inputs)  # a scalar input has no batch dimension to concatenate along
        if len(sizes) != 1:
            raise invalid(f"batching needs every input to have the same dimension 0, got "
                          f"{ {k: a.shape[0] for k, a in inputs.items()} }")
        size = sizes.pop()
        if size > self.opts.max_batch_size:
            if not self.opts.enable_large_batch_splitting:
                raise invalid(f"Task size {size} is larger than maximum input batch size "
                              f"{self.opts.max_batch_size}")
            step = self.opts.max_batch_size
            chunks = [self.run(servable, signature_name, {k: a[i:i + step] for k, a in inputs.items()}, run,
                               deadline)
                      for i in range(0, size, step)]
            return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
        key = (id(servable), signature_name, tuple(sorted((k, a.shape[1:], a.dtype.str) for k, a in inputs.items())))
        with self._lock:
            # Unloaded while this request was in flight: run it directly rather than start a queue.
            queue = None if servable.retired else self._queues.get(key)
            if queue is None and not servable.retired:
                queue = self._queues[key] = _Queue(self.opts, run, lambda rows: self._on_batch(servable.model, rows))
        task = _Task(inputs, size)
        if queue is None or not queue.submit(task):
            return run(inputs)
        if not task.done.wait(None if deadline is None else max(0.0, deadline - time.monotonic())):
            task.abandoned = True
            raise deadline_exceeded(deadline - task.enqueued)  # type: ignore[operator]
        if task.error is not None:
            raise task.error
        assert task.outputs is not None
        return task.outputs

    def drop(self, servable: Any) -> None:
        """Closes an unloaded version's queues; their threads finish the queued tasks first."""
        with self._lock:
            keys = [k for k in self._queues if k[0] == id(servable)]
            queues = [self._queues.pop(k) for k in keys]
        for q in queues:
            q.close()
