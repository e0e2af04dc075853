"""Read the parameters Transform fitted (means, quantiles, λ, ...) out of its transform graph.

``feature_steps`` passes every fitted parameter through an Identity op named
``fitted__<feature>__<step>__<key>``. In the saved ``transform_fn`` those ops are fed by
constants that tf.Transform captured after analysis; this module evaluates exactly those ops
(nothing is re-fitted), so the on-device preprocessing and the served regression target's
inverse use Transform's own numbers.
Vocabularies are read from Transform's vocabulary files.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from features.feature_steps import FITTED_PREFIX


def _transform_function(transform_savedmodel_dir: str) -> Any:
    loaded = tf.saved_model.load(transform_savedmodel_dir)
    fn = getattr(loaded, "transform_fn", None)
    if fn is None or not hasattr(fn, "graph"):
        raise ValueError(f"{transform_savedmodel_dir}: not a TF2 tf.Transform graph (no transform_fn); "
                         "run Transform with force_tf_compat_v1=False")
    return loaded, fn


def fitted_values(transform_savedmodel_dir: str) -> dict[tuple[str, int, str], np.ndarray]:
    """{(feature, step index, key): value} for every named fitted parameter in the graph."""
    _, fn = _transform_function(transform_savedmodel_dir)
    graph = fn.graph
    names = {}
    for op in graph.get_operations():
        base = op.name.rsplit("/", 1)[-1]
        if op.type == "Identity" and base.startswith(FITTED_PREFIX):
            feature, step, key = base[len(FITTED_PREFIX):].rsplit("__", 2)
            names[op.name] = (feature, int(step), key)
    if not names:
        return {}
    graph_def = graph.as_graph_def()
    sub = tf.compat.v1.graph_util.extract_sub_graph(graph_def, list(names))
    needed = {n.name for n in sub.node}
    # Captured analyzer results enter the function as placeholders; feed their values.
    feeds = {}
    for external, internal in zip(fn.graph.external_captures, fn.graph.internal_captures, strict=True):
        if internal.op.name in needed:
            if external.dtype == tf.resource:
                raise ValueError(f"fitted parameter depends on a resource ({internal.op.name}); "
                                 "only constant-derived parameters can be named fitted__")
            feeds[internal.op.name] = np.asarray(external.numpy())
    inputs = {n.name for n in sub.node if n.op == "Placeholder"} - set(feeds)
    if inputs:
        raise ValueError(f"fitted parameters depend on the data inputs {sorted(inputs)}: not constants")
    with tf.Graph().as_default() as g:
        placeholders = {name: tf.constant(value) for name, value in feeds.items()}
        tf.import_graph_def(sub, input_map={f"{k}:0": v for k, v in placeholders.items()}, name="")
        with tf.compat.v1.Session(graph=g) as session:
            values = session.run([f"{n}:0" for n in names])
    return {names[n]: np.asarray(v) for n, v in zip(names, values, strict=True)}
