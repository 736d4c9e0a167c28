"""pandas, pyarrow and dask read and write through ArtifactioFileSystem.

pandas (CSV, gzip'd CSV, Parquet; through ``artifactio://`` URLs, the filesystem
object and open files) and pyarrow (a Parquet dataset of several files, and a
partitioned one through pyarrow's own filesystem wrapper) on memory:// and S3
(SeaweedFS); dask reads CSV files in worker processes from S3.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.dataset
import pyarrow.fs
import pyarrow.parquet as pq
import pytest

from _fsspec_fixtures import frame, open_backend
from artifactio.integrations.fsspec import ArtifactioFileSystem

if TYPE_CHECKING:
    from collections.abc import Iterator

    import artifactio


@pytest.fixture(scope="module", params=["memory", pytest.param("s3", marks=pytest.mark.s3)])
def shared_store(request: pytest.FixtureRequest) -> Iterator[artifactio.AsyncArtifactStore]:
    """One store per backend for the module (a client per loop, made once)."""
    yield from open_backend(request, str(request.param))


@pytest.fixture
def base(shared_store: artifactio.AsyncArtifactStore) -> str:
    """A fresh directory of the shared store, as a full path."""
    return f"{shared_store.root}/t-{uuid.uuid4().hex[:12]}"


def test_pandas_writes_and_reads_csv_and_parquet(
    shared_store: artifactio.AsyncArtifactStore, base: str
) -> None:
    fs = ArtifactioFileSystem(shared_store)
    df = frame()
    options = {"store_or_uri": shared_store}
    # Through artifactio:// URLs (pandas asks fsspec for the filesystem)...
    df.to_csv(f"artifactio://{base}/frame.csv", index=False, storage_options=options)
    df.to_parquet(f"artifactio://{base}/frame.parquet", storage_options=options)
    assert pd.read_csv(f"artifactio://{base}/frame.csv", storage_options=options).equals(df)
    assert pd.read_parquet(f"artifactio://{base}/frame.parquet", storage_options=options).equals(df)
    # ... through the filesystem object, and through open files.
    df.to_parquet(f"{base}/direct.parquet", filesystem=fs)
    assert pd.read_parquet(f"{base}/direct.parquet", filesystem=fs).equals(df)
    with fs.open(f"{base}/text.csv", "w") as f:
        df.to_csv(f, index=False)
    with fs.open(f"{base}/text.csv", "rb") as f:
        assert pd.read_csv(f).equals(df)
    df.to_csv(
        f"artifactio://{base}/frame.csv.gz",
        index=False,
        compression="gzip",
        storage_options=options,
    )
    assert fs.cat(f"{base}/frame.csv.gz")[:2] == b"\x1f\x8b"
    assert pd.read_csv(f"artifactio://{base}/frame.csv.gz", storage_options=options).equals(df)
    assert sorted(fs.ls(base, detail=False)) == [
        f"{base}/{name}"
        for name in ["direct.parquet", "frame.csv", "frame.csv.gz", "frame.parquet", "text.csv"]
    ]


def test_pyarrow_reads_a_parquet_dataset_of_several_files(
    shared_store: artifactio.AsyncArtifactStore, base: str
) -> None:
    fs = ArtifactioFileSystem(shared_store)
    for part in range(4):
        table = pa.table({"part": [part] * 10, "value": list(range(part * 10, part * 10 + 10))})
        pq.write_table(table, f"{base}/ds/part-{part}.parquet", filesystem=fs)
    dataset = pyarrow.dataset.dataset(f"{base}/ds", filesystem=fs, format="parquet")
    assert sorted(dataset.files) == [f"{base}/ds/part-{i}.parquet" for i in range(4)]
    table = dataset.to_table()
    assert sorted(table.column("value").to_pylist()) == list(range(40))
    assert dataset.to_table(filter=pyarrow.dataset.field("part") == 2).num_rows == 10

    # pyarrow's own view of the filesystem: a partitioned dataset, written and read back.
    arrow_fs = pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(fs))
    pyarrow.dataset.write_dataset(
        table,
        f"{base}/by-part",
        filesystem=arrow_fs,
        format="parquet",
        partitioning=["part"],
        partitioning_flavor="hive",
    )
    back = pyarrow.dataset.dataset(
        f"{base}/by-part", filesystem=arrow_fs, format="parquet", partitioning="hive"
    ).to_table()
    assert sorted(back.column("value").to_pylist()) == list(range(40))
    infos = arrow_fs.get_file_info(pyarrow.fs.FileSelector(f"{base}/by-part", recursive=True))
    kinds = {info.path: info.type for info in infos}
    assert kinds[f"{base}/by-part/part=3"] == pyarrow.fs.FileType.Directory
    assert sum(kind == pyarrow.fs.FileType.File for kind in kinds.values()) == 4


def test_dask_reads_through_the_filesystem_in_worker_processes(
    s3_root: str, s3_options: dict[str, Any]
) -> None:
    """dask pickles the filesystem into each worker process, which opens the store again."""
    dd = pytest.importorskip("dask.dataframe")
    storage_options = {"store_or_uri": s3_root, **s3_options}
    fs = fsspec.filesystem("artifactio", **storage_options)
    try:
        for part in range(3):
            with fs.open(f"csv/part-{part}.csv", "w") as f:
                frame().assign(part=part).to_csv(f, index=False)
        lazy = dd.read_csv("artifactio://csv/*.csv", storage_options=storage_options)
        result = lazy.compute(scheduler="processes", num_workers=2)
        assert sorted(result["part"].unique()) == [0, 1, 2]
        assert len(result) == 18
        fs.rm("csv", recursive=True)
    finally:
        fs.close()
