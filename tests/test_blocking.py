"""``artifactio.blocking.copy``/``sync``: the generated blocking twins of the bulk transfers.

They run between local directories and to and from S3 (SeaweedFS), from the main
thread, from plain threads (several at once), from inside a running event loop,
in a child after ``fork``, and give the reports the async functions give.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
from typing import TYPE_CHECKING, Any

import pytest

import artifactio
import artifactio.blocking
from _forking import in_child
from artifactio import ArtifactStore, TransferProgress, TransferReport
from artifactio.backends.s3 import S3Store

if TYPE_CHECKING:
    from pathlib import Path

    from artifactio.embedded import SeaweedFS

MiB = 1024 * 1024


def make_tree(root: Path, count: int = 60, big: int = 0, seed: int = 3) -> dict[str, bytes]:
    """``count`` small files over a few levels below ``root`` (plus one of ``big`` bytes)."""
    rng = random.Random(seed)
    files = {
        "/".join([*[f"d{i % 3}", "e"][: i % 3], f"f{i:03d}.bin"]): rng.randbytes(rng.randrange(900))
        for i in range(count)
    }
    if big:
        files["big/weights.bin"] = rng.randbytes(big)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` (hidden ones included), by relative path."""
    return {
        str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()
    }


def fields(report: TransferReport) -> dict[str, Any]:
    """The report's fields, less the elapsed time."""
    return {k: v for k, v in report.to_dict().items() if k != "elapsed"}


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    src = tmp_path / "src"
    src.mkdir()
    return src, make_tree(src)


def test_copy_and_sync_between_local_dirs(
    tree: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    src, files = tree
    report = artifactio.blocking.copy(str(src), str(tmp_path / "dst"), recursive=True)
    assert isinstance(report, TransferReport)
    assert (report.transferred, report.failed, report.bytes) == (
        len(files),
        0,
        sum(map(len, files.values())),
    )
    assert read_tree(tmp_path / "dst") == files
    expected = asyncio.run(artifactio.copy(str(src), str(tmp_path / "dst-async"), recursive=True))
    assert fields(report) == fields(expected)

    (src / "d1" / "new.bin").write_bytes(b"new")
    report = artifactio.blocking.sync(str(src), str(tmp_path / "dst"))
    assert (report.transferred, report.skipped) == (1, len(files))
    expected = asyncio.run(artifactio.sync(str(src), str(tmp_path / "dst-async")))
    assert fields(report) == fields(expected)
    assert artifactio.blocking.sync(str(src), str(tmp_path / "dst")).transferred == 0


def test_errors_and_failures_come_back_as_the_async_ones(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        artifactio.blocking.copy(str(tmp_path / "missing"), str(tmp_path / "out"))
    (tmp_path / "dir").mkdir()
    with pytest.raises(IsADirectoryError):
        artifactio.blocking.copy(str(tmp_path / "dir"), str(tmp_path / "out"))
    with pytest.raises(ValueError):
        artifactio.blocking.sync(str(tmp_path / "dir"), str(tmp_path / "out"), compare="nope")  # type: ignore[arg-type]


def test_from_a_plain_thread_and_from_several_at_once(
    tree: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    src, files = tree
    reports: dict[int, TransferReport] = {}
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            reports[i] = artifactio.blocking.copy(
                str(src), str(tmp_path / f"out{i}"), recursive=True, concurrency=4
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for thread in threads[:1]:  # one alone first, then five at once
        thread.start()
        thread.join()
    for thread in threads[1:]:
        thread.start()
    for thread in threads[1:]:
        thread.join()
    assert errors == []
    assert sorted(reports) == list(range(6))
    for i in range(6):
        assert reports[i].transferred == len(files)
        assert read_tree(tmp_path / f"out{i}") == files


def test_from_inside_a_running_event_loop(
    tree: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    """A sync step called by async code: the loop is blocked meanwhile, and nothing waits for it."""
    _src, files = tree

    async def main() -> TransferReport:
        async with artifactio.open_store(str(tmp_path)) as store:
            await store.write_bytes("src/written-in-the-loop", b"x")  # used on this loop first
            report = artifactio.blocking.copy((store, "src"), (store, "dst"), recursive=True)
            assert await store.read_bytes("dst/written-in-the-loop") == b"x"
            return report

    report = asyncio.run(main())
    assert report.transferred == len(files) + 1
    assert read_tree(tmp_path / "dst") == {**files, "written-in-the-loop": b"x"}


def test_facades_in_pairs_and_progress(tree: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    _src, files = tree
    seen: list[TransferProgress] = []
    with ArtifactStore(str(tmp_path)) as store:
        report = artifactio.blocking.sync((store, "src"), (store, "dst/"), progress=seen.append)
        assert report.transferred == len(files)
        assert store.read_bytes("dst/f000.bin") == files["f000.bin"]
    assert seen[-1].files_done == len(files)
    with pytest.raises(TypeError, match="AsyncArtifactStore"):
        artifactio.blocking.copy((object(), "x"), str(tmp_path / "y"))  # type: ignore[arg-type]


def test_keyboard_interrupt_cancels_the_transfer_and_waits_for_its_clean_up(
    tmp_path: Path,
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    files = make_tree(src, count=400, big=8 * MiB)
    main_thread = threading.main_thread().ident
    assert threading.get_ident() == main_thread
    assert main_thread is not None
    interrupted: list[bool] = []

    def progress(_: TransferProgress) -> None:  # on the transfers' loop thread
        if not interrupted:
            interrupted.append(True)
            signal.pthread_kill(main_thread, signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        artifactio.blocking.copy(
            str(src),
            str(tmp_path / "dst"),
            recursive=True,
            concurrency=2,
            part_size=64 * 1024,
            progress=progress,
        )
    assert interrupted
    # The transfer is over when the interrupt reaches the caller: no temporary
    # file, no partial file, only whole copies.
    copied = read_tree(tmp_path / "dst") if (tmp_path / "dst").exists() else {}
    assert {rel: files.get(rel) for rel in copied} == copied
    assert len(copied) < len(files)
    # The shared loop thread still serves the next call.
    again = artifactio.blocking.sync(str(src), str(tmp_path / "dst"))
    assert again.transferred == len(files) - len(copied)
    assert read_tree(tmp_path / "dst") == files


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_in_a_child_after_fork(tree: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    src, files = tree
    artifactio.blocking.copy(str(src), str(tmp_path / "parent"), recursive=True)  # loop started

    def child() -> bool:
        report = artifactio.blocking.copy(str(src), str(tmp_path / "child"), recursive=True)
        return report.transferred == len(files)

    in_child(child)
    assert read_tree(tmp_path / "child") == files
    assert artifactio.blocking.sync(str(src), str(tmp_path / "parent")).transferred == 0


# ------------------------------------------------------------------------ S3


@pytest.mark.s3
def test_to_and_from_s3_through_a_facade_and_an_async_store(
    tree: tuple[Path, dict[str, bytes]], tmp_path: Path, s3_root: str, seaweedfs: SeaweedFS
) -> None:
    src, files = tree
    options = seaweedfs.store_options(retries=1)
    with ArtifactStore(s3_root, **options) as s3:
        report = artifactio.blocking.copy(str(src), (s3, "up"), recursive=True)
        assert report.ok
        assert report.transferred == len(files)
        assert s3.read_bytes("up/f000.bin") == files["f000.bin"]
        assert artifactio.blocking.sync(str(src), (s3, "up")).transferred == 0

    async def from_s3() -> TransferReport:
        async with S3Store(s3_root, **options) as store:
            return await artifactio.copy((store, "up"), str(tmp_path / "async"), recursive=True)

    expected = asyncio.run(from_s3())
    store = S3Store(s3_root, **options)
    try:
        report = artifactio.blocking.copy((store, "up"), str(tmp_path / "down"), recursive=True)
    finally:
        asyncio.run(store.aclose())
    assert fields(report) == fields(expected)
    assert read_tree(tmp_path / "down") == files


@pytest.mark.s3
def test_s3_from_inside_a_running_event_loop(
    tree: tuple[Path, dict[str, bytes]], s3_root: str, seaweedfs: SeaweedFS
) -> None:
    """The store's client on the caller's loop is blocked; the transfer uses its own."""
    src, files = tree

    async def main() -> TransferReport:
        async with S3Store(s3_root, **seaweedfs.store_options(retries=1)) as store:
            await store.write_bytes("up/already.bin", b"a")
            report = artifactio.blocking.sync(str(src), (store, "up"), delete=True)
            assert not await store.exists("up/already.bin")
            assert await store.read_bytes("up/d1/f001.bin") == files["d1/f001.bin"]
            return report

    report = asyncio.run(main())
    assert (report.transferred, report.failed) == (len(files), 0)


def test_called_from_the_transfers_own_loop_thread_raises_instead_of_deadlocking(
    tree: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    src, _ = tree

    def progress(_: TransferProgress) -> None:  # runs on the shared loop thread
        artifactio.blocking.copy(str(src), str(tmp_path / "inner"), recursive=True)

    with pytest.raises(RuntimeError, match="own event loop thread"):
        artifactio.blocking.copy(
            str(src), str(tmp_path / "outer"), recursive=True, progress=progress
        )
    assert not (tmp_path / "inner").exists()
