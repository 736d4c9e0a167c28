"""A fault-injecting HTTP proxy for tests: a real server behind it, faults where a test asks.

:class:`FaultProxy` listens on 127.0.0.1 and relays HTTP/1.1 to one real server
(SeaweedFS, fake-gcs-server), one upstream connection per client connection, so
keep-alive connections carrying several requests stay what they are. It
understands the messages it relays: request and response heads, bodies framed
by ``Content-Length`` or ``Transfer-Encoding: chunked`` (or, for answers, by the
end of the connection), and ``Expect: 100-continue`` (the server's ``100
Continue`` is relayed like any interim answer). ``Location`` headers that point
at the server are rewritten to point at the proxy, so a GCS resumable session
goes through it too.

A test adds rules; each matches requests (``method``, a ``target`` regex searched
in ``path?query``, a ``where`` predicate on the parsed :class:`Request`) and,
from its ``nth`` match on, for ``times`` matches (``None``: all), applies one
action:

- :class:`Drop`: the server gets the request and answers; the answer is thrown
  away and the client's connection closed (``reset=True``: with an RST).
- :class:`Cut`: the answer's head and its first ``nbytes`` body bytes pass, then
  the connection is closed.
- :class:`Reset`: the connection is reset as soon as the request's head is in;
  the server never sees the request.
- :class:`StallUpload`: the proxy takes the head, answers ``100 Continue`` itself
  when asked, accepts ``after`` body bytes and then stops reading (small socket
  buffers make the client's writes block soon); the server sees nothing until
  the rule is released, then the whole request.
- :class:`StallResponse`: the server gets the request and answers; the proxy
  holds the answer back (``after``: pass the head and that many body bytes
  first) until the rule is released.

``action`` may also be a function of the :class:`Request` that returns an action
or ``None`` (no fault): a randomized run draws its faults so.

Example::

    async with FaultProxy(seaweedfs.url) as proxy:
        rule = proxy.add(Drop(), method="POST", target=r"[?&]uploads\\b")
        store = S3Store(root, **seaweedfs.store_options(endpoint_url=proxy.url))
        ...
        assert rule.hits == 1
        stall = proxy.add(StallUpload(), method="PUT", times=None)
        ...
        await stall.fired.wait()  # a request is being held
        stall.release()           # let it (and later matches) through

Leaving the ``async with`` releases every stall and closes every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import re
import socket
import struct
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from multidict import CIMultiDict, CIMultiDictProxy

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

__all__ = [
    "Action",
    "Cut",
    "Drop",
    "FaultProxy",
    "Request",
    "Reset",
    "Rule",
    "StallResponse",
    "StallUpload",
]

_CHUNK = 64 * 1024
_SOCKET_BUFFER = 32 * 1024
"""Receive buffer of the proxy's sockets: a stalled upload blocks its client soon."""


@dataclass(frozen=True)
class Drop:
    """The server acts, its answer is lost: the connection closes (``reset``: RST)."""

    reset: bool = False


@dataclass(frozen=True)
class Cut:
    """Pass the answer's head and ``nbytes`` of its body (as framed), then close."""

    nbytes: int = 0


@dataclass(frozen=True)
class Reset:
    """Reset the connection once the request's head is in; the server sees nothing."""


@dataclass(frozen=True)
class StallUpload:
    """Answer ``100 Continue`` where asked, take ``after`` body bytes, then stop reading."""

    after: int = 0


@dataclass(frozen=True)
class StallResponse:
    """Hold the answer back (``after``: pass its head and that many body bytes first)."""

    after: int | None = None


Action: TypeAlias = Drop | Cut | Reset | StallUpload | StallResponse


@dataclass(frozen=True)
class Request:
    """A request's head as the proxy parsed it.

    Attributes:
        method: The method (upper case).
        target: The request target as sent (``path?query``, still encoded).
        headers: The headers.
        connection: Which client connection it came on (from 1).
        index: Its place on that connection (from 1).
    """

    method: str
    target: str
    headers: CIMultiDictProxy[str]
    connection: int = 0
    index: int = 0

    @property
    def path(self) -> str:
        """The decoded path."""
        return urllib.parse.unquote(self.target.partition("?")[0])

    @property
    def query(self) -> dict[str, list[str]]:
        """The query parameters (``?uploads`` gives ``{"uploads": [""]}``)."""
        return urllib.parse.parse_qs(self.target.partition("?")[2], keep_blank_values=True)


@dataclass
class Rule:
    """Which requests get which fault; see the module docstring.

    Attributes:
        matches: Requests that matched so far.
        hits: Requests the action was applied to.
        fired: Set when the action first took effect (a stall began, a connection closed).
        released: Set by :meth:`release`; stalls wait for it.
    """

    action: Action | Callable[[Request], Action | None]
    method: str | None = None
    target: str | None = None
    where: Callable[[Request], bool] | None = None
    nth: int = 1
    times: int | None = 1
    matches: int = 0
    hits: int = 0
    fired: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        """End this rule's stalls, those in place and those to come."""
        self.released.set()

    def _decide(self, request: Request) -> Action | None:
        if self.method is not None and request.method != self.method.upper():
            return None
        if self.target is not None and not re.search(self.target, request.target):
            return None
        if self.where is not None and not self.where(request):
            return None
        self.matches += 1
        if self.matches < self.nth or (self.times is not None and self.hits >= self.times):
            return None
        action = self.action if not callable(self.action) else self.action(request)
        if action is not None:
            self.hits += 1
        return action


class _Closed(Exception):
    """The peer closed the connection in the middle of a message."""


@dataclass
class _Head:
    """A message head: its first line and its header lines, as sent."""

    line: str
    fields: list[tuple[str, str]]

    @classmethod
    def parse(cls, raw: bytes) -> _Head:
        text = raw.decode("latin-1")
        lines = text.split("\r\n")
        fields: list[tuple[str, str]] = []
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            fields.append((name.strip(), value.strip()))
        return cls(lines[0], fields)

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return CIMultiDictProxy(CIMultiDict(self.fields))

    def without(self, name: str) -> _Head:
        return _Head(self.line, [(k, v) for k, v in self.fields if k.lower() != name.lower()])

    def encode(self) -> bytes:
        lines = [self.line, *(f"{k}: {v}" for k, v in self.fields), "", ""]
        return "\r\n".join(lines).encode("latin-1")


async def _read_head(reader: asyncio.StreamReader) -> _Head | None:
    """The next message head, or ``None`` when the connection ends cleanly before one."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise _Closed from exc
        return None
    return _Head.parse(raw)


def _framing(headers: CIMultiDictProxy[str], *, until_close: bool) -> int | str:
    """How a body is delimited: a length, ``"chunked"`` or ``"close"``."""
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        return "chunked"
    if "Content-Length" in headers:
        return int(headers["Content-Length"])
    return "close" if until_close else 0


async def _raw_body(
    reader: asyncio.StreamReader, framing: int | str
) -> AsyncGenerator[bytes, None]:
    """The bytes of one body as they arrive, framing included."""

    async def exactly(n: int) -> AsyncIterator[bytes]:
        while n:
            data = await reader.read(min(n, _CHUNK))
            if not data:
                raise _Closed
            n -= len(data)
            yield data

    async def line() -> bytes:
        try:
            return await reader.readuntil(b"\r\n")
        except asyncio.IncompleteReadError as exc:
            raise _Closed from exc

    if framing == "close":
        while data := await reader.read(_CHUNK):
            yield data
    elif framing == "chunked":
        while True:
            size_line = await line()
            yield size_line
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:  # trailers, then the empty line
                    trailer = await line()
                    yield trailer
                    if trailer == b"\r\n":
                        return
            async for data in exactly(size + 2):  # the data and its CRLF
                yield data
    else:
        assert isinstance(framing, int)
        async for data in exactly(framing):
            yield data


Sink: TypeAlias = "Callable[[bytes], Awaitable[None]] | None"


class _Body:
    """One message body being relayed, which can be passed on in several steps."""

    def __init__(self, reader: asyncio.StreamReader, framing: int | str) -> None:
        self._pieces = _raw_body(reader, framing)
        self._held = b""
        self.ended = False

    async def pipe(self, sink: Sink, limit: int | None = None) -> None:
        """Pass up to ``limit`` bytes (all when ``None``) to ``sink`` (``None``: discard)."""
        passed = 0
        while not self.ended and (limit is None or passed < limit):
            if self._held:
                piece, self._held = self._held, b""
            else:
                got = await anext(self._pieces, None)
                if got is None:
                    self.ended = True
                    return
                piece = got
            if limit is not None and passed + len(piece) > limit:
                piece, self._held = piece[: limit - passed], piece[limit - passed :]
            if sink is not None:
                await sink(piece)
            passed += len(piece)

    async def aclose(self) -> None:
        await self._pieces.aclose()


def _to(writer: asyncio.StreamWriter) -> Callable[[bytes], Awaitable[None]]:
    async def send(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    return send


def _into(buffer: bytearray) -> Callable[[bytes], Awaitable[None]]:
    async def keep(data: bytes) -> None:
        buffer.extend(data)

    return keep


def _abort_if_failed(writer: asyncio.StreamWriter, task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        writer.transport.abort()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST rather than a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """An HTTP/1.1 proxy on 127.0.0.1 in front of ``target`` that injects faults by rule.

    Args:
        target: The real server's base URL (``http://127.0.0.1:port``).

    Attributes:
        url: The proxy's base URL, once entered.
        requests: Every request head it took, in order.
        faults: Every fault applied: ``(request, action)``.
    """

    def __init__(self, target: str) -> None:
        parts = urllib.parse.urlsplit(target)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self.url = ""
        self.requests: list[Request] = []
        self.faults: list[tuple[Request, Action]] = []
        self._rules: list[Rule] = []
        self._numbers = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()

    async def __aenter__(self) -> FaultProxy:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
        sock.bind(("127.0.0.1", 0))
        self._server = await asyncio.start_server(self._serve, sock=sock)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        self._closing.set()
        self.release()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._handlers:
            await asyncio.wait(self._handlers)
        await self._server.wait_closed()

    def add(
        self,
        action: Action | Callable[[Request], Action | None],
        *,
        method: str | None = None,
        target: str | None = None,
        where: Callable[[Request], bool] | None = None,
        nth: int = 1,
        times: int | None = 1,
    ) -> Rule:
        """Add a rule (checked after those added before it); see the module docstring."""
        rule = Rule(action, method, target, where, nth, times)
        self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule and release their stalls."""
        for rule in self._rules:
            rule.release()
        self._rules.clear()

    def release(self) -> None:
        """Release every stall, in place and to come."""
        for rule in self._rules:
            rule.release()

    def _decide(self, request: Request) -> tuple[Rule, Action] | None:
        chosen: tuple[Rule, Action] | None = None
        for rule in self._rules:
            action = rule._decide(request)
            if action is not None and chosen is None:
                chosen = (rule, action)
        if chosen is not None:
            self.faults.append((request, chosen[1]))
        return chosen

    async def _wait(self, rule: Rule) -> None:
        rule.fired.set()
        if not rule.released.is_set():
            await rule.released.wait()

    # ------------------------------------------------------------- relaying

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        number = next(self._numbers)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            for index in itertools.count(1):
                head = await _read_head(reader)
                if head is None or self._closing.is_set():
                    break
                method, target, _ = head.line.split(" ", 2)
                request = Request(method.upper(), target, head.headers, number, index)
                self.requests.append(request)
                chosen = self._decide(request)
                rule, action = chosen if chosen is not None else (None, None)
                if isinstance(action, Reset):
                    assert rule is not None
                    _reset(writer)
                    rule.fired.set()
                    break
                body = _Body(reader, _framing(request.headers, until_close=False))
                early = bytearray()
                if isinstance(action, StallUpload):
                    assert rule is not None
                    if request.headers.get("Expect", "").lower() == "100-continue":
                        head = head.without("Expect")
                        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                        await writer.drain()
                    await body.pipe(_into(early), action.after)
                    await self._wait(rule)
                    if self._closing.is_set():
                        break
                if upstream is None or upstream[0].at_eof():
                    if upstream is not None:
                        upstream[1].close()
                    upstream = await asyncio.open_connection(*self._target)
                    self._writers.add(upstream[1])
                up_reader, up_writer = upstream
                up_writer.write(head.encode() + bytes(early))
                await up_writer.drain()
                sending = asyncio.get_running_loop().create_task(body.pipe(_to(up_writer)))
                # The client went away mid-body: the server would wait for the rest.
                sending.add_done_callback(functools.partial(_abort_if_failed, up_writer))
                try:
                    keep_alive = await self._answer(request, up_reader, writer, rule, action)
                finally:
                    if not sending.done():
                        sending.cancel()
                        keep_alive = False
                    with contextlib.suppress(Exception, asyncio.CancelledError):
                        await sending
                    await body.aclose()
                if not keep_alive:
                    break
        except (OSError, _Closed, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            for w in (writer, upstream[1] if upstream is not None else None):
                if w is not None:
                    w.close()
                    self._writers.discard(w)
            self._handlers.discard(task)

    async def _answer(
        self,
        request: Request,
        up_reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        rule: Rule | None,
        action: Action | None,
    ) -> bool:
        """Relay (or not) the server's answer; whether the connection may carry another."""
        while True:
            head = await _read_head(up_reader)
            if head is None:  # the server closed without answering
                return False
            status = int(head.line.split(" ", 2)[1])
            if not 100 <= status < 200:
                break
            writer.write(head.encode())  # 100 Continue and the like: always passed on
            await writer.drain()
        headers = head.headers
        if request.method == "HEAD" or status in (204, 304):
            framing: int | str = 0
        else:
            framing = _framing(headers, until_close=True)
        keep_alive = framing != "close" and "close" not in headers.get("Connection", "").lower()
        location = headers.get("Location", "")
        if location.startswith(self._origin):
            head = head.without("Location")
            head.fields.append(("Location", self.url + location[len(self._origin) :]))
        body = _Body(up_reader, framing)
        try:
            if isinstance(action, Drop):
                assert rule is not None
                await body.pipe(None)  # the server's work is done; its answer is lost
                if action.reset:
                    _reset(writer)
                rule.fired.set()
                return False
            send = _to(writer)
            if isinstance(action, StallResponse) and action.after is None:
                assert rule is not None
                await self._wait(rule)
            await send(head.encode())
            if isinstance(action, Cut):
                assert rule is not None
                await body.pipe(send, action.nbytes)
                rule.fired.set()
                return False
            if isinstance(action, StallResponse) and action.after is not None:
                assert rule is not None
                await body.pipe(send, action.after)
                await self._wait(rule)
            await body.pipe(send)
        finally:
            await body.aclose()
        return keep_alive
