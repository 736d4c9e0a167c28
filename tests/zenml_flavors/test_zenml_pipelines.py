"""Real ZenML pipelines on each artifactio flavor: SeaweedFS, fake-gcs-server, a directory.

Each test registers an artifact store of the flavor with ZenML's command line,
makes it the artifact store of the active stack (with the local orchestrator),
runs a pipeline whose steps pass a dict, a str, bytes, a list, a numpy array and a
pydantic model, loads every output back through ZenML's ``Client``, and finds the
objects in the bucket (or directory) with artifactio itself.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from zenml.client import Client

import artifactio

from ._helpers import register_stack
from ._steps import LOG_MARKER, expected_values, six_kinds

if TYPE_CHECKING:
    from pathlib import Path

    from artifactio.embedded import FakeGCSServer, SeaweedFS

pytestmark = pytest.mark.usefixtures("zenml_repo")


def run_and_check(root: str, raw_store: artifactio.ArtifactStore) -> None:
    """Run the pipeline on the active stack; check ZenML's outputs and the stored objects."""
    run = six_kinds()
    run = Client().get_pipeline_run(run.id)
    assert run.status.value == "completed"

    produced = run.steps["produce"].outputs
    expected = expected_values()
    assert set(produced) == set(expected)
    for name, value in expected.items():
        (artifact,) = produced[name]
        assert artifact.uri.startswith(f"{root}/produce/{name}/")
        loaded = artifact.load()  # through the flavor's store, as ZenML loads any artifact
        if isinstance(value, np.ndarray):
            assert np.array_equal(loaded, value)
            assert loaded.dtype == value.dtype
        else:
            assert loaded == value
            assert type(loaded) is type(value)
        # The materializer's files are in the bucket (or directory), found without ZenML.
        files = raw_store.listdir(artifact.uri)
        assert files, f"nothing stored for {name} at {artifact.uri}"
        assert all(raw_store.size(f"{artifact.uri}/{f}") > 0 for f in files)

    array_file = f"{produced['an_array'][0].uri}/data.npy"
    with raw_store.open(array_file, "rb") as f:
        assert np.array_equal(np.load(f), expected["an_array"])
    (summary,) = run.steps["consume"].outputs["summary"]
    assert summary.load() == "hello artifactio: 66 over 2 layers"

    # ZenML's log store wrote the step's output through the flavor's store too.
    logs = [
        f"{dirpath}/{name}"
        for dirpath, _, names in raw_store.walk(f"{root}/logs")
        for name in names
    ]
    assert logs
    assert any(LOG_MARKER in raw_store.read_bytes(path).decode() for path in logs)


def test_pipeline_on_seaweedfs(
    seaweedfs: SeaweedFS, s3_prefix: str, weed_secret: str, unique: str
) -> None:
    """``artifactio_s3`` with ZenML's S3 fields: ``client_kwargs`` and an authentication secret."""
    client_kwargs = {"endpoint_url": seaweedfs.endpoint_url, "region_name": "us-east-1"}
    register_stack(
        unique,
        "artifactio_s3",
        s3_prefix,
        f"--client_kwargs={json.dumps(client_kwargs)}",
        f"--authentication_secret={weed_secret}",
    )
    with artifactio.ArtifactStore(s3_prefix, **seaweedfs.store_options()) as raw:
        run_and_check(s3_prefix, raw)


def test_pipeline_on_fake_gcs_server(
    fake_gcs_server: FakeGCSServer, gcs_root: str, unique: str
) -> None:
    """``artifactio_gcs`` with an emulator's endpoint (no credentials: the emulator wants none).

    GCS is an immutable filesystem for ZenML: the step logs are separate files, merged at the end.
    """
    register_stack(unique, "artifactio_gcs", gcs_root, f"--endpoint_url={fake_gcs_server.url}")
    with artifactio.ArtifactStore(gcs_root, **fake_gcs_server.store_options()) as raw:
        run_and_check(gcs_root, raw)


def test_pipeline_on_a_local_directory(tmp_path: Path, unique: str) -> None:
    """``artifactio_local`` on a directory; the objects are ordinary files there."""
    root = str(tmp_path / "artifacts")
    register_stack(unique, "artifactio_local", root, "--concurrency=4")
    with artifactio.ArtifactStore(root) as raw:
        run_and_check(root, raw)
    assert (tmp_path / "artifacts" / "produce" / "an_array").is_dir()


def _type_names(values: dict[str, Any]) -> set[str]:
    return {type(v).__name__ for v in values.values()}


def test_the_pipeline_passes_the_six_kinds() -> None:
    """The pipeline's outputs are the kinds the tests promise (a guard against a quiet edit)."""
    assert _type_names(expected_values()) == {
        "dict",
        "str",
        "bytes",
        "list",
        "ndarray",
        "TrainingConfig",
    }
