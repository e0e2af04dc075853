"""The Keras flavour is decided by our entry points, not by import order."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

PROBE = (
    "import pipeline, tensorflow as tf, tf_keras; "
    "from model import training; "
    "print(os.environ['TF_USE_LEGACY_KERAS'], tf.keras.Model is tf_keras.Model, training.keras is tf_keras)"
)


def _probe(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    if env_value is not None:
        env["TF_USE_LEGACY_KERAS"] = env_value
    proc = subprocess.run([sys.executable, "-c", "import os; " + PROBE], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


def test_unset_and_contrary_settings_both_end_as_tf_keras():
    assert _probe(None) == "1 True True"
    assert _probe("0") == "1 True True"  # a stray TF_USE_LEGACY_KERAS=0 in the shell is overridden
