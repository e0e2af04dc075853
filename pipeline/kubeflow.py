"""Kubeflow Pipelines: compile a pipeline config into a KFP v2 pipeline spec and submit it.

The pipeline is the one ``create_pipeline`` builds for the local runners, compiled by TFX's
``KubeflowV2DagRunner``. Four differences are needed for KFP, all made here:

- Paths: the spec is written as the container sees it. Paths under this checkout (data,
  schema, module files) become paths under ``image_root`` (where ``kubeflow/Dockerfile``
  puts the project), and outputs go under ``output_root`` (a bucket, or a mounted volume).
- Module files are not packaged into a wheel under the pipeline root at compile time
  (TFX's default): the image already holds them at ``image_root/modules``.
- Resolvers: KFP v2 runs only TFX's LatestBlessedModelStrategy / LatestArtifactStrategy
  resolvers. The baseline resolver becomes LatestBlessedModelStrategy (it resolves before the
  candidate is blessed, so it is still the previous blessed model); the drift gate's span
  resolvers have no KFP form, so a config with ``drift`` is refused with that reason.
- Custom artifact types are named ``pipeline.<Class>`` in the spec (KFP's title format is
  ``module.Class``; the container imports the class from that path, see
  ``pipeline.__getattr__``). Their MLMD type names stay as in local runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from pipeline.config import PipelineConfig
from pipeline.config.orchestration import pin_local_runner

ROOT = Path(__file__).resolve().parent.parent
IMAGE_ROOT = "/pipeline"  # WORKDIR of kubeflow/Dockerfile
# Custom artifact classes the container imports as pipeline.<name> (see pipeline/__init__.py).
CUSTOM_ARTIFACTS = {
    "CleaningReport": "components.data_cleaner.component",
    "FeatureScores": "components.feature_selector.component",
    "DriftReport": "components.drift_skew_gate.component",
    "VariantTable": "components.variant_comparison.component",
    "ModelCard": "components.model_card_generator.component",
}


class KubeflowError(ValueError):
    """The pipeline cannot be compiled or submitted as asked; the message says why."""


@dataclass(frozen=True)
class KubeflowOptions:
    image: str = "tfx-reference-pipeline:latest"
    output_root: str = f"{IMAGE_ROOT}/outputs"  # e.g. gs://bucket/tfx or a mounted volume
    image_root: str = IMAGE_ROOT
    beam_args: tuple[str, ...] | None = None  # None: the config's runner.beam_args


def _kfp_compatible(pipeline: Any) -> None:
    """Swap the baseline resolver for the KFP-supported LatestBlessedModelStrategy (in place)."""
    from tfx import v1 as tfx
    from tfx.dsl.components.common import resolver

    from pipeline.baseline import PreviousBlessedModelStrategy
    from pipeline.pipeline_def import trained_model_blessings

    for node in pipeline.components:
        if not isinstance(node, resolver.Resolver):
            continue
        if node._strategy_class is PreviousBlessedModelStrategy:
            node_id = node.id
            # Re-initialised in place: Evaluator's channel points at this node and its 'model' key.
            resolver.Resolver.__init__(
                node, strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
                model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
                model_blessing=trained_model_blessings())
            node.with_id(node_id)
        else:
            raise KubeflowError(f"resolver '{node.id}' ({node._strategy_class.__name__}) has no Kubeflow "
                                "Pipelines v2 form (KFP runs only TFX's LatestArtifact/LatestBlessedModel "
                                "resolvers): drift gates need the local or beam engine")


@contextlib.contextmanager
def _compile_context() -> Iterator[None]:
    """Module files stay plain paths (the image has them); custom types get KFP schema titles."""
    from tfx.orchestration.kubeflow.v2 import compiler_utils

    original = compiler_utils.get_artifact_schema

    def schema(artifact_type: Any) -> str:
        name = getattr(artifact_type, "TYPE_NAME", "")
        if name in CUSTOM_ARTIFACTS:
            template = Path(compiler_utils.__file__).parent / "artifact_types" / "Artifact.yaml"
            data = yaml.safe_load(template.read_text())
            data["title"] = f"pipeline.{name}"
            return yaml.dump(data, sort_keys=False)
        return original(artifact_type)

    key = "UNSUPPORTED_DO_NOT_PACKAGE_USER_MODULES"
    previous = os.environ.get(key)
    os.environ[key] = "1"
    compiler_utils.get_artifact_schema = schema
    try:
        yield
    finally:
        compiler_utils.get_artifact_schema = original
        if previous is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = previous


def kfp_pipeline(cfg: PipelineConfig, until: str | None = None) -> Any:
    """``create_pipeline(cfg)`` as compiled for KFP: KFP-supported resolvers, module files as paths."""
    from pipeline.pipeline_def import create_pipeline

    with _compile_context():
        # TFX's KFP v2 step builder rejects InfraValidator ("not supported"): in a cluster the
        # deployment's own readiness probe on real TF Serving plays its part.
        pipeline = create_pipeline(cfg, until, infra_validation=False)
        _kfp_compatible(pipeline)
    return pipeline


def pipeline_spec(cfg: PipelineConfig, options: KubeflowOptions = KubeflowOptions(),
                  until: str | None = None) -> dict[str, Any]:
    """The KFP v2 PipelineSpec (as a dict) of ``cfg``'s pipeline, paths as the container sees them."""
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as kfp_v2

    if cfg.drift is not None:
        raise KubeflowError(f"{cfg.path}: drift: the drift gate's span resolvers have no Kubeflow Pipelines "
                            "v2 form (KFP runs only TFX's LatestArtifact/LatestBlessedModel resolvers); "
                            "run drift-gated configs with the local or beam engine")
    runner = (cfg.runner if options.beam_args is None
              else replace(cfg.runner, beam_args=pin_local_runner(options.beam_args)))
    # Built with outputs under a unique temp path (compiling may create folders there), then renamed.
    with tempfile.TemporaryDirectory(prefix="kfp_output_root_") as sentinel:
        cfg = replace(cfg, output_root=Path(sentinel), runner=runner)
        with _compile_context():
            pipeline = kfp_pipeline(cfg, until)
            runner_config = kfp_v2.KubeflowV2DagRunnerConfig(default_image=options.image)
            job = kfp_v2.KubeflowV2DagRunner(runner_config).run(pipeline, write_out=False)
        text = json.dumps(job["pipelineSpec"])
        # Checkout paths -> image paths; outputs -> output_root (JSON-escaped '/' is plain '/').
        text = text.replace(sentinel, options.output_root.rstrip("/")).replace(str(ROOT), options.image_root)
    spec = json.loads(text)
    spec["defaultPipelineRoot"] = f"{options.output_root.rstrip('/')}/{cfg.name}/pipeline_root"
    return spec


def compile_pipeline(cfg: PipelineConfig, output: Path, options: KubeflowOptions = KubeflowOptions(),
                     until: str | None = None) -> Path:
    """Write the KFP v2 pipeline spec YAML (what ``kfp.Client`` uploads and kfp's loaders read)."""
    spec = pipeline_spec(cfg, options, until)
    output.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# KFP v2 pipeline spec of {cfg.path.name} ('{cfg.name}'), compiled by TFX's KubeflowV2DagRunner\n"
              f"# (python -m pipeline compile --engine kubeflow); image {options.image}\n")
    output.write_text(header + yaml.safe_dump(spec, sort_keys=False))
    return output


def kfp_cron(expression: str) -> str:
    """KFP schedules take 6-field cron (seconds first); a 5-field crontab gets '0' seconds."""
    fields = expression.split()
    if len(fields) == 5:
        return "0 " + " ".join(fields)
    if len(fields) == 6:
        return " ".join(fields)
    raise KubeflowError(f"--schedule '{expression}': a cron expression has 5 fields "
                        "(minute hour day month weekday) or 6 (seconds first)")


def submit(package: Path, host: str, experiment: str, run_name: str, schedule: str | None = None,
           namespace: str | None = None) -> str:
    """Upload ``package`` to KFP at ``host`` as a run (or a recurring run when ``schedule`` is a
    cron expression) in ``experiment``; returns the run or recurring-run id."""
    import kfp

    if not package.is_file():
        raise KubeflowError(f"{package}: no such pipeline package (compile it first)")
    cron = kfp_cron(schedule) if schedule else None
    try:
        client = kfp.Client(host=host, namespace=namespace)  # checks the API's health first
        exp = client.create_experiment(name=experiment, namespace=namespace)  # returns it if it exists
        if cron:
            job = client.create_recurring_run(experiment_id=exp.experiment_id, job_name=run_name,
                                              cron_expression=cron, pipeline_package_path=str(package))
            return job.recurring_run_id
        result = client.create_run_from_pipeline_package(str(package), arguments={}, run_name=run_name,
                                                         experiment_name=experiment, namespace=namespace)
        return result.run_id
    except Exception as exc:  # kfp raises urllib3/ApiException types; the message is what matters
        raise KubeflowError(f"Kubeflow Pipelines at {host}: {type(exc).__name__}: {exc}") from exc
