"""pandas and pyarrow on an artifactio store, through fsspec (the protocol ``artifactio``).

Run: python examples/pandas_fsspec.py [STORE_URI]

A DataFrame goes to Parquet and CSV and comes back, written through the
filesystem object and through ``artifactio://`` URLs; pyarrow reads a Parquet
dataset of several files; a write that fails halfway leaves the old file.
With no argument the store is the embedded S3 server (SeaweedFS, from the
``demo`` extra), started here on 127.0.0.1 and stopped at the end; if it
cannot start, the example says why and uses an in-memory store. A STORE_URI
(a local directory, ``memory://...``, or ``s3://...`` configured through the
environment) is used instead.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import fsspec
import pandas as pd
import pyarrow.dataset

from artifactio.integrations.fsspec import ArtifactioFileSystem


def default_store(stack: contextlib.ExitStack) -> tuple[str, dict[str, Any]]:
    """Start the embedded S3 server (stopped when ``stack`` closes); else a memory store."""
    from artifactio.embedded import SeaweedFS

    fallback: tuple[str, dict[str, Any]] = ("memory://pandas-example/analytics", {})
    if not SeaweedFS.available():
        print("SeaweedFS is not installed (pip install 'artifactio[demo]'): using memory://")
        return fallback
    try:
        server = SeaweedFS(buckets=["analytics"]).start()
    except (OSError, RuntimeError) as exc:
        print(f"the embedded S3 server did not start ({exc}): using memory://")
        return fallback
    print(f"started SeaweedFS (pid {server.pid}) at {server.url}")

    def stop() -> None:
        pid = server.pid
        server.stop()
        print(f"stopped SeaweedFS (pid {pid})")

    stack.callback(stop)
    return "s3://analytics/runs", server.store_options()


def metrics(run: int, epochs: int = 5) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run": [run] * epochs,
            "epoch": range(epochs),
            "loss": [round(1 / (run + e + 1), 4) for e in range(epochs)],
            "note": [f"run {run}, epoch {e}: ok" for e in range(epochs)],
        }
    )


def main(argv: list[str]) -> None:
    with contextlib.ExitStack() as stack:
        uri, options = (argv[0], {}) if argv else default_store(stack)
        # One filesystem per store: fsspec caches it, so the artifactio:// URLs
        # below with the same storage options reach this very instance.
        storage_options = {"store_or_uri": uri, **options}
        fs = fsspec.filesystem("artifactio", **storage_options)
        assert isinstance(fs, ArtifactioFileSystem)
        stack.callback(fs.close)  # closes the store it opened, before the server stops
        print(f"filesystem: {fs!r}")

        df = metrics(1)
        # Parquet through the filesystem object, CSV through a URL: both are store paths.
        df.to_parquet("run-1/metrics.parquet", filesystem=fs)
        df.to_csv("artifactio://run-1/metrics.csv", index=False, storage_options=storage_options)
        back_parquet = pd.read_parquet("run-1/metrics.parquet", filesystem=fs)
        back_csv = pd.read_csv("artifactio://run-1/metrics.csv", storage_options=storage_options)
        print("Parquet round trip equal:", back_parquet.equals(df))
        print("CSV round trip equal:", back_csv.equals(df))

        # A dataset of several Parquet files, read by pyarrow in one go.
        for run in range(2, 6):
            metrics(run).to_parquet(f"sweep/run-{run}.parquet", filesystem=fs)
        table = pyarrow.dataset.dataset("sweep", filesystem=fs, format="parquet").to_table()
        best = table.to_pandas().sort_values("loss").iloc[0]
        print(f"dataset: {table.num_rows} rows from {len(fs.ls('sweep'))} files;", end=" ")
        print(f"lowest loss {best['loss']} (run {best['run']}, epoch {best['epoch']})")

        # A write that fails halfway publishes nothing: the CSV is still the old one.
        try:
            with fs.open("run-1/metrics.csv", "w") as f:
                f.write("run,epoch\n")
                raise RuntimeError("the job died while writing")
        except RuntimeError as exc:
            print(f"failed write ({exc}); CSV unchanged:", end=" ")
        print(pd.read_csv(fs.open("run-1/metrics.csv")).equals(df))

        for path in fs.find(""):
            print(f"  {fs.unstrip_protocol(path)}  {fs.size(path)} bytes")
        ok = back_parquet.equals(df) and back_csv.equals(df) and table.num_rows == 20
    if not ok:
        raise SystemExit("the DataFrames did not come back equal")


if __name__ == "__main__":
    main(sys.argv[1:])
