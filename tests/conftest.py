"""Shared fixtures. Backend test modules add theirs here with small, separate edits."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest

# Plain ``assert`` in the importable conformance suite gets pytest's messages too.
pytest.register_assert_rewrite("artifactio.testing")
from _gcs_fixtures import gcs_root  # noqa: E402, F401 - GCS fixtures

# The session's SeaweedFS (S3) and fake-gcs-server (GCS), shared by every module that asks.
from _server_fixtures import fake_gcs_server, seaweedfs  # noqa: E402, F401

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


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
