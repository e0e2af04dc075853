"""The test session's entry (loaded by pytest before any test module, for every test path in this
checkout): the project's Keras flavour, before anything imports TensorFlow (model/keras_env.py),
and the test groups pytest-xdist schedules by."""

import pytest

from model import keras_env

keras_env.apply()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Groups for ``pytest -n 2 --dist loadgroup`` (make test): every test of a module that has an
    e2e test goes to one group, so one worker runs them in order and shares the session's pipeline
    runs (the taxi e2e run, the background runs) exactly as a single process does; every other
    module is a group of its own (its module fixtures built once) for the other worker."""
    def module_of(item: pytest.Item) -> str:
        module = getattr(item, "module", None)
        return module.__name__ if module is not None else item.nodeid.split("::")[0]

    e2e_modules = {module_of(item) for item in items if item.get_closest_marker("e2e")}
    for item in items:
        module = module_of(item)
        item.add_marker(pytest.mark.xdist_group("e2e" if module in e2e_modules else module))
