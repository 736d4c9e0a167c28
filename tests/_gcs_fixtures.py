"""GCS fixtures: a fake-gcs-server for the session, a fresh root per test (imported by conftest)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from artifactio.embedded import FakeGCSServer

__all__ = ["gcs_root"]


@pytest.fixture
def gcs_root(fake_gcs_server: FakeGCSServer) -> str:
    """A ``gs://`` root in a bucket no other test uses.

    A bucket per test keeps the emulator's listings (which scan the whole bucket)
    as fast at the end of the session as at its start.
    """
    bucket = f"t-{uuid.uuid4().hex}"
    fake_gcs_server.create_bucket(bucket)
    return f"gs://{bucket}/root"
