"""The TFX pipeline package: config, pipeline definition, runners and CLI.

Importing it sets nothing and loads no TensorFlow: the Keras flavour is the process entry's
(``python -m pipeline``, ``pipeline.cli:main``; see model/keras_env.py).
"""


def __getattr__(name: str) -> type:
    """Custom artifact classes as ``pipeline.<Class>``: the path Kubeflow Pipelines containers
    import a custom type from (its schema title; see pipeline/kubeflow.py)."""
    import importlib

    from pipeline.kubeflow import CUSTOM_ARTIFACTS

    if name not in CUSTOM_ARTIFACTS:
        raise AttributeError(f"module 'pipeline' has no attribute '{name}'")
    return getattr(importlib.import_module(CUSTOM_ARTIFACTS[name]), name)
