"""The ZenML flavor tests' fixtures: a ZenML repository with the flavors, names, prefixes, secrets.

Imported by ``conftest.py`` once ZenML's environment is set (see there).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from zenml.utils import source_utils

import artifactio

from ._helpers import run_zenml

if TYPE_CHECKING:
    from collections.abc import Iterator

    from artifactio.embedded import SeaweedFS

__all__ = ["s3_prefix", "unique", "weed_secret", "zenml_repo"]

TESTS = Path(__file__).resolve().parents[1]
FLAVORS = ("S3ArtifactStoreFlavor", "GCSArtifactStoreFlavor", "LocalArtifactStoreFlavor")


@pytest.fixture(scope="session")
def zenml_repo() -> Iterator[Path]:
    """A fresh ZenML repository (``zenml init``) with the three flavors registered by the CLI.

    The steps' module (``zenml_flavors._steps``) is found from ``tests/``, ZenML's source root.
    """
    repo = Path(tempfile.mkdtemp(prefix="artifactio-zenml-repo-"))
    before = Path.cwd()
    os.chdir(repo)
    source_utils.set_custom_source_root(str(TESTS))
    try:
        run_zenml("init")
        for flavor in FLAVORS:
            run_zenml(
                "artifact-store", "flavor", "register", f"artifactio.integrations.zenml.{flavor}"
            )
        yield repo
    finally:
        source_utils.set_custom_source_root(None)
        os.chdir(before)
        shutil.rmtree(repo, ignore_errors=True)


@pytest.fixture
def unique() -> str:
    """A name no other test uses (for components, stacks, secrets and prefixes)."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3_prefix(seaweedfs: SeaweedFS, unique: str) -> Iterator[str]:
    """An ``s3://`` root below the session bucket, emptied afterwards."""
    root = f"s3://artifactio-test/zenml-{unique}"
    yield root
    with artifactio.ArtifactStore("s3://artifactio-test", **seaweedfs.store_options()) as store:
        if store.exists(root):
            store.rmtree(root)


@pytest.fixture
def weed_secret(zenml_repo: Path, seaweedfs: SeaweedFS, unique: str) -> str:
    """A ZenML secret (AWS schema) with SeaweedFS's credentials, made with the CLI."""
    name = f"weed-{unique}"
    run_zenml(
        "secret",
        "create",
        name,
        f"--aws_access_key_id={seaweedfs.access_key}",
        f"--aws_secret_access_key={seaweedfs.secret_key}",
    )
    return name
