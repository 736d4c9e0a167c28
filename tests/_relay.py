"""A TCP relay for tests: forwards to a real server and can hold its answers back mid-way."""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any

__all__ = ["StallingRelay"]


class StallingRelay:
    """A TCP relay to a real server that can hold the server's answers back mid-way."""

    def __init__(self, target: str) -> None:
        parts = urllib.parse.urlsplit(target)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.url = ""
        self.stalled = asyncio.Event()  # an answer is being held back
        self._go = asyncio.Event()
        self._go.set()
        self._passed = 0  # bytes of answers forwarded
        self._limit: int | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._handlers: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> StallingRelay:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        self.release()
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    def stall_after(self, nbytes: int) -> None:
        """Forward ``nbytes`` more bytes of answers, then hold the rest back."""
        self._limit = self._passed + nbytes
        self._go.clear()

    def release(self) -> None:
        """Forward everything again."""
        self._limit = None
        self._go.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        self._writers.append(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers.append(up_writer)
        await asyncio.gather(
            self._pump(reader, up_writer, answers=False),
            self._pump(up_reader, writer, answers=True),
        )

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, answers: bool
    ) -> None:
        try:
            while data := await src.read(65536):
                if answers and self._limit is not None and self._passed + len(data) > self._limit:
                    room = max(0, self._limit - self._passed)
                    dst.write(data[:room])
                    self._passed += room
                    data = data[room:]
                    await dst.drain()
                    self.stalled.set()
                    await self._go.wait()
                dst.write(data)
                self._passed += len(data) if answers else 0
                await dst.drain()
        except OSError:
            pass
        finally:
            dst.close()
