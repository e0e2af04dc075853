"""AtomicPusher: TFX's Pusher component (same spec, same PushedModel output, same blessing checks)
whose executor writes a version aside and renames it into place (components/atomic_pusher/executor.py).

Its default id is the class name; pipeline_def gives it the stock ids (``Pusher``, ``Pusher_<target>``)."""

from __future__ import annotations

from tfx.components.pusher import component
from tfx.dsl.components.base import executor_spec

from components.atomic_pusher import executor


class AtomicPusher(component.Pusher):
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.AtomicPusherExecutor)
