"""The flavors' contract with ZenML: classes, configs, credentials, path checks, the shared store.

Artifact stores are made as ZenML makes them for a step (``StackComponent.from_model``
of a registered component) and used against the session's SeaweedFS.
"""

from __future__ import annotations

import inspect
import json
import os
import pickle
import warnings
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from zenml.artifact_stores.base_artifact_store import BaseArtifactStore, PathType
from zenml.artifact_stores.local_artifact_store import (
    LocalArtifactStoreConfig as ZenmlLocalConfig,
)
from zenml.client import Client
from zenml.enums import StackComponentType
from zenml.integrations.gcp.flavors.gcp_artifact_store_flavor import GCPArtifactStoreConfig
from zenml.integrations.s3.flavors.s3_artifact_store_flavor import (
    S3ArtifactStoreConfig as ZenmlS3Config,
)
from zenml.io import fileio
from zenml.utils import secret_utils

import artifactio
from _gcs_fixtures import RecordingRelay
from artifactio.integrations import zenml as integration
from artifactio.integrations.zenml import (
    GCSArtifactStoreConfig,
    GCSArtifactStoreFlavor,
    LocalArtifactStoreConfig,
    LocalArtifactStoreFlavor,
    S3ArtifactStoreConfig,
    S3ArtifactStoreFlavor,
)

from ._helpers import artifact_store, run_zenml

if TYPE_CHECKING:
    from pathlib import Path

    from artifactio.embedded import FakeGCSServer, SeaweedFS

pytestmark = pytest.mark.usefixtures("zenml_repo")

ARTIFACT_STORE = StackComponentType.ARTIFACT_STORE


def register(name: str, flavor: str, **configuration: Any) -> Any:
    """Register an artifact store with the Python client; return it as a step gets it."""
    Client().create_stack_component(name, flavor, ARTIFACT_STORE, configuration)
    return artifact_store(name)


def weed_config(seaweedfs: SeaweedFS, root: str, **more: Any) -> dict[str, Any]:
    return {
        "path": root,
        "client_kwargs": {"endpoint_url": seaweedfs.endpoint_url},
        "key": seaweedfs.access_key,
        "secret": seaweedfs.secret_key,
        **more,
    }


# --------------------------------------------------------------- classes and configs


def test_flavors_are_registered_under_their_names() -> None:
    """The session registered them with ``zenml artifact-store flavor register SOURCE``."""
    for flavor in (S3ArtifactStoreFlavor(), GCSArtifactStoreFlavor(), LocalArtifactStoreFlavor()):
        registered = Client().get_flavor_by_name_and_type(flavor.name, ARTIFACT_STORE)
        assert registered.source == f"artifactio.integrations.zenml.{type(flavor).__name__}"
        assert issubclass(flavor.implementation_class, BaseArtifactStore)
    names = [S3ArtifactStoreFlavor().name, GCSArtifactStoreFlavor().name]
    assert names == ["artifactio_s3", "artifactio_gcs"]
    assert LocalArtifactStoreFlavor().name == "artifactio_local"


def test_class_variables_match_zenmls_own_flavors() -> None:
    assert S3ArtifactStoreConfig.SUPPORTED_SCHEMES == ZenmlS3Config.SUPPORTED_SCHEMES
    assert S3ArtifactStoreConfig.IS_IMMUTABLE_FILESYSTEM is ZenmlS3Config.IS_IMMUTABLE_FILESYSTEM
    assert GCSArtifactStoreConfig.SUPPORTED_SCHEMES == GCPArtifactStoreConfig.SUPPORTED_SCHEMES
    # GCS objects cannot be appended to: ZenML's log store must write separate files.
    assert GCSArtifactStoreConfig.IS_IMMUTABLE_FILESYSTEM is True
    assert GCPArtifactStoreConfig.IS_IMMUTABLE_FILESYSTEM is True
    assert LocalArtifactStoreConfig.SUPPORTED_SCHEMES == ZenmlLocalConfig.SUPPORTED_SCHEMES == {""}
    local_immutable = ZenmlLocalConfig.IS_IMMUTABLE_FILESYSTEM
    assert LocalArtifactStoreConfig.IS_IMMUTABLE_FILESYSTEM is local_immutable
    assert LocalArtifactStoreConfig(path="/tmp/x").is_local


def test_the_s3_config_has_every_field_of_zenmls_s3_config() -> None:
    """A stack moves from ``s3`` to ``artifactio_s3`` by its flavor alone: same fields, secrets."""
    ours = S3ArtifactStoreConfig.model_fields
    for name, field in ZenmlS3Config.model_fields.items():
        assert name in ours, name
        assert secret_utils.is_secret_field(ours[name]) == secret_utils.is_secret_field(field)


def test_a_zenml_s3_configuration_means_the_same_here() -> None:
    configuration = {
        "path": "s3://bucket/zenml",
        "key": "{{aws.key}}",
        "secret": "{{aws.secret}}",
        "client_kwargs": json.dumps(
            {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-west-1"}
        ),
        "config_kwargs": {
            "retries": {"max_attempts": 7, "mode": "standard"},
            "read_timeout": 30,
            "max_pool_connections": 16,
            "signature_version": "s3v4",
            "s3": {"addressing_style": "path"},
        },
        "s3_additional_kwargs": {},
    }
    ZenmlS3Config(**configuration)  # ZenML's own flavor takes it
    ours = S3ArtifactStoreConfig(**configuration)
    assert ours.store_options() == {
        "endpoint_url": "http://127.0.0.1:9000",
        "region": "eu-west-1",
        "retries": 7,
        "read_timeout": 30,
        "concurrency": 16,
    }


@pytest.mark.parametrize(
    ("configuration", "message"),
    [
        ({"client_kwargs": {"verify": False}}, "'verify' has no meaning"),
        ({"client_kwargs": {"aws_access_key_id": "x"}}, "secret field 'key'"),
        ({"config_kwargs": {"proxies": {}}}, "'proxies' has no meaning"),
        ({"config_kwargs": {"retries": {"mode": "adaptive"}}}, "mode must be 'standard'"),
        ({"config_kwargs": {"signature_version": "s3"}}, "'s3v4' only"),
        (
            {
                "endpoint_url": "http://127.0.0.1:1",
                "config_kwargs": {"s3": {"addressing_style": "virtual"}},
            },
            "addressing_style",
        ),
        ({"s3_additional_kwargs": {"ACL": "private"}}, "sends no extra request parameters"),
        (
            {"endpoint_url": "http://127.0.0.1:1", "client_kwargs": {"endpoint_url": "http://a:2"}},
            "set endpoint_url differently",
        ),
        ({"region": "eu-west-1", "config_kwargs": {"region_name": "us-east-1"}}, "region"),
        ({"endpoint-url": "http://127.0.0.1:1"}, "Extra inputs are not permitted"),
        ({"concurrency": 0}, "concurrency"),
        ({"path": "s3://Not A Bucket/x"}, "not a valid bucket name"),
        ({"client_kwargs": {"endpoint_url": "ftp://127.0.0.1"}}, "not an endpoint URL"),
    ],
)
def test_s3_settings_without_a_meaning_here_are_refused(
    configuration: dict[str, Any], message: str
) -> None:
    """Refused when the config is validated (registration), naming the setting, never a secret."""
    with pytest.raises(ValueError, match=message) as caught:
        S3ArtifactStoreConfig(**{"path": "s3://bucket/zenml", "secret": "s3cr3t", **configuration})
    assert "s3cr3t" not in str(caught.value)


def test_the_command_line_refuses_them_too(unique: str) -> None:
    output = run_zenml(
        "artifact-store",
        "register",
        unique,
        "--flavor=artifactio_s3",
        "--path=s3://bucket/zenml",
        '--client_kwargs={"endpoint_url": "http://127.0.0.1:1", "verify": false}',
        expect_failure=True,
    )
    assert "'verify' has no meaning for artifactio_s3" in output
    with pytest.raises(KeyError):
        Client().get_stack_component(ARTIFACT_STORE, unique)


def test_gcs_and_local_configs() -> None:
    gcs = GCSArtifactStoreConfig(
        path="gs://bucket/zenml", endpoint_url="http://127.0.0.1:4443/", project="p", retries=2
    )
    assert gcs.store_options() == {
        "endpoint_url": "http://127.0.0.1:4443",
        "project": "p",
        "retries": 2,
    }
    with pytest.raises(ValueError, match="part_size must be a multiple of 256 KiB"):
        GCSArtifactStoreConfig(path="gs://bucket/zenml", part_size=300 * 1024)
    assert LocalArtifactStoreConfig(path="file:///data/zenml").path == "/data/zenml"
    with pytest.raises(ValueError, match="path must be absolute"):
        LocalArtifactStoreConfig(path="relative/dir")
    with pytest.raises(ValueError, match="is not local"):
        LocalArtifactStoreConfig(path="gs://bucket/zenml")


# --------------------------------------------------------------- ZenML's path checks


def test_zenmls_path_sanitiser_sees_every_path_parameter(
    seaweedfs: SeaweedFS, s3_prefix: str, unique: str
) -> None:
    """Annotations stay objects (no ``from __future__ import annotations``): ZenML finds them."""
    store = register(unique, "artifactio_s3", **weed_config(seaweedfs, s3_prefix))
    with pytest.raises(FileNotFoundError, match="outside of artifact store bounds"):
        store.exists("s3://artifactio-test/another-prefix")  # ZenML's check, before artifactio's
    with pytest.raises(FileNotFoundError, match="outside of artifact store bounds"):
        store.copyfile(f"{s3_prefix}/a", "s3://artifactio-test/another-prefix/a")
    path = f"{s3_prefix}/model/weights.bin"
    with store.open(path.encode(), "wb") as f:  # bytes become str on the way
        f.write(b"\x01" * 10)
    assert store.size(path) == 10
    assert store.listdir(f"{s3_prefix}/model") == ["weights.bin"]
    assert store.glob(f"{s3_prefix}/**/*.bin") == [path]

    for name in ("open", "copyfile", "exists", "glob", "rename", "walk", "size"):
        method = getattr(integration.S3ArtifactStore, name)
        params = list(inspect.signature(method).parameters.values())[1:]
        assert params[0].annotation is PathType, name
    assert "annotations" not in vars(integration)  # what the __future__ import would define


def test_the_local_flavor_leaves_zenmls_local_file_access_alone(
    tmp_path: Path, unique: str
) -> None:
    """ZenML routes every local path to ZenML's own filesystem, not to this store."""
    store = register(unique, "artifactio_local", path=str(tmp_path / "store"))
    store.makedirs(f"{store.path}/a")
    elsewhere = tmp_path / "elsewhere.txt"
    with fileio.open(str(elsewhere), "w") as f:  # outside the store: fine through fileio
        f.write("x")
    assert elsewhere.read_text() == "x"
    assert store.local_path == str(tmp_path / "store")


def test_the_local_flavor_without_a_path_uses_zenmls_directory(unique: str) -> None:
    store = register(unique, "artifactio_local")
    assert store.path.endswith(str(store.id))
    assert os.path.isdir(store.path)
    with store.open(f"{store.path}/x.txt", "w") as f:
        f.write("hello")
    assert store.store.read_bytes(f"{store.path}/x.txt") == b"hello"


# ---------------------------------------------------------------------- credentials


def test_secret_fields_take_zenml_secret_references(
    seaweedfs: SeaweedFS, s3_prefix: str, unique: str
) -> None:
    Client().create_secret(
        unique, {"key_id": seaweedfs.access_key, "access_key": seaweedfs.secret_key}
    )
    configuration = weed_config(
        seaweedfs, s3_prefix, key=f"{{{{{unique}.key_id}}}}", secret=f"{{{{{unique}.access_key}}}}"
    )
    store = register(unique, "artifactio_s3", **configuration)
    store.makedirs(f"{s3_prefix}/made")
    assert store.isdir(f"{s3_prefix}/made")


def test_wrong_credentials_are_refused_by_the_server(
    seaweedfs: SeaweedFS, s3_prefix: str, unique: str
) -> None:
    """The credentials really are the ones sent: wrong ones fail, as PermissionError."""
    store = register(
        unique, "artifactio_s3", **weed_config(seaweedfs, s3_prefix, secret="not-the-secret")
    )
    with pytest.raises(PermissionError):
        store.exists(f"{s3_prefix}/x")


async def test_gcs_authentication_secret_token_is_sent(
    fake_gcs_server: FakeGCSServer, gcs_root: str, unique: str
) -> None:
    """ZenML's GCP secret schema (``token``) reaches artifactio: an access token is sent as is."""
    Client().create_secret(unique, {"token": "ya29.test-token"})
    async with RecordingRelay(fake_gcs_server.url) as relay:
        store = register(
            unique,
            "artifactio_gcs",
            path=gcs_root,
            endpoint_url=relay.url,
            authentication_secret=unique,
        )
        # Blocking calls, in a worker thread: the relay serves on this loop.
        await anyio.to_thread.run_sync(store.makedirs, f"{gcs_root}/d")
        assert await anyio.to_thread.run_sync(store.isdir, f"{gcs_root}/d")
    assert relay.seen
    assert all(seen.headers.get("Authorization") == "Bearer ya29.test-token" for seen in relay.seen)


# -------------------------------------------------------------------- the shared store


def test_one_store_per_configuration_per_process(
    seaweedfs: SeaweedFS, s3_prefix: str, unique: str
) -> None:
    first = register(f"{unique}a", "artifactio_s3", **weed_config(seaweedfs, s3_prefix))
    same = register(f"{unique}b", "artifactio_s3", **weed_config(seaweedfs, s3_prefix))
    other = register(
        f"{unique}c", "artifactio_s3", **weed_config(seaweedfs, s3_prefix, concurrency=4)
    )
    assert isinstance(first.store, artifactio.ArtifactStore)
    assert same.store is first.store
    assert artifact_store(f"{unique}a").store is first.store  # made again, as for each step
    assert other.store is not first.store
    assert other.store.async_store.concurrency == 4

    state = pickle.dumps(first)
    assert b"_artifactio_options" not in state  # looked up again where it is unpickled
    unpickled = pickle.loads(state)
    assert unpickled.store is first.store
    unpickled.makedirs(f"{s3_prefix}/after-pickle")
    assert first.isdir(f"{s3_prefix}/after-pickle")

    first.cleanup()  # ZenML calls it (e.g. when a step's log exporter stops): still usable
    assert first.exists(f"{s3_prefix}/after-pickle")
    first.store.close()  # closed by someone else: the next use opens a new one
    assert first.exists(f"{s3_prefix}/after-pickle")


def test_a_forked_child_makes_its_own_store(
    seaweedfs: SeaweedFS, s3_prefix: str, unique: str
) -> None:
    if not hasattr(os, "fork"):
        pytest.skip("no os.fork on this platform")
    store = register(unique, "artifactio_s3", **weed_config(seaweedfs, s3_prefix))
    parents = store.store
    store.makedirs(f"{s3_prefix}/parent")  # the parent's connections are in use
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "fork of a multi-threaded process"
        pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        status = 1
        try:
            childs = store.store
            with store.open(f"{s3_prefix}/child.txt", "w") as f:
                f.write(f"from {os.getpid()}")
            os.write(write_end, b"new" if childs is not parents else b"same")
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as report:
        said = report.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert said == b"new"
    assert store.store is parents
    with store.open(f"{s3_prefix}/child.txt") as f:
        assert f.read() == f"from {pid}"
