"""The ZenML flavor tests' gate and environment.

ZenML pins many packages, so it lives in a virtualenv of its own (the ``zenml`` tox
env, also run by ``.ci/run``). Where it is not installed (the main test env) nothing
here is collected, also when this directory is named on the command line.

Where it is, ZenML's global config (``ZENML_CONFIG_PATH``, with its SQLite
database) goes to a temporary directory made here before anything imports ZenML,
and the fixtures (``_fixtures.py``) make a repository with ``zenml init`` in
another, the working directory for the session. Analytics are off; the only
network used is the test servers' on 127.0.0.1.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """ZenML's SQL store imports passlib, which imports the deprecated ``crypt`` module."""
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(
                pytest.mark.filterwarnings("ignore:'crypt' is deprecated:DeprecationWarning")
            )


if importlib.util.find_spec("zenml") is None:
    collect_ignore_glob = ["*.py"]

    def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
        """Say why the directory was left out."""
        terminalreporter.write_line(
            "tests/zenml_flavors not collected: ZenML is not installed (tox -e zenml runs them)"
        )

else:
    _config_dir = tempfile.mkdtemp(prefix="artifactio-zenml-config-")
    atexit.register(shutil.rmtree, _config_dir, True)
    os.environ["ZENML_CONFIG_PATH"] = _config_dir
    os.environ["ZENML_ANALYTICS_OPT_IN"] = "false"
    os.environ["ZENML_ENABLE_RICH_TRACEBACK"] = "false"
    os.environ["ZENML_LOGGING_COLORS_DISABLED"] = "true"

    from ._fixtures import s3_prefix, unique, weed_secret, zenml_repo  # noqa: F401
