"""A blocking pipeline step, written as for ZenML's BaseArtifactStore, on the sync facade.

Run: python examples/sync_step.py [STORE_URI]   (default: a temporary local directory)

The steps are plain functions on ``artifactio.ArtifactStore``: they run in
worker threads, and they run unchanged when called straight from ``async def``
code on the thread that runs an event loop, as notebook kernels and some async
orchestrators do.
"""

from __future__ import annotations

import asyncio
import pickle
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import artifactio


def train_step(store: artifactio.ArtifactStore, run: str) -> None:
    store.makedirs(f"{run}/model")
    with store.open(f"{run}/model/weights.pkl", "wb") as f:  # a real io.BufferedWriter
        pickle.dump({"w": [0.1, 0.2, 0.3], "b": 0.5}, f)
    with store.open(f"{run}/model/card.md", "w") as f:
        f.write("# model card\ntrained on toy data\n")


def evaluate_step(store: artifactio.ArtifactStore, run: str) -> float:
    with store.open(f"{run}/model/weights.pkl", "rb") as f:
        params = pickle.load(f)
    return float(sum(params["w"]) + params["b"])


def main(uri: str) -> None:
    with artifactio.ArtifactStore(uri) as store:
        # Steps may run in threads; one facade serves them all.
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda i: train_step(store, f"runs/{i}"), range(8)))
        scores = [evaluate_step(store, f"runs/{i}") for i in range(8)]
        print("scores:", scores)
        print("runs:", store.listdir("runs"))
        print("cards:", len(store.glob("runs/*/model/card.md")))
        st = store.stat("runs/0/model/weights.pkl")
        print("weights.pkl:", st.st_size, "bytes, is_file:", st.is_file)
        store.rename("runs/0", "runs/0-best")
        store.copyfile("runs/0-best/model/card.md", "runs/card-of-best.md")
        try:
            store.remove("runs/1")  # a directory
        except IsADirectoryError as exc:
            print("as expected:", exc)
        store.rmtree("runs")
        print("exists after rmtree:", store.exists("runs"))


async def async_orchestrator(uri: str) -> None:
    """Call the blocking steps directly inside ``async def``, as a notebook cell does.

    Local and memory stores run the call in this thread; S3 and GCS stores run it
    on the facade's own event-loop thread, so the loop blocked here is never needed.
    """
    assert asyncio.get_running_loop().is_running()
    with artifactio.ArtifactStore(uri) as store:
        train_step(store, "notebook/run")  # no await, no thread: blocking calls on the loop
        score = evaluate_step(store, "notebook/run")
        print("steps called inside a running event loop: score", score)
        store.rmtree("notebook")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
        asyncio.run(async_orchestrator(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory(prefix="artifactio-example-") as tmp:
            main(tmp)
            asyncio.run(async_orchestrator(tmp))
