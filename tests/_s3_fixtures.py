"""S3 fixtures (imported by conftest) and helpers that look at the session's SeaweedFS directly.

Fixtures: :func:`raw_s3` (a botocore client on the server), :func:`s3_root` (a
fresh root, emptied afterwards), :func:`s3_options` and :func:`s3_store`.
Helpers (``below`` is an ``s3://`` root in :data:`BUCKET` or a key prefix):
:func:`objects_below`, :func:`keys_below`, :func:`pending_uploads`,
:func:`empty_prefix` and :func:`key_prefix`.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest

from _server_fixtures import BUCKET

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from artifactio.backends.s3 import S3Store
    from artifactio.embedded import SeaweedFS

__all__ = [
    "BUCKET",
    "PART",
    "empty_prefix",
    "key_prefix",
    "keys_below",
    "objects_below",
    "pending_uploads",
    "raw_s3",
    "s3_options",
    "s3_root",
    "s3_store",
]

PART = 5 * 1024 * 1024
"""S3's smallest part size: the part size of :func:`s3_store`."""


@pytest.fixture(scope="session")
def raw_s3(seaweedfs: SeaweedFS) -> Any:
    """The server's own (blocking) botocore client, to look behind a store's back.

    The server closes it when it stops.
    """
    return seaweedfs._client()


@pytest.fixture
def s3_root(raw_s3: Any) -> Iterator[str]:
    """A fresh ``s3://`` root (a unique prefix in :data:`BUCKET`).

    Afterwards its pending multipart uploads are aborted and its keys deleted.
    """
    root = f"s3://{BUCKET}/t-{uuid.uuid4().hex[:12]}"
    yield root
    empty_prefix(raw_s3, root)


@pytest.fixture
def s3_options(seaweedfs: SeaweedFS) -> dict[str, Any]:
    """Options for stores on the session's server (few retries: failures show at once)."""
    return seaweedfs.store_options(retries=1)


@pytest.fixture
async def s3_store(s3_root: str, s3_options: dict[str, Any]) -> AsyncIterator[S3Store]:
    """An S3 store on :func:`s3_root` with :data:`PART` parts, closed afterwards."""
    from artifactio.backends.s3 import S3Store

    async with S3Store(s3_root, part_size=PART, **s3_options) as store:
        yield store


def key_prefix(below: str) -> str:
    """The key prefix ``below`` stands for: ``name/`` for ``s3://BUCKET/name``, else itself."""
    bucket = f"s3://{BUCKET}"
    if below == bucket:
        return ""
    if below.startswith(bucket + "/"):
        return below[len(bucket) + 1 :].rstrip("/") + "/"
    if below.startswith("s3://"):
        raise ValueError(f"{below!r} is not in the session's bucket {BUCKET!r}")
    return below


def objects_below(raw_s3: Any, below: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(key after the prefix, listed object)`` of every object below ``below``, in key order."""
    prefix = key_prefix(below)
    for page in raw_s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for listed in page.get("Contents", []):
            yield listed["Key"][len(prefix) :], listed


def keys_below(raw_s3: Any, below: str) -> list[str]:
    """Every key below ``below`` (after the prefix), as the server lists them."""
    return [key for key, _ in objects_below(raw_s3, below)]


def pending_uploads(raw_s3: Any, below: str) -> list[str]:
    """The keys (after the prefix) of the multipart uploads pending below ``below``."""
    prefix = key_prefix(below)
    answer = raw_s3.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix)
    return [upload["Key"][len(prefix) :] for upload in answer.get("Uploads", [])]


def empty_prefix(raw_s3: Any, below: str) -> None:
    """Abort every multipart upload pending below ``below``, then delete every key below it."""
    prefix = key_prefix(below)
    if not prefix:
        raise ValueError("refusing to empty the whole bucket")
    answer = raw_s3.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix)
    for upload in answer.get("Uploads", []):
        raw_s3.abort_multipart_upload(Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in raw_s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys = [{"Key": listed["Key"]} for listed in page.get("Contents", [])]
        if keys:
            raw_s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys, "Quiet": True})
