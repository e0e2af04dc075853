"""The Keras flavour is decided by the process entries, not by import order (model/keras_env.py):
every entry sets it even against a contrary shell setting, and library imports set nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import ROOT, TAXI_CONFIG

# What a process ends up with, printed last: the variable, tf.keras is tf_keras, model code's keras is tf_keras.
REPORT = ("import tensorflow as tf, tf_keras; from model import training; "
          "print(os.environ.get('TF_USE_LEGACY_KERAS'), tf.keras.Model is tf_keras.Model, training.keras is tf_keras)")
VALIDATE = ["validate", "--config", str(TAXI_CONFIG)]  # a command that loads no TensorFlow itself


def _probe(code: str, env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    if env_value is not None:
        env["TF_USE_LEGACY_KERAS"] = env_value
    proc = subprocess.run([sys.executable, "-c", "import os, sys; " + code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


ENTRIES = {
    # `python -m pipeline ...`: pipeline/__main__.py, run as the interpreter runs it.
    "python -m pipeline": f"import runpy; sys.argv = ['pipeline', *{VALIDATE!r}]\n"
                          "try: runpy.run_module('pipeline', run_name='__main__', alter_sys=True)\n"
                          "except SystemExit as e: assert e.code == 0, e\n",
    # The console script tfx-pipeline = pipeline.cli:main.
    "tfx-pipeline": f"from pipeline.cli import main; assert main({VALIDATE!r}) == 0\n",
    # TFX loads the module files in the executor's process, which may be a fresh one (a container).
    "modules/preprocessing.py": "import modules.preprocessing\n",
    "modules/training.py": "import modules.training\n",
    "modules/tuning.py": "import modules.tuning\n",
}


LIBRARY = ("import pipeline, model.training, model.model_io, components.pruner.executor, ondevice.raw_model; "
           "import tensorflow as tf, tf_keras; from model import keras_env, model_io\n"
           "try: model_io.load_model('/nonexistent'); named = False\n"
           "except RuntimeError as e: named = 'TF_USE_LEGACY_KERAS' in str(e) and 'keras_env.apply()' in str(e)\n"
           "print(os.environ.get('TF_USE_LEGACY_KERAS'), tf.keras.Model is tf_keras.Model, named)")


@pytest.fixture(scope="module")
def probes() -> dict[tuple[str, str | None], str]:
    """Every probe's last line, {(entry or "library", TF_USE_LEGACY_KERAS): line}: fresh interpreters,
    a few at a time (each loads TensorFlow for seconds)."""
    # A stray TF_USE_LEGACY_KERAS=0 in the shell must be overridden; unset is the easier case (one entry).
    jobs = {(entry, "0"): f"exec({code!r}); " + REPORT for entry, code in ENTRIES.items()}
    jobs["python -m pipeline", None] = f"exec({ENTRIES['python -m pipeline']!r}); " + REPORT
    jobs["library", "0"] = f"exec({LIBRARY!r})"
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {key: pool.submit(_probe, code, key[1]) for key, code in jobs.items()}
    return {key: f.result() for key, f in futures.items()}


@pytest.mark.parametrize("entry", list(ENTRIES))
def test_each_entry_sets_tf_keras_whatever_the_shell_says(probes, entry):
    assert probes[entry, "0"] == "1 True True"
    if entry == "python -m pipeline":
        assert probes[entry, None] == "1 True True"


def test_library_imports_set_nothing_and_require_names_the_fix(probes):
    """Importing the package, model code and the Keras-using components decides nothing: with a
    contrary setting tf.keras is Keras 3 (tensorflow-model-optimization sets the variable on import,
    too late for tf.keras), and ``keras_env.require()`` (model_io.load_model calls it) fails with the
    fix named instead of a Keras 2/3 mix-up later."""
    assert probes["library", "0"].split()[1:] == ["False", "True"]


def test_this_test_session_is_tf_keras():
    """The pytest session's entry (the checkout's conftest.py) set it before TensorFlow loaded."""
    import tensorflow as tf
    import tf_keras

    assert os.environ.get("TF_USE_LEGACY_KERAS") == "1"
    assert tf.keras.Model is tf_keras.Model


def test_a_pytest_session_overrides_a_contrary_shell_setting():
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "0"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                           f"{__file__}::test_this_test_session_is_tf_keras"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
