"""InfraValidator in a real TFX pipeline (LocalDagRunner, sqlite MLMD): Importer nodes bring in
a real trained model, a copy of it that cannot load (its variables were not pushed) and real
examples; each model goes through InfraValidator (a `python -m pipeline serve` process, queried
by TFX's TensorFlowServingClient with requests built from the eval split) and then Pusher."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ml_metadata.metadata_store import metadata_store
from tfx import v1 as tfx

from components.infra_validator import infra_validator
from tests.serving_fixtures import needs_model, session_model


class _Cfg:  # the two PipelineConfig attributes infra_validator() reads
    name = "infra_validation_test"

    class evaluation:  # noqa: N801
        splits = ("eval",)


@pytest.fixture(scope="module")
def run(tmp_path_factory, pipeline_runs) -> dict:
    model = session_model(pipeline_runs)
    root = tmp_path_factory.mktemp("infra_validator")
    broken = root / "broken_model"
    shutil.copytree(model.model_artifact, broken)
    shutil.rmtree(broken / "Format-Serving" / "variables")  # a half-pushed model: graph without weights
    examples = tfx.dsl.Importer(
        source_uri=str(model.examples), artifact_type=tfx.types.standard_artifacts.Examples,
        properties={"split_names": '["train", "eval", "test"]'}).with_id("import_examples")
    components: list = [examples]
    for name, uri in (("good", model.model_artifact), ("broken", broken)):
        imported = tfx.dsl.Importer(source_uri=str(uri), artifact_type=tfx.types.standard_artifacts.Model
                                    ).with_id(f"import_{name}_model")
        validator = infra_validator(_Cfg, imported.outputs["result"], examples.outputs["result"],
                                    num_examples=8, num_tries=1, max_loading_time_seconds=180
                                    ).with_id(f"InfraValidator_{name}")
        pusher = tfx.components.Pusher(
            model=imported.outputs["result"], infra_blessing=validator.outputs["blessing"],
            push_destination=tfx.proto.PushDestination(filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=str(root / "pushed" / name)))).with_id(f"Pusher_{name}")
        components += [imported, validator, pusher]
    connection = tfx.orchestration.metadata.sqlite_metadata_connection_config(str(root / "metadata.sqlite"))
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name="infra_validator_test", pipeline_root=str(root / "pipeline_root"), components=components,
        enable_cache=False, metadata_connection_config=connection))
    store = metadata_store.MetadataStore(connection)
    blessings = {}
    for artifact in store.get_artifacts_by_type("InfraBlessing"):
        node = Path(artifact.uri).parts[-3]  # <pipeline_root>/<node id>/blessing/<execution id>
        blessings[node] = artifact
    return {"root": root, "blessings": blessings}


@needs_model  # reads the session's serving model (tests/runs.py)
def test_a_model_that_serves_is_blessed_and_pushed(run):
    blessing = run["blessings"]["InfraValidator_good"]
    assert blessing.custom_properties["blessed"].int_value == 1
    assert (Path(blessing.uri) / "INFRA_BLESSED").exists()
    pushed = list((run["root"] / "pushed" / "good").iterdir())
    assert len(pushed) == 1 and (pushed[0] / "saved_model.pb").exists()


@needs_model  # reads the session's serving model (tests/runs.py)
def test_a_model_that_fails_to_load_is_not_blessed_and_not_pushed(run):
    blessing = run["blessings"]["InfraValidator_broken"]
    assert blessing.custom_properties["blessed"].int_value == 0
    assert (Path(blessing.uri) / "INFRA_NOT_BLESSED").exists()
    assert not (run["root"] / "pushed" / "broken").exists() or not any((run["root"] / "pushed" / "broken").iterdir())
