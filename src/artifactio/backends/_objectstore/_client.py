"""The service-neutral client: the few calls an object store makes to S3 or GCS.

Each service implements :class:`ObjectClient` (S3 with aiobotocore, GCS with
gcloud-aio-storage) and, for writes in parts, :class:`Upload`; the data types
here are what those calls answer.

Closing never pulls a connection from under a request: every request a client
makes is counted while it runs (:meth:`ObjectClient.request`). ``aclose()``
first refuses new requests (``StoreClosedError``, also for files opened
earlier), then waits for those in flight, at most the client's
:attr:`~ObjectClient.close_grace` (the configured ``read_timeout``: a stalled
request fails by then on its own), and only then closes the connections.
Response bodies are read with their own stall timeout (:func:`read_body`),
since aiohttp forgets a body's read timeout when its connection is closed.
Request bodies get one too (:func:`send_bounded`): aiohttp bounds neither the
wait for ``100 Continue`` nor a body write that the server stopped reading.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import errno
import math
import sys
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import anyio

from ..._concurrency import shielded
from ..._exceptions import StoreClosedError, os_error

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator

__all__ = [
    "LIST_PAGE",
    "ListPage",
    "ObjectClient",
    "ObjectMeta",
    "ObjectRead",
    "ObjectStream",
    "CHECKSUM_KEY",
    "WRITE_TOKEN",
    "SendBody",
    "Upload",
    "object_changed",
    "read_answer",
    "read_body",
    "read_within",
    "new_token",
    "send_bounded",
]

T = TypeVar("T")

LIST_PAGE = 1000
"""Keys asked for per listing request (the S3 maximum)."""

_BODY_CHUNK = 1 << 20
"""Bytes asked for per read of a response body (:func:`read_body`)."""

CHECKSUM_KEY = "artifactio-md5"
"""The metadata key under which a single-request write stores the MD5 (hex) of the
whole object, so that ``stat`` reports it and ``sync(compare="checksum")``
compares without reading the object."""

WRITE_TOKEN = "artifactio-write"
"""The metadata key of a write's token: a random value one write puts on the object
it makes, so that when a repeated request is refused because of what its own first
attempt did (the answer was lost), the write can recognise its own object."""

_SEND_PIECE = 64 * 1024
"""Bytes handed to the connection per write of a request body (:class:`SendBody`)."""


@dataclass(frozen=True)
class ObjectMeta:
    """One object, as a listing or a metadata request describes it.

    Attributes:
        key: The object's full key in its bucket.
        size: Size in bytes.
        mtime: Last modification, seconds since the epoch, where known.
        etag: The entity tag, without quotes, where the service has one.
        version: The token that pins this content for :meth:`ObjectClient.get_range`
            (S3: the ETag; GCS: the generation).
        checksum: ``"md5:..."``/``"crc32c:..."`` where the service reports one.
    """

    key: str
    size: int
    mtime: float | None = None
    etag: str | None = None
    version: str | None = None
    checksum: str | None = None


@dataclass(frozen=True)
class ListPage:
    """One page of a listing.

    Attributes:
        objects: The objects of this page (with a delimiter: those directly below
            the prefix, a marker named exactly like the prefix included).
        prefixes: With a delimiter, the common prefixes (``"a/b/"``) of this page.
        next_token: Pass it back for the next page; ``None`` on the last page.
    """

    objects: list[ObjectMeta]
    prefixes: list[str]
    next_token: str | None = None


@dataclass(frozen=True)
class ObjectRead:
    """The answer of a ranged read.

    Attributes:
        data: The bytes of the requested range (fewer only at end of object).
        size: The whole object's size.
        version: The token pinning this content (see :attr:`ObjectMeta.version`).
        etag: The entity tag, without quotes.
        mtime: Last modification, where known.
    """

    data: bytes
    size: int
    version: str | None = None
    etag: str | None = None
    mtime: float | None = None


class Upload(abc.ABC):
    """An upload in parts (S3 multipart upload, GCS resumable session).

    Parts are numbered from 1 and handed over in order; all but the final piece
    are at least the service's minimum size (S3: 5 MiB; GCS: a multiple of 256 KiB).

    Attributes:
        max_in_flight: How many :meth:`add_part` calls may run at once (S3 takes
            parts in any order; a GCS session needs them one after the other: 1).
    """

    max_in_flight: int = 1

    @abc.abstractmethod
    async def add_part(self, number: int, data: bytes) -> None:
        """Upload part ``number``."""

    @abc.abstractmethod
    async def complete(self, final: bytes) -> None:
        """Upload ``final`` (possibly empty) as the last piece and publish the object.

        Raises:
            FileExistsError: An exclusive upload found the object already there.
        """

    @abc.abstractmethod
    async def abort(self) -> None:
        """Discard the upload and every part sent; nothing stays behind. Idempotent."""


class ObjectClient(abc.ABC):
    """The few calls :class:`ObjectStore` needs from a service; one per event loop.

    Every method raises builtin ``OSError`` subclasses (mapped once, at the
    service's boundary, with the operation and the ``scheme://bucket/key`` path in
    the message): ``FileNotFoundError`` for a missing bucket (naming it) or
    object, ``PermissionError`` for refused credentials,
    ``artifactio.StoreConnectionError`` when the endpoint cannot be reached.

    Attributes:
        delete_batch: The most keys :meth:`delete_many` takes at once.
        prune_empty_dirs: Whether ``rmtree`` also deletes the markers of the
            directories its keys imply, deepest first, and every removal then
            deletes the entries of parents it emptied. Services that keep real
            directory entries (SeaweedFS's filer) need it to forget emptied
            directories at once; on S3 the extra keys cost nothing (they ride in
            the batch deletes), on GCS every missing key would cost a request.
        parts_in_any_order: Whether an :class:`Upload` takes its parts in any
            order and several at once (S3 multipart uploads; a GCS resumable
            session takes them one after the other).
        checks_writes: Whether the service refuses every write (:meth:`put`, each
            part of an :class:`Upload`) whose bytes do not match a checksum sent
            with them.
    """

    delete_batch: int = 1000
    prune_empty_dirs: bool = False
    parts_in_any_order: bool = False
    checks_writes: bool = False

    def __init__(self, *, store: str, close_grace: float) -> None:
        """Set up the request count.

        Args:
            store: The store's root, for the messages of refused requests.
            close_grace: Seconds :meth:`drain` waits for requests in flight.
        """
        self.store = store
        self.close_grace = close_grace
        self.marking: dict[str, asyncio.Task[None]] = {}
        """Directory-marker writes in flight, by object name (see ``ObjectStore._create_dir``)."""
        self._requests = 0
        self._idle: asyncio.Event | None = None
        self._refused = False  # the store is closing: only clean-up requests may start
        self._shut = False  # the connections are (being) closed: nothing may start

    @contextlib.contextmanager
    def request(self, op: str, *, cleanup: bool = False) -> Iterator[None]:
        """Count one request (with its response body) while it runs.

        Every request a client makes runs inside this, so that closing waits for it.

        Args:
            op: The operation, for the message.
            cleanup: An abort of something begun earlier: still allowed while the
                store closes, until the connections are closed.

        Raises:
            artifactio.StoreClosedError: The store was closed.
        """
        if self._shut or (self._refused and not cleanup):
            raise StoreClosedError(f"{op}: store {self.store!r} is closed")
        self._requests += 1
        try:
            yield
        finally:
            self._requests -= 1
            if not self._requests and self._idle is not None:
                self._idle.set()

    def refuse(self) -> None:
        """Refuse new requests from now on (clean-ups excepted); thread-safe."""
        self._refused = True

    async def drain(self) -> None:
        """Refuse new requests, then wait for those in flight, at most :attr:`close_grace`.

        Called on the client's own loop before :meth:`aclose`; afterwards every
        request is refused.
        """
        self._refused = True
        with anyio.move_on_after(self.close_grace):
            while self._requests:
                self._idle = asyncio.Event()
                await self._idle.wait()
        self._idle = None
        self._shut = True

    @abc.abstractmethod
    async def head(self, bucket: str, key: str) -> ObjectMeta | None:
        """Describe one object, or ``None`` when it does not exist."""

    @abc.abstractmethod
    async def list_page(
        self,
        bucket: str,
        prefix: str,
        *,
        delimiter: str | None,
        limit: int = LIST_PAGE,
        token: str | None = None,
    ) -> ListPage:
        """List one page of the keys starting with ``prefix``.

        Raises:
            FileNotFoundError: The bucket does not exist.
        """

    @abc.abstractmethod
    async def get_range(
        self, bucket: str, key: str, start: int, end: int, *, version: str | None = None
    ) -> ObjectRead:
        """Read bytes ``[start, end)`` (fewer at the end of the object).

        A zero-size object reads as ``b""`` for ``start == 0``.

        Args:
            bucket: The bucket.
            key: The object's key.
            start: First byte.
            end: One past the last byte wanted.
            version: Fail unless the object still is this version.

        Raises:
            FileNotFoundError: No such object.
            OSError: ``errno.ESTALE`` (see :func:`object_changed`) when ``version``
                no longer matches.
        """

    async def open_stream(
        self, bucket: str, key: str, start: int, *, version: str | None
    ) -> ObjectStream | None:
        """Start one GET of the object from byte ``start`` to its end, its body read as it comes.

        For sequential reads of large objects: one request instead of a ranged GET
        per block. ``None`` when the client cannot (the default) or the service
        answered without honouring the range: the caller reads by ranges then.

        Raises:
            FileNotFoundError: No such object.
            OSError: ``errno.ESTALE`` (see :func:`object_changed`) when ``version``
                no longer matches.
        """
        return None

    @abc.abstractmethod
    async def put(self, bucket: str, key: str, data: bytes, *, exclusive: bool) -> None:
        """Create or replace an object in one request.

        Raises:
            FileExistsError: ``exclusive`` and the object exists.
        """

    @abc.abstractmethod
    async def copy(self, bucket: str, src: str, dst: str, *, size: int | None = None) -> None:
        """Copy an object server-side (``size`` is a hint where the service needs one).

        Raises:
            FileNotFoundError: ``src`` does not exist.
        """

    @abc.abstractmethod
    async def delete(self, bucket: str, key: str) -> None:
        """Delete one object; a missing object is not an error."""

    @abc.abstractmethod
    async def delete_many(self, bucket: str, keys: list[str]) -> None:
        """Delete up to :attr:`delete_batch` objects; missing ones are not an error."""

    @abc.abstractmethod
    async def upload(self, bucket: str, key: str, *, exclusive: bool) -> Upload:
        """Start an upload in parts (``exclusive``: completing fails if the object exists)."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release the client's connections."""

    def release(self) -> None:  # noqa: B027 - a client without connections has nothing to do
        """Release the client's connections at once, without awaiting anything.

        For a client whose event loop was closed before the client was: nothing
        can run on that loop any more, so :meth:`aclose` cannot. A client that
        holds connections overrides this (an aiohttp session is released by
        :func:`._pool.release_session`).
        """


def object_changed(op: str, path: str) -> OSError:
    """The error a read raises when the object was replaced after it was opened."""
    return os_error(
        OSError, op, path, "the file was replaced while it was being read", code=errno.ESTALE
    )


@dataclass(frozen=True)
class ObjectStream:
    """The body of one GET, read as it arrives (:meth:`ObjectClient.open_stream`)."""

    read: Callable[[], Awaitable[bytes]]
    """The next bytes that came (see :func:`read_within`), ``b""`` at the end; raises
    the builtin errors the service's failures mean."""
    close: Callable[[], object]
    """Drops the response (and its connection, unless the body was read to its end)."""


async def read_within(read: Callable[[int], Awaitable[bytes]], idle: float) -> bytes:
    """The next bytes of a response body (at most 1 MiB), ``b""`` at its end.

    Raises:
        TimeoutError: No byte came for ``idle`` seconds.
    """
    with anyio.move_on_after(idle):
        return await read(_BODY_CHUNK)
    raise TimeoutError(f"no data from the server for {idle:g} s")


async def read_body(read: Callable[[int], Awaitable[bytes]], idle: float) -> bytes:
    """Read a response body to its end, failing when no byte arrives for ``idle`` seconds.

    aiohttp's own read timeout is not enough: when the connection is closed under
    a body still arriving, aiohttp drops the body's timeout and never wakes the
    read. This bound is ours.

    Args:
        read: Reads up to ``n`` bytes, ``b""`` at the end (``StreamReader.read``).
        idle: The longest wait for the next bytes.

    Returns:
        The whole body.

    Raises:
        TimeoutError: The body stalled for ``idle`` seconds.
    """
    chunks: list[bytes] = []
    try:
        with anyio.fail_after(idle) as scope:
            while True:
                chunk = await read(_BODY_CHUNK)
                if not chunk:
                    break
                chunks.append(chunk)
                scope.deadline = anyio.current_time() + idle
    except TimeoutError:
        raise TimeoutError(f"no data from the server for {idle:g} s") from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_answer(content: aiohttp.StreamReader, idle: float) -> bytes:
    """An aiohttp answer's whole body: :func:`read_body`, or at once if it came with the headers.

    Small answers (an object of a few KiB, an error, an empty PUT answer) are
    whole in the buffer when the headers are: taken without a timer.
    """
    if content.is_eof():
        return content.read_nowait()
    return await read_body(content.read, idle)


class SendBody(aiohttp.payload.Payload):
    """A request body that reports its progress, for :func:`send_bounded`.

    Bytes in memory (a ``memoryview`` too, sent without a copy) go to the
    connection in 64 KiB writes, each of which returns once the connection took
    it; a stream (an async iterable, e.g. botocore's ``aws-chunked`` encoder)
    goes chunk by chunk. aiohttp's own ``BytesPayload`` would warn
    (``ResourceWarning``) above 1 MiB that raw bytes "might lock the event loop",
    but a transport write never blocks: the transport buffers what the socket
    does not take at once.

    Args:
        value: The body.
        content_type: Its ``Content-Type`` (when the request has none).
        replayable: Whether aiohttp may send it again by itself, when a kept-alive
            connection turns out closed. Say ``False`` when the caller's own retries
            must see every failure, because a repeat means something (a GCS chunk
            resumes where its session stands; sent again blindly, an emulator
            appends it twice).

    Attributes:
        sent: Every byte of the body was handed to the connection.
    """

    _autoclose = True
    _transport: asyncio.BaseTransport | None = None

    def __init__(
        self,
        value: bytes | bytearray | memoryview | AsyncIterable[bytes],
        *,
        content_type: str = "application/octet-stream",
        replayable: bool = True,
    ) -> None:
        super().__init__(value, content_type=content_type)
        self._replayable = replayable
        if isinstance(value, (bytes, bytearray, memoryview)):
            self._size: int | None = memoryview(value).nbytes
        self.sent = False
        self.on_progress: Callable[[], None] = _nothing

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        if self._size is None:
            raise TypeError("a streamed body cannot be decoded")
        return bytes(self._value).decode(encoding, errors)

    async def write(self, writer: Any) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:
        self._consumed = not self._replayable  # aiohttp replays only bodies not consumed
        self._transport = getattr(writer, "transport", None)
        async for piece in self._pieces(content_length):
            await writer.write(piece)
            self.on_progress()
        self.sent = True
        self.on_progress()

    def delivered(self) -> bool:
        """Whether the server's host has the whole body (it may be acting on it).

        The body was written and the connection's send queue is empty: the peer's
        TCP acknowledged every byte (Linux's ``SIOCOUTQ``; where the queue cannot
        be read, a body is never taken as delivered).
        """
        transport = self._transport
        # Duck-typed: uvloop's transports are no asyncio.WriteTransport, but have the same methods.
        buffered = getattr(transport, "get_write_buffer_size", None)
        if not self.sent or transport is None or buffered is None or buffered():
            return False
        sock = transport.get_extra_info("socket")
        try:
            import fcntl  # here: Windows has neither
            import termios

            queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
        except (ImportError, AttributeError, OSError, ValueError):
            return False
        return int.from_bytes(queued, sys.byteorder, signed=True) == 0

    async def _pieces(self, limit: int | None) -> AsyncIterator[bytes | memoryview]:
        if self._size is None:  # a stream
            async for chunk in self._value:
                yield chunk
            return
        view = memoryview(self._value).cast("B")
        if limit is not None:
            view = view[:limit]
        for start in range(0, len(view), _SEND_PIECE):
            yield view[start : start + _SEND_PIECE]


def _nothing() -> None:
    pass


async def send_bounded(
    attempt: Callable[[], Awaitable[T]], body: SendBody, *, connect_timeout: float, idle: float
) -> T:
    """Make one attempt at a request whose body is ``body``, bounded while it is sent.

    aiohttp bounds the wait for an answer (``sock_read``), but not the wait for
    ``100 Continue`` nor a body write that the server stopped reading: those
    would wait forever, whatever the timeouts say. Here:

    - until the whole body is on the wire, the attempt fails with ``TimeoutError``
      when the body does not move for ``idle`` seconds (the connection and a
      ``100 Continue`` get ``connect_timeout`` more); the answer is then aiohttp's
      to bound;
    - cancelled before the server's host has the whole body
      (:meth:`SendBody.delivered`), the attempt ends at once: the server cannot
      act on part of a body. Cancelled after, it first waits (at most ``idle``
      seconds) for the answer, since the server may be acting on the request:
      whoever cancelled (a writer aborting its upload) can then rely on the
      request being over, e.g. on no part landing after the abort.

    Args:
        attempt: Sends the request with ``body`` and returns what it answers.
        body: The request's body.
        connect_timeout: Seconds allowed for the connection.
        idle: The longest pause of the body, and of the answer after a cancellation.

    Returns:
        What ``attempt`` returned.

    Raises:
        TimeoutError: The body stalled.
    """
    task = asyncio.get_running_loop().create_task(_watch_body(attempt, body, connect_timeout, idle))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with shielded():
            if not task.done() and body.delivered():
                await asyncio.wait({task}, timeout=idle)
            task.cancel()
            await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # looked at: the cancellation is what is raised
        raise


async def _watch_body(
    attempt: Callable[[], Awaitable[T]], body: SendBody, connect_timeout: float, idle: float
) -> T:
    with anyio.CancelScope(deadline=anyio.current_time() + connect_timeout + idle) as scope:

        def progress() -> None:
            scope.deadline = math.inf if body.sent else anyio.current_time() + idle

        body.on_progress = progress
        try:
            return await attempt()
        finally:
            # progress refers to the body: break the cycle, so that the body (a part
            # of several MiB) goes as soon as the request is over, not at the next
            # collection of cycles, which big byte strings alone never trigger.
            body.on_progress = _nothing
    raise TimeoutError(f"the server took no request bytes for {idle:g} s")


def new_token() -> str:
    """A fresh write token (see :data:`WRITE_TOKEN`)."""
    return uuid.uuid4().hex
