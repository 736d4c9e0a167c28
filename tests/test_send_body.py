"""A request body knows when the server's host holds all of it, on every kind of event loop.

``SendBody.delivered()`` decides whether a cancelled upload part still waits for
its answer (the server may be acting on it) or stops at once. It reads the
connection's send queue through the transport, so it must work on asyncio's
transports and on uvloop's (which are no ``asyncio.WriteTransport``), the loops
async users run artifactio on.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import web

from artifactio.backends._objectstore._client import SendBody

if TYPE_CHECKING:
    from collections.abc import Callable

LOOP_KINDS = [
    "asyncio",
    pytest.param(
        "uvloop",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed"
        ),
    ),
]


def _loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


async def _upload_held_open(size: int) -> tuple[bool, bool]:
    """POST ``size`` bytes to a loopback server that reads them all, then holds its answer.

    Returns ``delivered()`` before the body was sent and while the answer is held.
    """
    received = asyncio.Event()
    answer = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        received.set()
        await answer.wait()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    body = SendBody(b"x" * size)
    before = body.delivered()
    try:
        async with aiohttp.ClientSession() as session:
            post = asyncio.ensure_future(session.post(f"http://127.0.0.1:{port}/", data=body))
            await asyncio.wait_for(received.wait(), 30)
            held = body.delivered()
            answer.set()
            async with await post as response:
                assert response.status == 200
    finally:
        answer.set()
        await runner.cleanup()
    return before, held


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_a_body_the_server_read_whole_is_delivered(kind: str) -> None:
    loop = _loop_factory(kind)()
    try:
        before, held = loop.run_until_complete(_upload_held_open(256 * 1024))
    finally:
        loop.close()
    assert before is False  # nothing sent yet
    assert held is True  # all sent, all acknowledged, the answer not yet given
