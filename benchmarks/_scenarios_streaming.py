"""S8: peak RSS while streaming a 1 GiB object up and down, at default settings.

Each direction of each client runs in a child process of its own (:mod:`_memory`)
with the client as it comes (artifactio's store with only the endpoint and
credentials; obstore's and s3fs's defaults). Up: the bytes come from a
generator (one random MiB handed out again and again, so nothing near the
object's size is ever held), written through artifactio ``store.open('wb')``,
obstore ``put_async`` of an async iterator, s3fs ``open('wb')``. Down: the
object that client wrote is read in 1 MiB pieces and dropped, through
``store.open('rb')``, obstore's ``get_async`` stream, s3fs ``open('rb')``. The
row is the peak RSS growth of the transfer (MiB); artifactio is also measured
at a quarter of the size (not with ``--quick``), to show the peak does not
follow the object's size.
One run per row: the peak moves little between runs, and each run moves the
whole object.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from _harness import Case, EventLoop, MiB, missing
from _memory import peak_growth
from _s3_clients import S3Endpoint, artifactio_store, obstore_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from _harness import Context
    from _memory import Meter

__all__ = ["child_stream", "run_s8"]

BOUND_MIB = 128
LABELS = {
    ("artifactio", "up"): "artifactio store.open('wb')",
    ("artifactio", "down"): "artifactio store.open('rb')",
    ("obstore", "up"): "obstore put_async (async iterator)",
    ("obstore", "down"): "obstore get_async stream",
    ("s3fs", "up"): "s3fs open('wb')",
    ("s3fs", "down"): "s3fs open('rb')",
}


def _size(size: int) -> str:
    return f"{size // 1024 // MiB} GiB" if size % (1024 * MiB) == 0 else f"{size // MiB} MiB"


def run_s8(ctx: Context) -> None:
    """Measure S8 on the suite's SeaweedFS, one child process per row."""
    assert ctx.s3 is not None
    s, ep = ctx.settings, ctx.s3
    clients = ["artifactio"]
    for peer in ("obstore", "s3fs"):
        reason = missing(peer)
        if reason is None:
            clients.append(peer)
        else:
            ctx.results.skip("S8", peer, reason)
    runs = [(client, s.stream_size) for client in clients]
    if not s.quick:
        runs.insert(1, ("artifactio", s.stream_size // 4))
    for client, size in runs:
        key = f"s8/{client}-{size}.bin"
        for direction in ("up", "down"):
            case = Case(
                "S8",
                f"{direction}, peak RSS growth",
                "MiB",
                1,
                f"one {_size(s.stream_size)} object streamed at default settings, child process",
            )
            label = LABELS[client, direction]
            if size != s.stream_size:
                label += f", {_size(size)}"
            spec = {
                "endpoint": ep.to_dict(),
                "client": client,
                "direction": direction,
                "key": key,
                "size": size,
            }
            result = peak_growth("_scenarios_streaming:child_stream", spec)
            ctx.results.record(case, label, client == "artifactio", result["growth_mib"])
            if client == "artifactio":
                ctx.results.target("S8", case.name, label, None, BOUND_MIB)
        with EventLoop() as loop:

            async def remove(key: str = key) -> None:
                async with artifactio_store(ep) as store:
                    await store.remove(key)

            loop.run(remove())


async def _chunks(size: int) -> AsyncIterator[bytes]:
    block = os.urandom(MiB)
    left = size
    while left:
        piece = block if left >= MiB else block[:left]
        left -= len(piece)
        yield piece


async def child_stream(spec: dict[str, Any], meter: Meter) -> None:
    """In a child process: stream one object up or down with one client, metered."""
    ep = S3Endpoint(**spec["endpoint"])
    client, up, key, size = spec["client"], spec["direction"] == "up", spec["key"], spec["size"]
    moved = 0
    if client == "artifactio":
        async with artifactio_store(ep) as store:
            await store.write_bytes("s8/warm.bin", b"w")  # warm-up: modules, connection
            await store.read_bytes("s8/warm.bin")
            with meter:
                if up:
                    async with store.open(key, "wb") as f:
                        async for piece in _chunks(size):
                            moved += await f.write(piece)
                else:
                    async with store.open(key, "rb") as f:
                        while piece := await f.read(MiB):
                            moved += len(piece)
    elif client == "obstore":
        import obstore

        store = obstore_store(ep)
        await obstore.put_async(store, "s8/warm.bin", b"w")
        with meter:
            if up:
                await obstore.put_async(store, key, _chunks(size))
                moved = size
            else:
                result = await obstore.get_async(store, key)
                async for piece in result.stream():
                    moved += len(piece)
    else:
        import s3fs

        fs = s3fs.S3FileSystem(
            key=ep.key,
            secret=ep.secret,
            endpoint_url=ep.url,
            client_kwargs={"region_name": ep.region},
            config_kwargs={"s3": {"addressing_style": "path"}},
            skip_instance_cache=True,
        )
        fs.pipe_file(f"{ep.bucket}/s8/warm.bin", b"w")
        with meter:
            if up:
                with fs.open(f"{ep.bucket}/{key}", "wb") as f:
                    async for piece in _chunks(size):
                        moved += f.write(piece)
            else:
                with fs.open(f"{ep.bucket}/{key}", "rb") as f:
                    while piece := f.read(MiB):
                        moved += len(piece)
    if moved != size:
        raise RuntimeError(f"{client}: moved {moved} bytes, expected {size}")
    meter.extra["bytes"] = moved
