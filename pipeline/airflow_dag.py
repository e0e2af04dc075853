"""Airflow: the config's pipeline as an Airflow DAG, built by TFX's AirflowDagRunner.

``python -m pipeline compile --engine airflow --config <yaml> --output <dags folder>/<name>.py``
writes a small DAG file that Airflow imports; it calls ``build_dag`` on the config, so the DAG is
always the config's current pipeline. The schedule is ``runner.airflow`` of the config
(``schedule``: cron or preset, ``start_date``, ``catchup``, ``retries``). Each component is one
task (a PythonOperator running the component with TFX's launcher); ML Metadata is the config's
(sqlite under outputs/<name>/, or MySQL).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.config import AirflowSettings, PipelineConfig, load_config

ROOT = Path(__file__).resolve().parent.parent

_DAG_FILE = '''"""Airflow DAG of pipeline '{name}' ({config}).

Written by `python -m pipeline compile --engine airflow`; TFX's AirflowDagRunner builds the DAG
from the config each time Airflow parses this file. Schedule: runner.airflow of the config.
"""

import os
import sys

sys.path.insert(0, {root!r})  # the project checkout (harmless when it is pip-installed)

from model.keras_env import KERAS_ENV

# The Keras flavour of every Airflow process that parses this file (scheduler, task runs),
# before TensorFlow loads: this file is their entry (model/keras_env.py).
os.environ.update(KERAS_ENV)

from pipeline.airflow_dag import build_dag

DAG = build_dag({config!r}, output_root={output_root!r}, until={until!r})
'''


KERAS_CHECK_LOG = "Keras flavour in this task process:"


def check_keras_flavour(context: Any = None) -> None:
    """``pre_execute`` of every task: the task process has the project's Keras flavour.

    The DAG file sets ``model.keras_env.KERAS_ENV`` before anything loads TensorFlow, in every
    process that parses it: the scheduler's, ``airflow tasks run`` and
    ``airflow dags test``. This checks that it did, in the process about to run the component, and
    fails the task (before the component runs) if ``tf.keras`` is not tf_keras there."""
    import logging
    import os

    from model.keras_env import KERAS_ENV

    env = {k: os.environ.get(k) for k in KERAS_ENV}
    import tensorflow as tf
    import tf_keras

    legacy = tf.keras.Model is tf_keras.Model
    logging.getLogger("airflow.task").info("%s %s, tf.keras is %s", KERAS_CHECK_LOG,
                                           " ".join(f"{k}={v}" for k, v in env.items()),
                                           f"tf_keras {tf_keras.__version__}" if legacy else "Keras 3")
    if env != KERAS_ENV or not legacy:
        raise RuntimeError(f"Airflow task process without the project's Keras flavour ({env}, tf.keras "
                           f"{'is' if legacy else 'is not'} tf_keras): the DAG file must "
                           "set KERAS_ENV before TensorFlow is loaded (see model/keras_env.py)")


def dag_config(settings: AirflowSettings | None) -> dict[str, Any]:
    """Keyword arguments of Airflow's DAG from ``runner.airflow`` (defaults: daily, no catch-up)."""
    s = settings or AirflowSettings()
    return {
        "schedule": s.schedule,
        "start_date": datetime.fromisoformat(s.start_date),
        "catchup": s.catchup,
        "default_args": {"retries": s.retries, "retry_delay": timedelta(minutes=5),
                         "pre_execute": check_keras_flavour},
        "max_active_runs": 1,  # runs of one pipeline share its MLMD and pipeline root
        "tags": ["tfx"],
    }


def build_dag(config: str | Path, output_root: str | Path | None = None, until: str | None = None) -> Any:
    """The Airflow DAG of ``config``'s pipeline (up to ``until``)."""
    from tfx.orchestration.airflow.airflow_dag_runner import AirflowDagRunner, AirflowPipelineConfig

    import beam_local
    from pipeline.pipeline_def import create_pipeline

    beam_local.install()  # the task processes that run the components parse this DAG
    cfg = load_config(config, output_root=output_root, check_data=False)  # parse fast; runs check data
    pipeline = create_pipeline(cfg, until)
    return AirflowDagRunner(AirflowPipelineConfig(airflow_dag_config=dag_config(cfg.runner.airflow))).run(pipeline)


def write_dag_file(cfg: PipelineConfig, output: Path, until: str | None = None) -> Path:
    """Write the DAG file for ``cfg`` (its config path and output root are absolute in it)."""
    if output.suffix != ".py":
        raise ValueError(f"--output {output}: an Airflow DAG file is a .py file")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(_DAG_FILE.format(name=cfg.name, config=str(cfg.path.resolve()), root=str(ROOT),
                                       output_root=str(cfg.output_root), until=until))
    return output
