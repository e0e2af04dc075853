"""Command line: ``python -m pipeline <command>`` (alias: ``tfx-pipeline``)."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from csvio.reader import CsvFormatError
from model import keras_env
from pipeline.config import ConfigError, PipelineConfig, load_config

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "taxi" / "pipeline.yaml"


def _load(args: argparse.Namespace) -> PipelineConfig:
    cfg = load_config(args.config, output_root=args.output_root)
    for note in cfg.notes:
        print(f"note: {note}", file=sys.stderr)
    return cfg


def cmd_validate(args: argparse.Namespace) -> int:
    cfg = _load(args)
    print(f"{cfg.path}: OK ({len(cfg.features)} features, label '{cfg.label.name}', "
          f"data {cfg.data_dir}, outputs {cfg.output_dir})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _load(args)  # config and data errors first, before TensorFlow loads
    from pipeline import runners

    cfg = runners.with_runner(cfg, args.engine, args.beam_arg)
    log_file = runners.new_log_file(cfg)
    try:
        with runners.run_lock(cfg, log_file):  # held until the summary is written
            return _run_locked(args, cfg, log_file)
    except runners.RunLocked as exc:  # raised before MLMD, the pipeline root or a log file is touched
        print(f"error: {exc}", file=sys.stderr)
        return 3


def _run_locked(args: argparse.Namespace, cfg: PipelineConfig, log_file: Path) -> int:
    from pipeline import runners

    # From here TensorFlow's C++ logs and TFX's wheel builds (fds 1/2) go to the log file; the
    # console gets the progress, the summary and errors.
    with runners.console_to_log(log_file) as console:
        from pipeline import summary
        from pipeline.pipeline_def import create_pipeline

        ids = [c.id for c in create_pipeline(cfg).components]  # topological order
        if args.until is not None and args.until not in ids:
            print(f"error: --until {args.until}: no such component; components: {', '.join(ids)}",
                  file=console.err)
            return 2
        from pipeline.metadata_cli import snapshot_after_run

        since = time.time()  # the runs made from here on get a config snapshot (for `compare`)
        try:
            runners.run(cfg, out=console.out, until=args.until, log_file=log_file)
        except runners.PipelineFailed as exc:
            print(f"\nERROR: {exc}", file=console.err)
            from pipeline import notify  # the config's webhook, if any (never raises)

            notify.run_failed(cfg, exc.component, exc.cause, log_file, console.err)
            return 1
        finally:
            snapshot_after_run(cfg, since)
        node_ids = ids[: ids.index(args.until) + 1] if args.until else ids
        result = summary.summarize(cfg, node_ids)
        report = cfg.output_dir / "report"
        report.mkdir(parents=True, exist_ok=True)
        (report / "summary.json").write_text(result.to_json())
        pictures = summary.write_pictures(cfg, report)
        from pipeline.report.page import write_report

        try:  # index.html: the whole run on one page; a report that cannot be drawn does not fail the run
            page: Path | str = write_report(cfg, result, node_ids, report, pictures)
        except Exception as exc:  # any reader error: the run itself succeeded
            page = f"{report} (no index.html: {type(exc).__name__}: {exc})"
            print(f"warning: the run report could not be written: {exc}", file=console.err)
        print("\n" + summary.format_summary(result), file=console.out)
        for picture in pictures:
            print(f"  plot:    {picture}", file=console.out)
        print(f"  report:  {page}", file=console.out)
        print(f"  log:     {log_file}", file=console.out)
        from pipeline import notify  # the config's webhook on a new blessed push (never raises)

        notify.run_finished(cfg, result, log_file, console.err)
    return 0


def cmd_config_schema(args: argparse.Namespace) -> int:
    """The JSON Schema of the pipeline YAML (pipeline/config/model.py), for editors and CI."""
    import json

    from pipeline.config import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
        print(f"wrote {args.output}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """Save the latest SchemaGen output as the reviewed schema of the config."""
    from pipeline.summary import latest_execution, open_store, output_artifacts

    cfg = _load(args)
    # Without a `schema:` key the schema goes beside the config, and the config must then name it.
    target = cfg.schema_path or cfg.path.resolve().parent / "schema.pbtxt"
    if target.exists() and not args.overwrite:
        print(f"{target} exists; pass --overwrite to replace it", file=sys.stderr)
        return 1
    store = open_store(cfg) if cfg.metadata_path.exists() else None
    execution = store and latest_execution(store, cfg.name, "SchemaGen")
    if not execution:
        print("no SchemaGen run found: run the pipeline once without a schema file", file=sys.stderr)
        return 1
    (artifact,) = output_artifacts(store, execution.id)
    shutil.copyfile(Path(artifact.uri) / "schema.pbtxt", target)
    print(f"saved {target} from {artifact.uri}; review it and commit it")
    if cfg.schema_path is None:
        print(f"add `schema: {target.name}` to {cfg.path} so runs import it")
    return 0


def cmd_spans(args: argparse.Namespace) -> int:
    """Split a CSV into monthly span folders for incremental runs (data.span_pattern)."""
    from pipeline.datasets import write_monthly_spans

    try:
        folders = write_monthly_spans(args.csv, args.out, args.timestamp_column)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(folders)} spans to {args.out} ({folders[0].name} .. {folders[-1].name})")
    return 0


def cmd_resample(args: argparse.Namespace) -> int:
    """Write a bigger (or smaller) taxi-like CSV by resampling real rows with noise."""
    from pipeline.datasets import resample

    try:
        path = resample(args.csv, args.out, args.factor, seed=args.seed)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    """Compile the config's pipeline for Kubeflow Pipelines (v2 spec YAML) or Airflow (a DAG file)."""
    cfg = _load(args)
    try:
        if args.engine == "kubeflow":
            from pipeline import kubeflow

            options = kubeflow.KubeflowOptions(image=args.image, output_root=args.pipeline_output_root,
                                               beam_args=tuple(args.beam_arg) if args.beam_arg else None)
            path = kubeflow.compile_pipeline(cfg, args.output, options, until=args.until)
        else:
            from pipeline import airflow_dag

            path = airflow_dag.write_dag_file(cfg, args.output, until=args.until)
    except (ValueError, OSError) as exc:  # KubeflowError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({args.engine})")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    """Submit a compiled pipeline spec to Kubeflow Pipelines: one run, or a recurring run by cron."""
    from pipeline import kubeflow

    try:
        run_id = kubeflow.submit(args.package, args.host, args.experiment, args.run_name, args.schedule,
                                 args.namespace)
    except kubeflow.KubeflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    kind = "recurring run" if args.schedule else "run"
    print(f"submitted {kind} {run_id} of {args.package} to {args.host} (experiment '{args.experiment}')")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """TF Serving-compatible model server; the flags are tensorflow_model_server's."""
    from serving.server import serve

    return serve(args.flags)


def cmd_predict(args: argparse.Namespace) -> int:
    from serving.client import predict_command

    return predict_command(args.csv, args.server, args.grpc, args.model_name, args.signature, args.batch_size,
                           args.out)


# ---- ML Metadata for people (issue 17): runs, lineage, compare (pipeline/metadata_cli.py) ----
def cmd_runs(args: argparse.Namespace) -> int:
    from pipeline import metadata_cli

    return metadata_cli.cmd_runs(_load(args), args.json)


def cmd_lineage(args: argparse.Namespace) -> int:
    from pipeline import metadata_cli

    return metadata_cli.cmd_lineage(_load(args), args.target, args.json)


def cmd_compare(args: argparse.Namespace) -> int:
    from pipeline import metadata_cli

    return metadata_cli.cmd_compare(_load(args), args.run_a, args.run_b, args.json)


def add_metadata_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("runs", parents=[common], help="every run in ML Metadata: time, status, metrics, pushes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_runs)
    p = sub.add_parser("lineage", parents=[common], help="a pushed model (or artifact id) back to its CSV files")
    p.add_argument("target", help="a pushed model folder (pushed/<target>/<version>) or an MLMD artifact id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_lineage)
    p = sub.add_parser("compare", parents=[common], help="two runs side by side: metrics, config, data statistics")
    p.add_argument("run_a", help="a run id from `runs`, `latest` or `latest-blessed`")
    p.add_argument("run_b", help="a run id from `runs`, `latest` or `latest-blessed`")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_compare)
# ---- end of the ML Metadata commands ----


def cmd_registry(args: argparse.Namespace) -> int:
    """models / promote / rollback: pushed versions and their labels (pipeline/registry.py)."""
    from pipeline import registry

    cfg = _load(args)
    base, name = cfg.pushed_dir(args.target), args.model_name or cfg.name
    has_store = cfg.runner.mysql is not None or cfg.metadata_path.exists()
    try:
        if args.command == "models":
            from pipeline.summary import open_store

            recorded = registry.recorded_pushes(open_store(cfg), base) if has_store else {}
            infos = registry.list_versions(base, recorded)
            if args.json:
                print(registry.to_json(infos))
            elif not infos:
                print(f"no pushed versions in {base}")
            else:
                from features.task import PRIMARY

                print(f"{name}: {base}")
                print(registry.format_versions(infos, (PRIMARY[cfg.label.task],)))
            return 0
        if args.command == "promote":
            from pipeline.summary import open_store

            recorded = registry.recorded_pushes(open_store(cfg), base, with_metrics=False) if has_store else {}
            info = recorded.get(args.version)
            outcome = registry.promote(base, name, args.version, args.label, blessed=info.blessed if info else None,
                                       force=args.force, server=args.server, wait=not args.no_wait,
                                       timeout=args.timeout)
        else:
            outcome = registry.rollback(base, name, args.label, server=args.server, wait=not args.no_wait,
                                        timeout=args.timeout)
    except registry.RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{outcome.message} ({base / registry.CONFIG_NAME})")
    return 0 if outcome.done else 4  # 4: staged; run again once the server has loaded the version


def main(argv: list[str] | None = None) -> int:
    keras_env.apply()  # the console script's entry (tfx-pipeline): before any command loads TensorFlow
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="pipeline YAML")
    common.add_argument("--output-root", type=Path, default=None,
                        help="where <pipeline>/ outputs go (default: ./outputs)")
    p = sub.add_parser("run", parents=[common], help="run the pipeline end to end")
    p.add_argument("--engine", choices=["local", "beam"], default=None,
                   help="orchestrator (default: the config's runner.engine)")
    p.add_argument("--beam-arg", action="append", default=None, metavar="--FLAG=VALUE",
                   help="Beam pipeline argument; repeat for several (replaces the config's)")
    p.add_argument("--until", default=None, metavar="COMPONENT",
                   help="run only the components up to this one (e.g. Transform)")
    p.set_defaults(fn=cmd_run)
    p = sub.add_parser("validate", parents=[common], help="check a config and its data columns")
    p.set_defaults(fn=cmd_validate)
    p = sub.add_parser("schema", parents=[common], help="save the inferred schema as the reviewed one")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(fn=cmd_schema)
    p = sub.add_parser("config-schema", help="print the JSON Schema of the pipeline YAML (editor completion)")
    p.add_argument("--output", type=Path, default=None, help="write it to this file instead of stdout")
    p.set_defaults(fn=cmd_config_schema)
    p = sub.add_parser("spans", help="split a CSV into monthly span-YYYYMM/ folders")
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--timestamp-column", default="trip_start_timestamp")
    p.set_defaults(fn=cmd_spans)
    p = sub.add_parser("resample", help="resample a CSV to FACTOR times its rows (with noise)")
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--factor", type=float, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_resample)
    p = sub.add_parser("compile", parents=[common],
                       help="compile for Kubeflow Pipelines (v2 spec YAML) or Airflow (DAG file)")
    p.add_argument("--engine", choices=["kubeflow", "airflow"], required=True)
    p.add_argument("--output", type=Path, required=True, help="the spec YAML (kubeflow) or DAG .py (airflow)")
    p.add_argument("--until", default=None, metavar="COMPONENT", help="only the components up to this one")
    p.add_argument("--image", default="tfx-reference-pipeline:latest", help="kubeflow: the pipeline image")
    p.add_argument("--pipeline-output-root", default="/pipeline/outputs",
                   help="kubeflow: where outputs go as the containers see it (gs://..., a mounted volume)")
    p.add_argument("--beam-arg", action="append", default=None, metavar="--FLAG=VALUE",
                   help="kubeflow: Beam argument for the components (replaces the config's)")
    p.set_defaults(fn=cmd_compile)
    p = sub.add_parser("submit", help="submit a compiled spec to Kubeflow Pipelines (kfp.Client)")
    p.add_argument("--package", type=Path, required=True, help="the YAML from compile --engine kubeflow")
    p.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8080")
    p.add_argument("--experiment", default="Default")
    p.add_argument("--run-name", required=True)
    p.add_argument("--schedule", default=None, metavar="CRON",
                   help="make it a recurring run: cron, 5 fields (or 6 with seconds first)")
    p.add_argument("--namespace", default=None, help="multi-user KFP: the profile namespace")
    p.set_defaults(fn=cmd_submit)
    # Serving: flags are passed through untouched (tensorflow_model_server's --flag=value style).
    p = sub.add_parser("serve", add_help=False, prefix_chars="+",
                       help="TF Serving-compatible model server (tensorflow_model_server's flags; serve --help)")
    p.add_argument("flags", nargs=argparse.REMAINDER)
    p.set_defaults(fn=cmd_serve)
    p = sub.add_parser("predict", help="predict CSV rows with a running model server (REST, or --grpc)")
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--server", required=True, metavar="HOST:PORT", help="REST port, or gRPC port with --grpc")
    p.add_argument("--grpc", action="store_true", help="use gRPC (tensorflow-serving-api) instead of REST")
    p.add_argument("--model_name", default="default")
    p.add_argument("--signature", default="serving_raw", help="a signature with one input per CSV column")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--out", type=Path, default=None, help="write predictions here instead of stdout")
    p.set_defaults(fn=cmd_predict)
    add_metadata_commands(sub, common)
    # Registry (pipeline/registry.py): pushed versions, stable / canary labels in pushed/<target>/models.config.
    registry_common = argparse.ArgumentParser(add_help=False, parents=[common])
    registry_common.add_argument("--target", default="serving", help="pushed/<target>/ (default: serving)")
    registry_common.add_argument("--model-name", default=None, help="the server's model name (default: pipeline name)")
    p = sub.add_parser("models", parents=[registry_common], help="pushed versions: labels, blessing, metrics, run")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_registry)
    labels = ("stable", "canary")
    for command, text in (("promote", "point a label at a blessed version (two steps, see docs/registry.md)"),
                          ("rollback", "move a label back to the version it named before")):
        p = sub.add_parser(command, parents=[registry_common], help=text)
        if command == "promote":
            p.add_argument("--version", type=int, required=True)
            p.add_argument("--force", action="store_true", help="promote a version that is not blessed")
        p.add_argument("--label", choices=labels, required=True)
        p.add_argument("--server", default=None, metavar="HOST:REST_PORT",
                       help="wait until the server has loaded the version before moving the label")
        p.add_argument("--no-wait", action="store_true",
                       help="move the label at once (a server allowing labels on unavailable versions)")
        p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the server")
        p.set_defaults(fn=cmd_registry)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except CsvFormatError as exc:  # raised by the config's data check, before any component runs
        print(f"data error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
