"""The TFX reference pipeline. Dependencies are pinned in constraints.txt."""

from setuptools import find_packages, setup

AIRFLOW = ["apache-airflow>=2.11,<2.12"]  # what TFX 1.21's AirflowDagRunner supports (Airflow 2)

setup(
    name="tfx-reference-pipeline",
    version="0.1.0",
    description="Production ML pipeline on TensorFlow Extended: raw CSV to served, mobile and web models",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["beam_local", "csvio", "features", "model", "serving", "ondevice", "modules",
                                    "components", "components.*", "pipeline", "pipeline.*"]),
    package_data={"pipeline": ["configs/*/*.yaml", "configs/*/*.pbtxt", "configs/pipeline.schema.json"]},
    install_requires=[
        "tfx[kfp]==1.21.0",
        "tensorboard",  # TF 2.21 no longer pulls it; Keras' TensorBoard callback needs it
        "pyyaml",
        "pydantic>=2",  # the config models (pipeline/config/model.py); pinned in constraints.txt
        "matplotlib",
        "scikit-learn",  # feature scoring (mutual information) in FeatureSelector
        "tensorflow-model-optimization",  # Pruner, QuantizationAwareTrainer (tf_keras models only)
        "ai-edge-litert",  # the TFLite interpreter (tf.lite.Interpreter is deprecated)
    ],
    extras_require={
        # The Airflow orchestrator (compile --engine airflow, tests/test_airflow.py). Its
        # flask-appbuilder -> flask-limiter needs rich<14: constraints.txt pins rich 13.x (keras
        # takes any rich). `make test` installs it through `dev`; `make run` does not need it.
        "airflow": AIRFLOW,
        # jsonschema: tests/test_config_schema.py; pytest-xdist: make test-fast runs on every core
        "dev": ["pytest", "pytest-xdist", "ruff", "jsonschema", *AIRFLOW],
    },
    entry_points={"console_scripts": ["tfx-pipeline=pipeline.cli:main"]},
)
