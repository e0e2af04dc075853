"""Kubeflow Pipelines: every config compiles (CLI) into a v2 spec that kfp's own loaders accept,
with every component, its image, its executor and the DAG edges of the TFX pipeline."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format

from pipeline.config import load_config
from tests.conftest import ROOT, TAXI_CONFIG, cli_in_process, derived_config, run_cli

CONFIGS = sorted((ROOT / "pipeline" / "configs").glob("*/pipeline.yaml"))
IMAGE = "registry.example.com/ml/tfx-reference-pipeline:1.0"
OUTPUT_ROOT = "gs://example-bucket/tfx"
V2_ENTRYPOINT = ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]
# A Resolver of LatestBlessedModelStrategy compiles into two resolver tasks.
RESOLVER_TASKS = ("-model-resolver", "-model-blessing-resolver")


def expected_dag(config: Path) -> dict[str, tuple[str | None, set[str]]]:
    """node id -> (executor class path or None for resolvers, upstream node ids) of the TFX pipeline."""
    from tfx.dsl.components.base import base_component

    from pipeline.kubeflow import kfp_pipeline
    from pipeline.pipeline_def import create_pipeline

    cfg = load_config(config)
    pipeline = kfp_pipeline(cfg)
    local = create_pipeline(cfg)
    # The KFP form differs from the local one only in the baseline resolver (resolved before Trainer)
    # and in having no InfraValidator (KFP v2 cannot compile it), which the Pusher then does not wait for.
    assert [n.id for n in pipeline.components] == [n.id for n in local.components if n.id != "InfraValidator"]
    local_nodes = {n.id: n for n in local.components}
    changed = {a.id for a in pipeline.components
               if {u.id for u in a.upstream_nodes} != {u.id for u in local_nodes[a.id].upstream_nodes}}
    assert changed <= {"baseline_model_resolver", "Pusher"}
    dag = {}
    for node in pipeline.components:
        executor = None
        if isinstance(node, base_component.BaseComponent):
            cls = node.executor_spec.executor_class
            executor = f"{cls.__module__}.{cls.__qualname__}"
        dag[node.id] = (executor, {u.id for u in node.upstream_nodes})
    return dag


def task_node(task: str) -> str:
    for suffix in RESOLVER_TASKS:
        if task.endswith(suffix):
            return task[: -len(suffix)]
    return task


@pytest.mark.parametrize("config", CONFIGS, ids=[c.parent.name for c in CONFIGS])
def test_compile_every_config_loads_in_kfp(config: Path, tmp_path: Path) -> None:
    from kfp.client.client import _extract_pipeline_yaml
    from kfp.components import load_component_from_file
    from kfp.pipeline_spec import pipeline_spec_pb2

    out = tmp_path / "spec.yaml"
    # The shipped taxi config through the real entry point (a process); the others in this process.
    compile_ = run_cli if config.parent.name == "taxi" else cli_in_process
    proc = compile_("compile", "--config", str(config), "--engine", "kubeflow", "--output", str(out),
                    "--image", IMAGE, "--pipeline-output-root", OUTPUT_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]

    # kfp's loaders: the component loader and the one kfp.Client uploads with (strict proto parse).
    component = load_component_from_file(str(out))
    cfg = load_config(config)
    assert component.name == cfg.name
    doc = _extract_pipeline_yaml(str(out))
    strict = json_format.ParseDict(yaml.safe_load(out.read_text()), pipeline_spec_pb2.PipelineSpec())
    assert strict == doc.pipeline_spec
    spec = json_format.MessageToDict(doc.pipeline_spec)

    assert spec["defaultPipelineRoot"] == f"{OUTPUT_ROOT}/{cfg.name}/pipeline_root"
    tasks = spec["root"]["dag"]["tasks"]
    executors = spec["deploymentSpec"]["executors"]
    dag = expected_dag(config)
    assert {task_node(t) for t in tasks} == set(dag), "every component and resolver is a task"

    for name, task in tasks.items():
        node = task_node(name)
        executor_class, upstream = dag[node]
        # Edges: a task waits for exactly its TFX upstream nodes (resolver halves stand for their node).
        assert {task_node(t) for t in task.get("dependentTasks", [])} == upstream, name
        label = spec["components"][task["componentRef"]["name"]]["executorLabel"]
        if executor_class is None:
            assert "resolver" in executors[label], name
            continue
        container = executors[label]["container"]
        assert container["image"] == IMAGE, name
        assert container["command"] == V2_ENTRYPOINT, name
        args = container["args"]
        assert args[args.index("--executor_class_path") + 1] == executor_class, name
        assert [a for a in args if a.startswith(("--direct", "--runner"))] == list(cfg.runner.beam_args), name

    # Paths are the container's: nothing from this checkout, module files and data under the image root.
    text = out.read_text()
    assert str(ROOT) not in text
    image_paths = set(re.findall(r"/pipeline/[\w./-]+", text))
    assert any(p.endswith("/modules/preprocessing.py") for p in image_paths)
    for p in image_paths:
        assert (ROOT / p.removeprefix("/pipeline/")).exists(), f"{p} is not in the image (nor the repo)"
    assert f"{OUTPUT_ROOT}/{cfg.name}/pushed/serving" in text
    # Custom artifact types carry an importable 'module.Class' title (what the container imports).
    titles = set(re.findall(r"title: (pipeline\.\w+)", text))
    assert "pipeline.CleaningReport" in titles
    from tfx.utils import import_utils

    for title in titles:
        assert import_utils.import_class_by_path(title).TYPE_NAME == title.split(".")[1]


def test_dockerfile_matches_the_compiled_spec() -> None:
    import tfx

    from pipeline import kubeflow

    text = (ROOT / "kubeflow" / "Dockerfile").read_text()
    assert re.search(r"^FROM gcr\.io/tfx-oss-public/tfx:(\S+)$", text, re.M).group(1) == tfx.__version__
    assert f"WORKDIR {kubeflow.IMAGE_ROOT}" in text
    for src in re.findall(r"^COPY (.+) \./", text, re.M):
        for part in src.split():
            assert (ROOT / part).exists(), f"Dockerfile copies {part}, which does not exist"
    copied = " ".join(re.findall(r"^COPY (.+) \./", text, re.M)).split()
    # every package setup.py installs (the image installs the copied tree), and the data
    packages = {p.split(".")[0] for p in re.findall(r'"([a-z_]+(?:\.\*)?)"', re.search(
        r"include=\[(.*?)\]", (ROOT / "setup.py").read_text(), re.S).group(1))}
    assert {"beam_local", "pipeline", "components", "modules"} <= packages
    for needed in (*packages, "data", "setup.py", "constraints.txt"):
        assert needed in copied, f"kubeflow/Dockerfile does not copy {needed}"


def test_beam_args_given_at_compile_run_on_the_local_runner(tmp_path: Path) -> None:
    """``--beam-arg`` without a runner (or DirectRunner) compiles to the pinned local runner, as
    ``run`` does: the container's Beam jobs never try to download Prism (beam_local/__init__.py)."""
    from beam_local import LOCAL_RUNNER

    out = tmp_path / "spec.yaml"
    proc = cli_in_process("compile", "--config", str(TAXI_CONFIG), "--engine", "kubeflow", "--output", str(out),
                          "--image", IMAGE, "--beam-arg=--direct_num_workers=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    args = re.findall(r"- --(?:runner|direct_num_workers)=\S+", out.read_text())
    assert args and set(args) == {f"- --runner={LOCAL_RUNNER}", "- --direct_num_workers=1"}, args


def test_drift_config_is_refused_with_reason(tmp_path: Path, taxi_sample_dir: Path) -> None:
    from tests.conftest import read_taxi_rows, write_csv

    header, rows = read_taxi_rows()
    write_csv(tmp_path / "data" / "span-201901" / "data.csv", header, rows[:50])
    config = derived_config(tmp_path, tmp_path / "data", data={"span_pattern": "span-{SPAN}/*.csv"},
                            drift={"categorical_linf": 0.3})
    proc = cli_in_process("compile", "--config", str(config), "--engine", "kubeflow", "--output",
                          str(tmp_path / "x.yaml"))
    assert proc.returncode == 2
    assert "drift" in proc.stderr and "Kubeflow Pipelines" in proc.stderr


def test_submit_names_the_unreachable_host(tmp_path: Path) -> None:
    package = tmp_path / "p.yaml"
    package.write_text("pipelineInfo: {name: x}\n")
    proc = cli_in_process("submit", "--package", str(package), "--host", "http://127.0.0.1:9", "--run-name", "r1",
                          "--schedule", "0 3 * * *")
    assert proc.returncode == 1
    assert "Kubeflow Pipelines at http://127.0.0.1:9" in proc.stderr
    proc = cli_in_process("submit", "--package", str(tmp_path / "missing.yaml"), "--host", "http://h",
                          "--run-name", "r")
    assert proc.returncode == 1 and "missing.yaml: no such pipeline package" in proc.stderr


def test_cron_for_kfp() -> None:
    from pipeline.kubeflow import KubeflowError, kfp_cron

    assert kfp_cron("0 3 * * *") == "0 0 3 * * *"
    assert kfp_cron("30 0 3 * * 1") == "30 0 3 * * 1"
    with pytest.raises(KubeflowError, match="5 fields"):
        kfp_cron("daily")
