"""GCS fixtures: a fake-gcs-server for the session, a fresh root per test (imported by conftest)."""

from __future__ import annotations

import uuid

import pytest

from artifactio.testing._gcs_server import FakeGCSServer, fake_gcs_server

__all__ = ["GCS_BUCKET", "fake_gcs_server", "gcs_root"]

GCS_BUCKET = "artifactio-test"


@pytest.fixture
def gcs_root(fake_gcs_server: FakeGCSServer) -> str:
    """A ``gs://`` root no other test uses, in the session server's bucket."""
    return f"gs://{GCS_BUCKET}/{uuid.uuid4().hex}"
