"""The blocking facade ``artifactio.ArtifactStore``: operations, errors and files.

Every test runs twice (the ``store`` fixture, tests/_facade_fixtures.py): on the memory
backend, which the facade drives inline in the caller's thread, and on
:class:`SuspendingMemoryStore`, a memory store whose primitives really suspend, so the
facade must run it on its loop thread. Threads and processes, and closing, have
their own modules (test_sync_facade_concurrency, test_sync_facade_closing).
"""

from __future__ import annotations

import asyncio
import collections.abc
import gc
import io
import os
import pickle
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

import artifactio
from _facade_fixtures import facade_store  # noqa: F401 - fixture
from artifactio import ArtifactStore, StoreClosedError
from artifactio._blocking import InlineSuspendedError, run_inline
from artifactio.testing import SuspendingMemoryStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


def test_loop_only_store_really_suspends(memory_root: str) -> None:
    """Guard for the tests below: driving SuspendingMemoryStore inline must fail."""
    # InlineSuspendedError, or anyio's NoEventLoopError: both are RuntimeErrors.
    assert issubclass(InlineSuspendedError, RuntimeError)
    with pytest.raises(RuntimeError, match=r"event loop|suspended"):
        run_inline(SuspendingMemoryStore(memory_root).exists("x"))


# ------------------------------------------------------------------ operations


def test_operations_return_what_the_async_methods_return(store: ArtifactStore) -> None:
    root = store.root
    assert store.isdir(root)
    store.makedirs("a/b")
    store.mkdir("a/c")
    store.write_bytes("a/b/one.bin", b"12345")
    store.write_bytes("a/two.txt", b"hi")
    assert store.exists("a/b/one.bin")
    assert not store.exists("a/missing")
    assert store.read_bytes("a/b/one.bin") == b"12345"
    assert store.listdir("a") == ["b", "c", "two.txt"]
    assert store.size("a/b/one.bin") == 5
    assert store.size("a") == 7
    st = store.stat("a/b/one.bin")
    assert isinstance(st, artifactio.StatResult)
    assert (st.st_size, st.is_file, st.path) == (5, True, f"{root}/a/b/one.bin")
    assert store.glob("a/**/*.bin") == [f"{root}/a/b/one.bin"]
    store.copyfile("a/two.txt", "a/c/three.txt")
    store.rename("a/b", "a/d")
    assert store.listdir("a") == ["c", "d", "two.txt"]
    store.remove("a/two.txt")
    store.rmtree("a/c")
    assert store.listdir("a") == ["d"]


def test_walk_is_a_lazy_plain_iterator_and_prunes(store: ArtifactStore) -> None:
    for path in ("w/a/1", "w/a/x/2", "w/b/3", "w/4"):
        store.write_bytes(path, b"")
    root = store.root
    walker = store.walk("w")
    assert isinstance(walker, collections.abc.Iterator)
    seen = []
    for dirpath, dirnames, filenames in walker:
        seen.append((dirpath, list(dirnames), filenames))
        if "a" in dirnames:
            dirnames.remove("a")
    assert seen == [(f"{root}/w", ["a", "b"], ["4"]), (f"{root}/w/b", [], ["3"])]
    bottom_up = [entry[0] for entry in store.walk("w", topdown=False)]
    assert bottom_up == [f"{root}/w/a/x", f"{root}/w/a", f"{root}/w/b", f"{root}/w"]
    errors: list[OSError] = []
    assert list(store.walk("nowhere", onerror=errors.append)) == []
    assert [type(e) for e in errors] == [FileNotFoundError]


def test_abandoned_iteration_closes_the_async_generator(store: ArtifactStore) -> None:
    events: list[str] = []

    async def numbers() -> AsyncIterator[int]:
        try:
            for i in range(10):
                if not store._runner.inline:
                    await asyncio.sleep(0)
                yield i
        finally:
            events.append("closed")

    it = store._iterate(numbers())
    assert next(it) == 0
    assert next(it) == 1
    it.close()
    assert events == ["closed"]
    it = store._iterate(numbers())
    assert next(it) == 0
    store.close()  # closing the facade mid-iteration still finalizes the generator
    with pytest.raises(StoreClosedError):
        next(it)
    assert events == ["closed", "closed"]


# ---------------------------------------------------------------------- errors


def _missing(store: ArtifactStore) -> None:
    store.read_bytes("missing")


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (_missing, FileNotFoundError),
        (lambda s: s.open("missing", "rb"), FileNotFoundError),
        (lambda s: s.open("d", "rb"), IsADirectoryError),
        (lambda s: s.open("f", "xb"), FileExistsError),
        (lambda s: s.write_bytes("f/below", b""), NotADirectoryError),
        (lambda s: s.remove("d"), IsADirectoryError),
        (lambda s: s.listdir("f"), NotADirectoryError),
        (lambda s: s.mkdir("d"), FileExistsError),
        (lambda s: s.copyfile("f", "f"), FileExistsError),
        (lambda s: s.rmtree(s.root), PermissionError),
        (lambda s: s.exists("memory://elsewhere/x"), artifactio.PathOutsideStoreError),
        (lambda s: s.open("f", "r+"), ValueError),
        (lambda s: s.open("f", "rb", encoding="utf-8"), ValueError),
        (lambda s: s.exists(""), artifactio.InvalidPathError),
        (lambda s: s.open("f", "r", encoding="no-such-codec"), LookupError),
    ],
)
def test_original_exception_types_reach_the_caller(
    store: ArtifactStore, call: Any, expected: type[BaseException]
) -> None:
    store.makedirs("d")
    store.write_bytes("f", b"x")
    with pytest.raises(expected):
        call(store)


def test_exception_is_the_original_object_with_path(store: ArtifactStore) -> None:
    with pytest.raises(FileNotFoundError) as info:
        store.remove("nope")
    assert type(info.value) is FileNotFoundError
    assert info.value.filename == f"{store.root}/nope"
    assert "remove" in str(info.value)


# ----------------------------------------------------------------------- files


def test_binary_reader_is_a_real_buffered_reader(store: ArtifactStore) -> None:
    store.write_bytes("r.bin", b"line1\nline2\r\nlast")
    with store.open("r.bin", "rb") as f:
        assert isinstance(f, io.BufferedReader)
        assert (f.name, f.mode, f.closed) == (f"{store.root}/r.bin", "rb", False)
        assert (f.readable(), f.seekable(), f.writable()) == (True, True, False)
        assert f.read(3) == b"lin"
        assert f.tell() == 3
        assert f.readline() == b"e1\n"
        assert list(f) == [b"line2\r\n", b"last"]
        assert f.seek(-4, io.SEEK_END) == 13
        assert f.read() == b"last"
        assert f.seek(0) == 0
        assert f.seek(5, io.SEEK_CUR) == 5
        buf = bytearray(3)
        assert f.readinto(buf) == 3
        assert buf == b"\nli"
    assert f.closed
    with pytest.raises(ValueError):
        f.read()


def test_pickle_round_trip_through_files(store: ArtifactStore) -> None:
    obj = {"weights": list(range(50_000)), "name": "model"}
    with store.open("model.pkl", "wb") as f:
        pickle.dump(obj, f)
    with store.open("model.pkl", "rb") as f:
        assert pickle.load(f) == obj


def test_binary_writer_streams_and_publishes_on_close(store: ArtifactStore) -> None:
    store.write_bytes("w.bin", b"old")
    f = store.open("w.bin", "wb")
    assert isinstance(f, io.BufferedWriter)
    assert (f.mode, f.writable(), f.seekable(), f.readable()) == ("wb", True, False, False)
    assert f.write(b"abc") == 3
    f.write(memoryview(b"defg")[1:])
    assert f.tell() == 6
    assert f.seek(6) == 6
    assert f.seek(0, io.SEEK_CUR) == 6
    assert f.seek(0, io.SEEK_END) == 6
    with pytest.raises(io.UnsupportedOperation):
        f.seek(0)
    with pytest.raises(io.UnsupportedOperation):
        f.seek(-1, io.SEEK_END)
    f.flush()
    assert store.read_bytes("w.bin") == b"old"  # nothing visible before close
    f.close()
    assert f.closed
    assert store.read_bytes("w.bin") == b"abcefg"
    big = os.urandom(3 * 1024 * 1024 + 17)
    with store.open("big.bin", "wb") as f:
        for i in range(0, len(big), 100_000):
            f.write(big[i : i + 100_000])
    assert store.read_bytes("big.bin") == big


def test_append_and_exclusive_modes(store: ArtifactStore) -> None:
    store.write_bytes("log", b"one\n")
    with store.open("log", "ab") as f:
        assert f.tell() == 4
        f.write(b"two\n")
    with store.open("log", "a") as f:
        f.write("three\n")
    assert store.read_bytes("log") == b"one\ntwo\nthree\n"
    with store.open("new", "x") as f:
        f.write("fresh")
    assert store.read_bytes("new") == b"fresh"
    with pytest.raises(FileExistsError):
        store.open("new", "xb")


def test_text_modes(store: ArtifactStore) -> None:
    with store.open("t.txt", "w") as f:
        assert isinstance(f, io.TextIOWrapper)
        assert (f.mode, f.encoding, f.name) == ("w", "utf-8", f"{store.root}/t.txt")
        f.write("café\nsecond line\n")
        assert f.tell() == len("café\nsecond line\n".encode())
        assert f.seek(f.tell()) == 18
        with pytest.raises(io.UnsupportedOperation):
            f.seek(0)
    with store.open("t.txt") as f:
        assert f.mode == "r"
        assert f.readline() == "café\n"
        assert list(f) == ["second line\n"]
        f.seek(0, io.SEEK_END)
        assert f.read() == ""
        f.seek(0)
        assert f.read(4) == "café"
    with store.open("latin.txt", "w", encoding="latin-1", newline="\r\n") as f:
        f.write("ß\n")
    assert store.read_bytes("latin.txt") == b"\xdf\r\n"
    with store.open("latin.txt", "r", encoding="latin-1", newline="") as f:
        assert f.read() == "ß\r\n"
    with store.open("latin.txt", encoding="ascii", errors="replace") as f:
        assert f.read() == "\ufffd\n"
    with store.open("u16.txt", "w", encoding="utf-16") as f:
        f.write("hé")
    assert store.read_bytes("u16.txt") == "hé".encode("utf-16")
    with store.open(name="u16.txt", encoding="utf-16") as f:
        assert f.read() == "hé"


def _write_then_fail(store: ArtifactStore, path: str, mode: str, data: bytes) -> NoReturn:
    with store.open(path, mode) as f:
        f.write(data if "b" in mode else data.decode())
        f.flush()
        raise KeyError(path)


def test_exception_inside_with_aborts_the_write(store: ArtifactStore) -> None:
    store.write_bytes("keep.bin", b"old")
    for mode in ("wb", "w", "ab", "a"):
        with pytest.raises(KeyError):
            _write_then_fail(store, "keep.bin", mode, b"new")
        assert store.read_bytes("keep.bin") == b"old"
    with pytest.raises(KeyError):
        _write_then_fail(store, "fresh.bin", "wb", b"x" * 1_000_000)
    assert not store.exists("fresh.bin")
    assert store.listdir(store.root) == ["keep.bin"]
    f = store.open("keep.bin", "wb")
    f.write(b"discarded")
    f.__exit__(KeyError, KeyError(), None)
    assert f.closed
    assert store.read_bytes("keep.bin") == b"old"


@pytest.mark.parametrize(("mode", "layer"), [("wb", "raw"), ("w", "raw"), ("w", "buffer")])
def test_close_whose_flush_fails_publishes_nothing(
    store: ArtifactStore, monkeypatch: pytest.MonkeyPatch, mode: str, layer: str
) -> None:
    """A KeyboardInterrupt (or any error) while close() flushes must not publish a cut file."""
    from artifactio._sync._files import BUFFER_SIZE, FileWriter, RawBridge

    store.write_bytes("f.bin", b"old")
    f = store.open("f.bin", mode)
    big, tail = b"a" * (BUFFER_SIZE + 1), b"tail"
    f.write(big if mode == "wb" else big.decode())  # reaches the store's writer
    f.write(tail if mode == "wb" else tail.decode())  # still buffered in the io layers

    def interrupted(self: object, data: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(RawBridge if layer == "raw" else FileWriter, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        f.close()
    monkeypatch.undo()
    assert f.closed
    assert store.read_bytes("f.bin") == b"old"
    assert store.listdir(store.root) == ["f.bin"]


@pytest.mark.parametrize("mode", ["wb", "w"])
def test_garbage_collected_writer_publishes_nothing(store: ArtifactStore, mode: str) -> None:
    store.write_bytes("gc.bin", b"old")
    f = store.open("gc.bin", mode)
    f.write(b"new" if mode == "wb" else "new")
    f.flush()
    with pytest.warns(ResourceWarning, match="nothing was published"):
        del f  # the last reference: finalized right here
    assert store.read_bytes("gc.bin") == b"old"
    g = store.open("gc-new.bin", mode)
    with pytest.warns(ResourceWarning):
        del g
    assert not store.exists("gc-new.bin")


def test_file_keeps_its_facade_alive(memory_root: str) -> None:
    f = ArtifactStore(SuspendingMemoryStore(memory_root)).open("kept.bin", "wb")
    gc.collect()
    f.write(b"still works")
    f.close()
    with ArtifactStore(memory_root) as again:
        assert again.read_bytes("kept.bin") == b"still works"
