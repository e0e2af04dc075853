"""ImageExampleGen: TFX's FileBasedExampleGen with an executor that reads image files.

Labels come from sub-folder names (``<input_base>/<label>/<file>``) or from a CSV manifest
``path,label`` in ``input_base``. Splits are TFX's (hash buckets of the serialized example),
spans and versions as for any FileBasedExampleGen.
"""

from __future__ import annotations

from collections.abc import Sequence

from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2, range_config_pb2

from components.csv_example_gen.component import pack_custom_config
from components.image_example_gen import executor

COMPONENT_ID = "ImageExampleGen"
FOLDER_PATTERN = "*/*"  # <label>/<file>: the files the driver fingerprints and the executor reads


def ImageExampleGen(input_base: str, manifest: str | None = None,
                    output_config: example_gen_pb2.Output | None = None,
                    range_config: range_config_pb2.RangeConfig | None = None,
                    extensions: Sequence[str] = executor.EXTENSIONS) -> FileBasedExampleGen:
    """``manifest``: a CSV ``path,label`` file name in ``input_base`` (paths relative to it); None:
    every image ``<input_base>/<label>/<file>`` with one of ``extensions``."""
    pattern = manifest or FOLDER_PATTERN
    params = {"labels": "manifest" if manifest else "folders", "extensions": [e.lower() for e in extensions]}
    return FileBasedExampleGen(
        input_base=input_base,
        input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="single_split",
                                                                               pattern=pattern)]),
        output_config=output_config,
        range_config=range_config,
        custom_config=pack_custom_config(params),
        custom_executor_spec=executor_spec.BeamExecutorSpec(executor.Executor),
    ).with_id(COMPONENT_ID)
