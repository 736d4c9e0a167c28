"""An async orchestrator awaiting many store operations at once, in anyio task groups.

Run: python examples/async_pipeline.py [STORE_URI]   (default: a temporary local directory)

Three pipeline steps save their artifacts concurrently (one task group, and one
per step inside it); a bounded fan-out reads every metrics file back, at most
eight reads in flight (an ``anyio.CapacityLimiter``); then one task fails while
a checkpoint is being written: the group cancels its siblings, and the
interrupted write leaves no file, partial or otherwise.
"""

from __future__ import annotations

import json
import sys
import tempfile

import anyio

import artifactio

STEPS = {"prepare": 20, "train": 40, "evaluate": 10}  # step -> metrics files it writes


async def save_step(store: artifactio.AsyncArtifactStore, step: str, count: int) -> None:
    """One step's artifacts: its metrics files concurrently, then a summary."""
    async with anyio.create_task_group() as tg:
        for i in range(count):
            payload = json.dumps({"step": step, "i": i, "loss": round(1 / (i + 1), 4)})
            tg.start_soon(store.write_bytes, f"run-1/{step}/metrics-{i:03d}.json", payload.encode())
    async with store.open(f"run-1/{step}/summary.txt", "w") as f:
        await f.write(f"{step}: {count} metrics files\n")


async def read_all(store: artifactio.AsyncArtifactStore, limit: int) -> tuple[float, int]:
    """Read every metrics file with at most ``limit`` reads in flight.

    Returns:
        The lowest loss seen, and the most reads that were in flight at once.
    """
    limiter = anyio.CapacityLimiter(limit)
    losses: list[float] = []
    in_flight = peak = 0

    async def load(path: str) -> None:
        nonlocal in_flight, peak
        async with limiter:
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                losses.append(json.loads(await store.read_bytes(path))["loss"])
            finally:
                in_flight -= 1

    async with anyio.create_task_group() as tg:
        for path in await store.glob("run-1/*/metrics-*.json"):
            tg.start_soon(load, path)
    return min(losses), peak


async def failing_run(store: artifactio.AsyncArtifactStore, chunks: list[int]) -> None:
    """A checkpoint is being written when another task of the same group fails."""
    writing = anyio.Event()

    async def save_checkpoint() -> None:
        async with store.open("run-2/checkpoint.bin", "wb") as f:
            for i in range(100):
                await f.write(b"\x01" * 64_000)
                chunks.append(i)
                writing.set()
                await anyio.sleep(0.01)  # the trainer computing the next chunk

    async def evaluate() -> None:
        await writing.wait()
        raise RuntimeError("evaluation crashed")

    async with anyio.create_task_group() as tg:
        tg.start_soon(save_checkpoint)
        tg.start_soon(evaluate)


async def main(uri: str) -> None:
    async with artifactio.open_store(uri) as store:
        async with anyio.create_task_group() as tg:
            for step, count in STEPS.items():
                tg.start_soon(save_step, store, step, count)
        async for dirpath, dirnames, filenames in store.walk("run-1"):
            print(f"{dirpath}: {len(dirnames)} dirs, {len(filenames)} files")

        best, peak = await read_all(store, limit=8)
        print(f"read {sum(STEPS.values())} metrics files, at most 8 in flight (peak: {peak})")
        print("best loss:", best)

        chunks: list[int] = []
        try:
            await failing_run(store, chunks)
        except Exception as group:  # an ExceptionGroup (the exceptiongroup backport on 3.10)
            errors = [str(e) for e in getattr(group, "exceptions", [group])]
            print(f"the task group raised {type(group).__name__}: {errors}")
        print(f"the checkpoint writer was cancelled after {len(chunks)} of 100 chunks")
        exists = await store.exists("run-2/checkpoint.bin")
        print("checkpoint.bin exists after the failure:", exists)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        anyio.run(main, sys.argv[1])
    else:
        with tempfile.TemporaryDirectory(prefix="artifactio-example-") as tmp:
            anyio.run(main, tmp)
