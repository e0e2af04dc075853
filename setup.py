"""The TFX reference pipeline. Dependencies are pinned in constraints.txt."""

from setuptools import find_packages, setup

setup(
    name="tfx-reference-pipeline",
    version="0.1.0",
    description="Production ML pipeline on TensorFlow Extended: raw CSV to served, mobile and web models",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["pipeline", "pipeline.*", "components", "components.*", "modules"]),
    package_data={"pipeline": ["configs/*/*.yaml", "configs/*/*.pbtxt"]},
    install_requires=[
        "tfx[kfp]==1.21.0",
        "tensorboard",  # TF 2.21 no longer pulls it; Keras' TensorBoard callback needs it
        "pyyaml",
        "matplotlib",
        "scikit-learn",  # feature scoring (mutual information) in FeatureSelector
        "tensorflow-model-optimization",  # Pruner, QuantizationAwareTrainer (tf_keras models only)
        "ai-edge-litert",  # the TFLite interpreter (tf.lite.Interpreter is deprecated)
    ],
    extras_require={"dev": ["pytest", "ruff"]},
    entry_points={"console_scripts": ["tfx-pipeline=pipeline.cli:main"]},
)
