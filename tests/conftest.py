"""Shared fixtures. Backend test modules add theirs here with small, separate edits."""

from __future__ import annotations

import gc
import logging
import uuid
from typing import TYPE_CHECKING

import pytest

# Plain ``assert`` in the importable conformance suite gets pytest's messages too.
pytest.register_assert_rewrite("artifactio.testing")
from _gcs_fixtures import gcs_root  # noqa: E402, F401 - GCS fixtures
from _s3_fixtures import raw_s3, s3_options, s3_root, s3_store  # noqa: E402, F401 - S3 fixtures

# The session's SeaweedFS (S3) and fake-gcs-server (GCS), shared by every module that asks.
from _server_fixtures import fake_gcs_server, seaweedfs  # noqa: E402, F401

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


class _LostTaskErrors(logging.Handler):
    """Collects what asyncio logs about failed tasks whose exception nobody looked at."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "never retrieved" in message:
            self.messages.append(self.format(record))


_lost = _LostTaskErrors()
logging.getLogger("asyncio").addHandler(_lost)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a task's exception was dropped: such an error was lost, not handled."""
    gc.collect()
    if _lost.messages:
        print("\nexceptions of tasks that nobody retrieved:", *_lost.messages, sep="\n")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def memory_root() -> Iterator[str]:
    """A ``memory://`` root no other test uses, forgotten afterwards."""
    from artifactio.backends.memory import clear

    name = f"test-{uuid.uuid4().hex}"
    yield f"memory://{name}"
    clear(name)


@pytest.fixture
def local_root(tmp_path: Path) -> str:
    """An empty local directory (below pytest's ``tmp_path``) as a store root."""
    root = tmp_path / "root"
    root.mkdir()
    return str(root)
