"""An async orchestrator writing a training run's artifacts concurrently, then inspecting them.

Run: python examples/async_pipeline.py [STORE_URI]   (default: a temporary local directory)
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile

import artifactio


async def main(uri: str) -> None:
    async with artifactio.open_store(uri) as store:
        # Write 50 per-epoch metric files concurrently, and one larger model file in chunks.
        async def save_epoch(epoch: int) -> None:
            payload = json.dumps({"epoch": epoch, "loss": round(1 / (epoch + 1), 4)})
            await store.write_bytes(f"run-1/metrics/epoch-{epoch:03d}.json", payload.encode())

        await asyncio.gather(*(save_epoch(e) for e in range(50)))
        async with store.open("run-1/model.bin", "wb") as f:
            for _ in range(4):
                await f.write(b"\x01" * 256_000)

        # A crash in the middle of a write leaves the previous model untouched.
        try:
            async with store.open("run-1/model.bin", "wb") as f:
                await f.write(b"partial")
                raise RuntimeError("trainer died")
        except RuntimeError:
            pass
        assert await store.size("run-1/model.bin") == 1_024_000

        async for dirpath, dirnames, filenames in store.walk("run-1"):
            print(f"{dirpath}: {len(dirnames)} dirs, {len(filenames)} files")
        last = (await store.glob("run-1/metrics/epoch-04*.json"))[-1]
        print("last epoch file:", last)
        async with store.open(last) as f:
            print("last epoch:", json.loads(await f.read()))
        print("run size:", await store.size("run-1"), "bytes")


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="artifactio-example-")
    asyncio.run(main(target))
