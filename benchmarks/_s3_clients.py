"""The S3 clients the suite measures, each opened the same way wherever it is used.

artifactio (``open_store("s3://...")``), s3fs (asynchronous), obstore's
``S3Store``, aiobotocore's client used directly, and boto3's ``TransferManager``
(s3transfer), all against one endpoint given as an :class:`S3Endpoint` (plain
data, so a child process measuring memory gets the same). Every client gets the
same knobs where it has one: ``concurrency`` is artifactio's store and transfer
concurrency, the size of every connection pool, s3fs's ``max_concurrency`` and
``batch_size``, obstore's and boto3's parts in flight; ``part_size`` is
artifactio's, s3fs's ``chunksize``, obstore's ``chunk_size`` and boto3's
``multipart_chunksize``. obstore has no bulk helper: its tree transfers here
list, then move one file per call with ``concurrency`` calls in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _harness import for_each_limited

import artifactio

if TYPE_CHECKING:
    from artifactio.embedded import SeaweedFS

__all__ = [
    "S3Endpoint",
    "aiobotocore_client",
    "artifactio_store",
    "boto3_manager",
    "check_report",
    "obstore_download_tree",
    "obstore_store",
    "obstore_upload_tree",
    "s3fs_filesystem",
]


@dataclass(frozen=True)
class S3Endpoint:
    """Where the server is and how to sign in (JSON-ready, for child processes)."""

    url: str
    key: str
    secret: str
    region: str
    bucket: str

    @classmethod
    def of(cls, server: SeaweedFS, bucket: str) -> S3Endpoint:
        return cls(server.endpoint_url, server.access_key, server.secret_key, server.region, bucket)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def artifactio_store(ep: S3Endpoint, **options: Any) -> artifactio.AsyncArtifactStore:
    """artifactio's store on the bucket (``options``: ``concurrency``, ``part_size``...)."""
    return artifactio.open_store(
        f"s3://{ep.bucket}",
        endpoint_url=ep.url,
        key=ep.key,
        secret=ep.secret,
        region=ep.region,
        **options,
    )


def check_report(report: artifactio.TransferReport, who: str) -> None:
    if not report.ok:
        raise RuntimeError(f"{who}: the transfer failed: {report.to_json()}")


async def s3fs_filesystem(ep: S3Endpoint, concurrency: int | None = None) -> Any:
    """An asynchronous ``s3fs.S3FileSystem`` with its session open (close: ``fs._s3.close()``)."""
    import s3fs

    config: dict[str, Any] = {"s3": {"addressing_style": "path"}}
    extra: dict[str, Any] = {}
    if concurrency is not None:
        config["max_pool_connections"] = concurrency
        extra["max_concurrency"] = concurrency
    fs = s3fs.S3FileSystem(
        key=ep.key,
        secret=ep.secret,
        endpoint_url=ep.url,
        client_kwargs={"region_name": ep.region},
        config_kwargs=config,
        asynchronous=True,
        skip_instance_cache=True,
        **extra,
    )
    await fs.set_session()
    return fs


def obstore_store(ep: S3Endpoint) -> Any:
    """obstore's ``S3Store`` on the bucket, path-style, plain HTTP allowed."""
    from obstore.store import S3Store

    return S3Store(
        ep.bucket,
        endpoint=ep.url,
        access_key_id=ep.key,
        secret_access_key=ep.secret,
        region=ep.region,
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )


async def obstore_upload_tree(store: Any, src: Path, prefix: str, concurrency: int) -> None:
    """Every file of directory ``src`` to ``prefix/<name>``, ``concurrency`` at a time."""
    import obstore

    entries = sorted(os.scandir(src), key=lambda e: e.name)

    async def one(i: int) -> None:
        await obstore.put_async(store, f"{prefix}/{entries[i].name}", Path(entries[i].path))

    await for_each_limited(len(entries), concurrency, one)


async def obstore_download_tree(store: Any, prefix: str, dst: Path, concurrency: int) -> None:
    """List ``prefix`` and write every object to ``dst/<name>``, ``concurrency`` at a time."""
    import obstore

    paths: list[str] = []
    async for batch in obstore.list(store, f"{prefix}/", chunk_size=1000):
        paths.extend(meta["path"] for meta in batch)
    dst.mkdir(parents=True, exist_ok=True)

    async def one(i: int) -> None:
        result = await obstore.get_async(store, paths[i])
        data = await result.bytes_async()
        await asyncio.to_thread((dst / paths[i].rsplit("/", 1)[-1]).write_bytes, bytes(data))

    await for_each_limited(len(paths), concurrency, one)


@contextlib.asynccontextmanager
async def aiobotocore_client(ep: S3Endpoint, concurrency: int) -> Any:
    """aiobotocore's S3 client, path-style, ``concurrency`` pooled connections."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import AioSession

    config = AioConfig(
        max_pool_connections=concurrency,
        s3={"addressing_style": "path"},
        retries={"mode": "standard", "total_max_attempts": 4},
    )
    async with AioSession().create_client(
        "s3",
        endpoint_url=ep.url,
        region_name=ep.region,
        aws_access_key_id=ep.key,
        aws_secret_access_key=ep.secret,
        config=config,
    ) as client:
        yield client


def boto3_manager(ep: S3Endpoint, concurrency: int, part_size: int) -> tuple[Any, Any]:
    """boto3's S3 client and an s3transfer ``TransferManager`` over it (shut down by the caller)."""
    import boto3
    from boto3.s3.transfer import TransferConfig, create_transfer_manager
    from botocore.config import Config

    client = boto3.session.Session().client(
        "s3",
        endpoint_url=ep.url,
        region_name=ep.region,
        aws_access_key_id=ep.key,
        aws_secret_access_key=ep.secret,
        config=Config(max_pool_connections=concurrency, s3={"addressing_style": "path"}),
    )
    config = TransferConfig(
        multipart_threshold=part_size,
        multipart_chunksize=part_size,
        max_concurrency=concurrency,
        use_threads=True,
    )
    return client, create_transfer_manager(client, config)
