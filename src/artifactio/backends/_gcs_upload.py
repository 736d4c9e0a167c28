"""A GCS resumable upload session, fed one chunk after the other.

The session is created by :meth:`~._gcs_client.GCSClient.upload` (a JSON API
request, billed to the store's project); its chunks, status queries and
cancellation go to the session URL GCS answered with, through the client's
transport like every other request. Chunks are multiples of 256 KiB, each
``PUT`` at the offset GCS has so far. The last one carries the CRC-32C of the
whole object (combined chunk by chunk, never read twice) and GCS refuses a
mismatch; the checksum it reports back is compared too.

A chunk that fails in a way worth repeating is resumed, not restarted: the next
attempt first asks the session how many bytes it holds and sends only the rest.

When the last chunk's answer is lost and the session turns out finished (or gone:
the emulator forgets finished sessions), the object decides: the session's
object resource carries the write's token in its metadata
(:data:`~._objectstore._client.WRITE_TOKEN`), so an object with our token is our
write, done; any other object is another writer's (``FileExistsError`` for an
``x``-mode write; otherwise the outcome is unknown, ``EIO``), and is never
compared against our checksum nor removed. :func:`written_object` serves the
single-request upload the same way.

A session whose creation answer was lost (and created again by the retry)
cannot be cancelled: GCS lists no sessions, and only its URL reaches it. It
holds no data, and GCS discards it a week after its creation.
"""

from __future__ import annotations

import contextlib
import errno
import functools
from typing import TYPE_CHECKING, Any

import aiohttp

from .._exceptions import os_error
from ._gcs_checksum import b64_crc32c, crc32c, crc32c_combine
from ._gcs_protocol import CHUNK_QUANTUM, object_resource, persisted_bytes
from ._objectstore import Upload
from ._objectstore._client import WRITE_TOKEN

if TYPE_CHECKING:
    from ._gcs_client import GCSClient

__all__ = ["ResumableUpload", "written_object"]


async def written_object(
    client: GCSClient, bucket: str, key: str, token: str
) -> tuple[dict[str, Any] | None, bool]:
    """The object resource at ``key`` if our write (``token``) made it.

    Returns:
        The resource (``None``: not ours), and whether any object is there.
    """
    resp = await client.transport.request(
        "write", client.path(bucket, key), "GET", object_resource(bucket, key),
        params={"alt": "json"}, ok=(404,),
    )  # fmt: skip
    if resp.status == 404:
        return None, False
    resource: dict[str, Any] = resp.json()
    ours = (resource.get("metadata") or {}).get(WRITE_TOKEN) == token
    return (resource if ours else None), True


class ResumableUpload(Upload):
    """A GCS resumable upload session, fed one chunk after the other.

    Args:
        client: The client that created the session.
        bucket: The bucket.
        key: The object's key.
        url: The session URL.
        token: The write token in the session's object metadata.
        exclusive: The session was created with ``ifGenerationMatch=0``.
    """

    max_in_flight = 1

    def __init__(
        self, client: GCSClient, bucket: str, key: str, url: str, *, token: str, exclusive: bool
    ) -> None:
        self._client = client
        self._token = token
        self._exclusive = exclusive
        self._transport = client.transport
        self._bucket = bucket
        self._key = key
        self._url = url
        self._path = client.path(bucket, key)
        self._offset = 0
        self._crc = 0
        self._done = False

    async def add_part(self, number: int, data: bytes) -> None:
        if len(data) % CHUNK_QUANTUM:
            raise ValueError(f"resumable chunks must be multiples of {CHUNK_QUANTUM} bytes")
        await self._send(data, final=False)

    async def complete(self, final: bytes) -> None:
        resource = await self._send(final, final=True)
        self._done = True
        if resource is None:  # the answer was lost after GCS finished: ask for the object
            resource, exists = await written_object(
                self._client, self._bucket, self._key, self._token
            )
            if resource is None and exists and self._exclusive:
                raise os_error(FileExistsError, "write", self._path)
            if resource is None:
                raise os_error(
                    OSError, "write", self._path,
                    "the upload session ended, but the object is not the one it was sent",
                    code=errno.EIO,
                )  # fmt: skip
        await self._client.check_upload(self._bucket, self._key, resource, self._crc)

    async def _send(self, data: bytes, *, final: bool) -> dict[str, Any] | None:
        """PUT ``data`` at the current offset; after a failure, resume where GCS stopped.

        Returns:
            The object resource once the final piece is in (``None`` when the
            session finished, or is gone, but its answer was lost; and for other
            chunks).
        """
        view = memoryview(data)
        crc_after = crc32c_combine(self._crc, crc32c(data), len(data)) if data else self._crc
        total = self._offset + len(data)
        sent_from = self._offset  # the offset ``view[0]`` stands for
        resume = False

        async def attempt() -> dict[str, Any] | None:
            nonlocal view, sent_from, resume
            if resume:  # an attempt failed: how far did GCS get?
                persisted = await self._persisted()
                if persisted is None and final:  # it finished: complete() looks at the object
                    return None
                if persisted is None:
                    raise os_error(
                        OSError, "write", self._path,
                        "the upload session ended before its last chunk", code=errno.EIO,
                    )  # fmt: skip
                skip = persisted - sent_from
                if skip < 0 or skip > len(view):
                    raise os_error(
                        OSError, "write", self._path,
                        f"upload session lost data (GCS has {persisted} bytes)", code=errno.EIO,
                    )  # fmt: skip
                view = view[skip:]
                sent_from = persisted
            resume = True
            return await self._put(view, sent_from, total if final else None, crc_after)

        result = await self._transport.call("write", self._path, attempt)
        self._offset = total
        self._crc = crc_after
        return result

    async def _put(
        self, view: memoryview, start: int, total: int | None, crc: int
    ) -> dict[str, Any] | None:
        """One ``PUT`` of ``view`` at ``start`` (``total``: this is the last piece; the size)."""
        size = "*" if total is None else str(total)
        if len(view):
            headers = {"Content-Range": f"bytes {start}-{start + len(view) - 1}/{size}"}
        else:
            headers = {"Content-Range": f"bytes */{size}"}
        if total is not None:
            headers["X-Goog-Hash"] = f"crc32c={b64_crc32c(crc)}"
        resp = await self._transport.send(
            "PUT", self._url, headers=headers, body=view, nbytes=len(view), ok=(404, 410)
        )
        if resp.status in (404, 410):  # the session is gone: finished (its answer lost), or not
            if total is None:
                raise os_error(
                    OSError, "write", self._path, "the upload session is gone", code=errno.EIO
                )
            return None  # complete() looks at the object
        if resp.status == 308:
            if total is not None:
                raise os_error(
                    OSError, "write", self._path, "GCS did not finish the upload", code=errno.EIO
                )
            persisted = persisted_bytes(resp.headers)
            if persisted != start + len(view):
                raise aiohttp.ClientPayloadError(
                    f"GCS kept {persisted} of {start + len(view)} bytes"
                )
            return None
        if total is None:
            raise os_error(
                OSError, "write", self._path, "GCS finished the upload early", code=errno.EIO
            )
        resource: dict[str, Any] = resp.json()
        return resource

    async def _persisted(self) -> int | None:
        """How many bytes the session holds (``None``: it is finished, or gone)."""
        resp = await self._transport.send(
            "PUT", self._url, headers={"Content-Range": "bytes */*"}, body=b"", ok=(404, 410)
        )
        return persisted_bytes(resp.headers) if resp.status == 308 else None

    async def abort(self) -> None:
        if self._done:
            return
        self._done = True
        # Any answer will do: 499 (cancelled), 404/410 (gone).
        cancel = functools.partial(self._transport.send, "DELETE", self._url, ok=range(400, 600))
        with contextlib.suppress(OSError):  # an unfinished session expires on its own in a week
            await self._transport.call("abort", self._path, cancel, cleanup=True)
