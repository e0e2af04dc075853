"""What the model-optimization components share: reading the trained model and the
transformed examples, exporting a variant with the pipeline's serving signatures, and
measuring a model (parameters, sparsity, compressed size).

Every variant is exported exactly like Trainer's model (``model.signatures.export``),
so Evaluator, Pusher and serving treat it the same way: raw features in, the Transform
graph inside.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx.components.trainer.fn_args_utils import DataAccessor
from tfx.components.util import tfxio_utils
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from model import keras_env, signatures, training

STATS_FILE = "variant.json"
# Layers whose weights pruning and quantization act on (tfmot wraps only these here).
PRUNABLE = (keras.layers.Dense, keras.layers.Embedding)


def load_model(model_uri: str) -> keras.Model:
    """The Keras model inside a Model artifact's folder (Trainer's or a variant's)."""
    keras_env.require()  # tfmot and TFMA see tf.keras: it must be tf_keras, as the model is
    path = path_utils.serving_model_path(model_uri)
    try:
        loaded = keras.models.load_model(path, compile=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot load a Keras model from {path}: {exc}") from exc
    # Only the layers between inputs and output: the export also tracks the Transform layer
    # on the model (for the signatures), which cloning and pruning must not touch.
    return keras.Model(loaded.inputs, loaded.outputs, name=loaded.name)


@dataclass
class ModelData:
    """Transformed examples as the model's (features, label) batches, as Trainer reads them."""

    custom_config: dict
    tf_transform_output: Any
    examples: Any
    accessor: DataAccessor

    @classmethod
    def of(cls, custom_config: dict, transform_graph: Any, examples: Any) -> ModelData:
        factory = tfxio_utils.get_tf_dataset_factory_from_artifact([examples], [])
        return cls(custom_config, tft.TFTransformOutput(transform_graph.uri), examples,
                   DataAccessor(tf_dataset_factory=factory, record_batch_factory=None, data_view_decode_fn=None))

    @property
    def outputs(self) -> list:
        return training.model_outputs(self.custom_config, self.tf_transform_output)

    @property
    def label(self) -> str:
        return self.custom_config["label"]["name"]

    @property
    def task(self) -> str:
        return self.custom_config["label"]["task"]

    @property
    def head(self) -> Any:
        return training.model_head(self.custom_config, self.tf_transform_output)

    def dataset(self, split: str, batch_size: int) -> tf.data.Dataset:
        """An endless shuffled stream of batches of ``split`` (which Transform must have materialized)."""
        splits = artifact_utils.decode_split_names(self.examples.split_names)
        if split not in splits:
            raise ValueError(f"transformed examples {self.examples.uri} have no '{split}' split (have {splits})")
        files = [io_utils.all_files_pattern(artifact_utils.get_split_uri([self.examples], split))]
        return training.input_fn(files, self.accessor, self.tf_transform_output, self.label, batch_size,
                                 self.outputs)


def export(model: keras.Model, data: ModelData, model_artifact: Any, stats: dict[str, Any]) -> str:
    """Save ``model`` with the serving signatures into the Model artifact, and its stats beside."""
    path = path_utils.serving_model_dir(model_artifact.uri)
    signatures.export(model, data.tf_transform_output, data.custom_config, data.outputs, path)
    with tf.io.gfile.GFile(os.path.join(model_artifact.uri, STATS_FILE), "w") as fh:
        json.dump(stats, fh, indent=1, sort_keys=True)
    for key, value in stats.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            model_artifact.set_float_custom_property(key, float(value))
    return path


def read_stats(model_artifact_uri: str) -> dict[str, Any]:
    path = os.path.join(model_artifact_uri, STATS_FILE)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as fh:
        return json.load(fh)


def _weights(layer: keras.layers.Layer) -> list[np.ndarray]:
    """The prunable weights of a layer: kernels and embedding tables, not biases."""
    return [w.numpy() for w in layer.weights if "kernel" in w.name or "embeddings" in w.name]


def sparsity(model: keras.Model, layers: list[str] | None = None) -> dict[str, float]:
    """Fraction of exact zeros in each prunable layer's kernel/embedding table (or only in
    ``layers``), and overall."""
    per_layer, zeros, total = {}, 0, 0
    for layer in model.layers:
        chosen = isinstance(layer, PRUNABLE) if layers is None else layer.name in layers
        arrays = _weights(layer) if chosen else []
        if arrays:
            z, n = sum(int((a == 0).sum()) for a in arrays), sum(a.size for a in arrays)
            per_layer[layer.name] = z / n
            zeros, total = zeros + z, total + n
    return {**per_layer, "overall": zeros / total if total else 0.0}


def gzip_size(model: keras.Model) -> int:
    """Bytes of the model's weights (float32) after gzip: how well it compresses for download,
    the measure pruning is meant to shrink."""
    raw = b"".join(np.asarray(w, dtype=np.float32).tobytes() for w in model.get_weights())
    return len(gzip.compress(raw, compresslevel=9))


def measure(model: keras.Model) -> dict[str, Any]:
    return {"parameters": int(model.count_params()), "weights_gzip_bytes": gzip_size(model),
            "sparsity": sparsity(model)["overall"]}


def compile_for_task(model: keras.Model, data: ModelData, learning_rate: float) -> None:
    """Compile a variant for fine-tuning with the trained model's loss and metrics."""
    training.compile_model(model, data.head, learning_rate)


def parse_config(config_json: str, component: str, required: tuple[str, ...]) -> dict[str, Any]:
    """A component's JSON parameter, with the keys it needs (named in the error when absent)."""
    try:
        config = json.loads(config_json)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{component}: config is not valid JSON: {exc}") from None
    missing = [k for k in ("custom_config", *required) if k not in config]
    if missing:
        raise ValueError(f"{component}: config lacks {', '.join(missing)}")
    return config
