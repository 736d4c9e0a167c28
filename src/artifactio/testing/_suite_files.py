"""Conformance tests for ``open`` and the file objects, writes, ``read_bytes``/``write_bytes``."""

from __future__ import annotations

import io
import os
from functools import partial
from typing import Any

import anyio
import pytest

from ._covers import covers
from ._harness import Capabilities, StoreAPI, full_path, make_tree, raises, snapshot, unchanged

__all__ = ["FileTests"]

TEXT = "héllo wörld\n日本語 ✓ ½\nlast line without newline"
BINARY = b"line1\nline2\r\nline3\n\x00\xff\xfe binary tail"


class _Boom(Exception):
    """Raised inside ``with`` blocks to check that the write is discarded."""


async def _write_then_fail(store: StoreAPI, path: str, mode: str, size: int) -> None:
    """Write ``size`` bytes (more than the part size hands some to the backend), then fail."""
    async with store.open(path, mode) as f:
        for piece in (size // 2, size - size // 2):
            await f.write(b"p" * piece if "b" in mode else "p" * piece)
        await f.flush()
        raise _Boom


class FileTests:
    """docs/semantics.md, "Opening files" and "Writing"; plus ``read_bytes``/``write_bytes``."""

    # ------------------------------------------------------------------ modes

    @covers("open.modes", "open.text-encoding")
    async def test_text_modes_are_utf8_by_default(self, store: StoreAPI) -> None:
        async with store.open("t.txt", "w") as f:
            assert await f.write(TEXT) == len(TEXT)
        assert await store.read_bytes("t.txt") == TEXT.encode("utf-8")
        async with store.open("t.txt", "r") as f:
            got = await f.read()
        assert got == TEXT
        assert isinstance(got, str)

    @covers("open.modes")
    async def test_binary_modes(self, store: StoreAPI) -> None:
        async with store.open("b.bin", "wb") as f:
            assert await f.write(BINARY) == len(BINARY)
        async with store.open("b.bin", "rb") as f:
            got = await f.read()
        assert got == BINARY
        assert isinstance(got, bytes)

    @covers("open.modes")
    async def test_append_modes(self, store: StoreAPI) -> None:
        async with store.open("app.txt", "a") as f:  # creates the file
            await f.write("one\n")
        async with store.open("app.txt", "a") as f:
            await f.write("twö\n")
        assert await store.read_bytes("app.txt") == "one\ntwö\n".encode()
        async with store.open("app.bin", "ab") as f:
            await f.write(b"\x00\x01")
        async with store.open("app.bin", "ab") as f:
            await f.write(b"\x02")
            assert await f.tell() == 3
        assert await store.read_bytes("app.bin") == b"\x00\x01\x02"

    @covers("open.modes", "open.x-exists")
    async def test_exclusive_modes(self, store: StoreAPI) -> None:
        async with store.open("x.txt", "x") as f:
            await f.write("new")
        assert await store.read_bytes("x.txt") == b"new"
        async with store.open("d/x.bin", "xb") as f:
            await f.write(b"new")
        assert await store.read_bytes("d/x.bin") == b"new"
        async with unchanged(store):
            for mode in ("x", "xb"):
                for path in ("x.txt", "d/x.bin"):

                    async def create(path: str = path, mode: str = mode) -> None:
                        async with store.open(path, mode) as f:
                            await f.write("other" if mode == "x" else b"other")

                    await raises(FileExistsError, create, f"open({path!r}, {mode!r})")

    @covers("open.bad-mode")
    async def test_other_modes_raise_value_error(self, store: StoreAPI) -> None:
        await store.write_bytes("m.txt", b"keep")
        modes = ["r+", "rb+", "w+", "wb+", "a+", "x+", "rw", "wa", "rx", "U", "rU", "", "z"]
        modes += ["rbt", "bb", "wbt"]
        async with unchanged(store):
            for mode in modes:
                for path in ("m.txt", "new.txt"):

                    async def call(path: str = path, mode: str = mode) -> None:
                        async with store.open(path, mode):
                            pass

                    await raises(ValueError, call, f"open({path!r}, {mode!r})")

    @covers("open.bad-text-options")
    async def test_bad_text_options_raise_before_opening(self, store: StoreAPI) -> None:
        await store.write_bytes("m.txt", b"keep")
        bad: list[tuple[str, dict[str, str]]] = [
            ("w", {"newline": "x"}),
            ("r", {"newline": "\n\n"}),
            ("a", {"newline": "\t"}),
            ("w", {"encoding": "no-such-codec"}),
            ("r", {"encoding": "no-such-codec"}),
            ("x", {"encoding": "no-such-codec"}),
            ("w", {"encoding": "rot13"}),  # a codec, but not a text encoding
            ("wb", {"encoding": "utf-8"}),
            ("rb", {"newline": ""}),
            ("ab", {"errors": "strict"}),
        ]
        async with unchanged(store):
            for mode, options in bad:
                # an existing file, a new one, one below missing directories, a directory
                for path in ("m.txt", "new.txt", "nodir/sub/new.txt", "."):

                    async def call(
                        path: str = path, mode: str = mode, options: dict[str, str] = options
                    ) -> None:
                        async with store.open(path, mode, **options):
                            pass

                    what = f"open({path!r}, {mode!r}, **{options!r})"
                    exc = await raises(ValueError, call, what)
                    if "encoding" in options and "b" not in mode:
                        assert isinstance(exc, LookupError), f"{what}: as the builtin raises"

    @covers("api.open-name")
    async def test_open_accepts_name_keyword(self, store: StoreAPI) -> None:
        async with store.open(name="kw.bin", mode="wb") as f:
            await f.write(b"by name")
        async with store.open(name=full_path(store, "kw.bin"), mode="rb") as f:
            assert await f.read() == b"by name"

    @covers("open.text-encoding")
    async def test_encoding(self, store: StoreAPI) -> None:
        text = "café ß"
        async with store.open("latin.txt", "w", encoding="latin-1") as f:
            await f.write(text)
        assert await store.read_bytes("latin.txt") == text.encode("latin-1")
        async with store.open("latin.txt", "r", encoding="latin-1") as f:
            assert await f.read() == text

    @covers("open.text-encoding")
    async def test_encoding_with_byte_order_mark(self, store: StoreAPI) -> None:
        text = "café ß"
        async with store.open("utf16.txt", "w", encoding="utf-16") as f:
            await f.write(text)
        assert (await store.read_bytes("utf16.txt")).decode("utf-16") == text
        async with store.open("utf16.txt", "r", encoding="utf-16") as f:
            assert await f.read() == text

    # ------------------------------------------------------------ file objects

    @covers("open.file-api", "open.name")
    async def test_binary_reader(self, store: StoreAPI) -> None:
        await store.write_bytes("r.bin", BINARY)
        f = await store.open("r.bin", "rb")
        try:
            assert f.name == full_path(store, "r.bin")
            assert f.mode == "rb"
            assert not f.closed
            assert await f.tell() == 0
            assert await f.read(3) == b"lin"
            assert await f.read(0) == b""
            assert await f.tell() == 3
            assert await f.readline() == b"e1\n"
            assert await f.readline(3) == b"lin"
            assert await f.readline() == b"e2\r\n"
            assert await f.seek(0) == 0
            assert await f.read(5) == b"line1"
            assert await f.seek(2, os.SEEK_CUR) == 7
            assert await f.read(4) == b"ine2"
            assert await f.seek(-4, os.SEEK_END) == len(BINARY) - 4
            assert await f.read() == b"tail"
            assert await f.read() == b""
            assert await f.read(10) == b""
            assert await f.readline() == b""
            assert await f.tell() == len(BINARY)
            await f.seek(0, os.SEEK_SET)
            assert [line async for line in f] == BINARY.splitlines(keepends=True)
            await f.seek(0)
            assert await f.readlines() == BINARY.splitlines(keepends=True)
            await f.seek(len(BINARY) + 10)
            assert await f.read() == b""
        finally:
            await f.close()
        assert f.closed

    @covers("open.file-api", "open.name")
    async def test_text_reader(self, store: StoreAPI) -> None:
        await store.write_bytes("r.txt", TEXT.encode())
        async with store.open("r.txt", "r") as f:
            assert f.name == full_path(store, "r.txt")
            assert f.mode == "r"
            assert not f.closed
            assert await f.read(2) == "hé"
            assert await f.readline() == "llo wörld\n"
            cookie = await f.tell()
            assert await f.readline() == "日本語 ✓ ½\n"
            assert await f.seek(cookie) == cookie
            assert await f.readline() == "日本語 ✓ ½\n"
            assert await f.readline() == "last line without newline"
            assert await f.readline() == ""
            assert await f.seek(0) == 0
            assert [line async for line in f] == TEXT.splitlines(keepends=True)
            await f.seek(0)
            assert await f.readlines() == TEXT.splitlines(keepends=True)
            await f.seek(0, os.SEEK_END)
            assert await f.read() == ""
            await f.seek(0)
            assert await f.read() == TEXT
        assert f.closed

    @covers("open.newlines")
    async def test_text_reader_universal_newlines(self, store: StoreAPI) -> None:
        await store.write_bytes("nl.txt", b"a\r\nb\rc\n")
        async with store.open("nl.txt", "r") as f:
            assert await f.read() == "a\nb\nc\n"
        async with store.open("nl.txt", "r") as f:
            assert [line async for line in f] == ["a\n", "b\n", "c\n"]

    @covers("open.newlines")
    async def test_newline_option_as_the_builtin(self, store: StoreAPI) -> None:
        data = b"a\r\nb\rc\nd\r\n\r\re\n\nf"
        text = "one\ntwo\r\nthree\rfour\n"
        await store.write_bytes("nl.txt", data)
        for newline in (None, "", "\n", "\r", "\r\n"):
            builtin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline=newline)
            expected_lines = builtin.readlines()
            async with store.open("nl.txt", "r", newline=newline) as f:
                assert await f.read() == "".join(expected_lines), newline
            async with store.open("nl.txt", "r", newline=newline) as f:
                assert [line async for line in f] == expected_lines, newline
            sink = io.BytesIO()
            writer = io.TextIOWrapper(sink, encoding="utf-8", newline=newline)
            writer.write(text)
            writer.flush()
            async with store.open("out.txt", "w", newline=newline) as f:
                await f.write(text)
            assert await store.read_bytes("out.txt") == sink.getvalue(), newline

    @covers("open.name")
    async def test_name_is_the_normalised_full_path(self, store: StoreAPI) -> None:
        await store.write_bytes("n/f.txt", b"x")
        full = full_path(store, "n/f.txt")
        root = store.root.rstrip("/")
        spellings = ["n/f.txt", "./n//f.txt", "n/sub/../f.txt", "n/f.txt/", full]
        spellings += [f"{root}//n/./f.txt", os.fsencode(full)]  # type: ignore[list-item]
        for spelling in spellings:
            for mode in ("r", "rb", "a", "ab", "w", "wb"):
                async with store.open(spelling, mode) as f:
                    assert f.name == full, (spelling, mode)
                    assert type(f.name) is str
                    if mode[0] != "r":
                        await f.write(b"x" if "b" in mode else "x")
        for mode in ("x", "xb"):
            async with store.open(f"./n/sub/../new-{mode}.txt", mode) as f:
                assert f.name == full_path(store, f"n/new-{mode}.txt")

    @covers("open.file-api", "open.name")
    async def test_writer(self, store: StoreAPI) -> None:
        async with store.open("w.bin", "wb") as f:
            assert f.name == full_path(store, "w.bin")
            assert f.mode == "wb"
            assert not f.closed
            assert await f.write(b"abc") == 3
            assert await f.tell() == 3
            await f.flush()
            assert await f.write(b"") == 0
            assert await f.write(b"defg") == 4
            assert await f.tell() == 7
        assert f.closed
        assert await store.read_bytes("w.bin") == b"abcdefg"
        async with store.open("w.txt", "w") as f:
            assert f.mode == "w"
            assert await f.write("日本") == 2
            await f.flush()
        assert f.closed
        assert await store.read_bytes("w.txt") == "日本".encode()

    @covers("open.file-api", "size.file")
    async def test_many_small_writes_and_chunked_reads(self, store: StoreAPI) -> None:
        pieces = [bytes([i % 251]) * 1000 for i in range(1500)]
        async with store.open("big.bin", "wb") as f:
            for piece in pieces:
                await f.write(piece)
        expected = b"".join(pieces)
        got = bytearray()
        async with store.open("big.bin", "rb") as f:
            while chunk := await f.read(65_537):
                got += chunk
        assert bytes(got) == expected
        assert await store.size("big.bin") == len(expected)
        assert await store.read_bytes("big.bin") == expected

    @covers("open.file-api")
    async def test_open_without_context_manager(self, store: StoreAPI) -> None:
        f = await store.open("plain.bin", "wb")
        await f.write(b"plain")
        assert not f.closed
        await f.close()
        assert f.closed
        f = await store.open("plain.bin", "rb")
        assert await f.read() == b"plain"
        await f.close()
        assert f.closed

    # ----------------------------------------------------------------- errors

    @covers("open.read-missing", "api.bytes-helpers")
    async def test_read_missing_file(self, store: StoreAPI) -> None:
        await make_tree(store, {"d": None})
        async with unchanged(store):
            for path in ("missing.bin", "d/missing.bin", "nodir/missing.bin"):
                for mode in ("r", "rb"):

                    async def call(path: str = path, mode: str = mode) -> None:
                        async with store.open(path, mode):
                            pass

                    await raises(FileNotFoundError, call, f"open({path!r}, {mode!r})")
                await raises(FileNotFoundError, partial(store.read_bytes, path))

    @covers("open.directory", "open.x-directory", "api.bytes-helpers")
    async def test_open_directory(self, store: StoreAPI) -> None:
        await make_tree(store, {"d/f.bin": b"f", "empty": None})
        async with unchanged(store):
            for path in ("d", "empty", ".", store.root):
                for mode in ("r", "rb", "w", "wb", "a", "ab", "x", "xb"):

                    async def call(path: str = path, mode: str = mode) -> None:
                        async with store.open(path, mode) as f:
                            if mode[0] != "r":
                                await f.write(b"x" if "b" in mode else "x")

                    await raises(IsADirectoryError, call, f"open({path!r}, {mode!r})")
                await raises(IsADirectoryError, partial(store.read_bytes, path))
                await raises(IsADirectoryError, partial(store.write_bytes, path, b"x"))

    @covers("write.below-file")
    async def test_write_below_a_file(self, store: StoreAPI, caps: Capabilities) -> None:
        await store.write_bytes("f.bin", b"file")
        if not caps.checks_ancestors:
            pytest.skip("object stores do not check ancestors (see the coexistence test)")
        async with unchanged(store):
            for path in ("f.bin/x", "f.bin/deeper/x"):
                for mode in ("w", "wb", "a", "ab", "x", "xb"):

                    async def call(path: str = path, mode: str = mode) -> None:
                        async with store.open(path, mode) as f:
                            await f.write(b"x" if "b" in mode else "x")

                    await raises(NotADirectoryError, call, f"open({path!r}, {mode!r})")
                await raises(NotADirectoryError, partial(store.write_bytes, path, b"x"))

    # ---------------------------------------------------------------- writes

    @covers("write.parents")
    async def test_parents_are_created_implicitly(self, store: StoreAPI) -> None:
        await store.write_bytes("p/q/r/f.bin", b"deep")
        for d in ("p", "p/q", "p/q/r"):
            assert await store.isdir(d), d
        assert await store.listdir("p") == ["q"]
        async with store.open("s/t/u.txt", "w") as f:
            await f.write("text")
        assert await store.isdir("s/t")
        async with store.open("v/w.bin", "xb") as f:
            await f.write(b"x")
        async with store.open("y/z.bin", "ab") as f:
            await f.write(b"a")
        assert await store.read_bytes("v/w.bin") == b"x"
        assert await store.read_bytes("y/z.bin") == b"a"

    @covers("write.on-close", "write.abort")
    async def test_content_is_visible_only_after_close(
        self, store: StoreAPI, part_size: int
    ) -> None:
        await store.write_bytes("old.bin", b"old")
        new = b"N" * (part_size + 10)  # more than one part reaches the backend before close
        for path in ("old.bin", "new.bin", "sub/new.bin"):
            before = await snapshot(store)
            async with store.open(path, "wb") as f:
                await f.write(new)
                await f.flush()
                if path in before:
                    assert await store.read_bytes(path) == before[path]
                else:
                    assert not await store.exists(path), "a write became visible before close"
            assert await store.read_bytes(path) == new
            # and nothing else appeared (no temporary objects left behind)
            expected = {**before, path: new}
            if path == "sub/new.bin":
                expected["sub"] = None
            assert await snapshot(store) == expected
        async with store.open("old.bin", "ab") as f:
            await f.write(b" appended")
            await f.flush()
            assert await store.read_bytes("old.bin") == new
        assert await store.read_bytes("old.bin") == new + b" appended"

    @covers("write.abort")
    async def test_exception_inside_with_keeps_old_content(
        self, store: StoreAPI, part_size: int
    ) -> None:
        await make_tree(store, {"keep.bin": b"old", "dir/keep.txt": b"old text"})
        before = await snapshot(store)
        cases = [
            ("keep.bin", "wb"),
            ("keep.bin", "ab"),
            ("dir/keep.txt", "w"),
            ("dir/keep.txt", "a"),
            ("new.bin", "wb"),
            ("new.bin", "xb"),
            ("dir/new.txt", "w"),
            ("dir/new.txt", "x"),
            ("dir/new.txt", "a"),
        ]
        for path, mode in cases:
            size = part_size + 1 if "b" in mode else 8000
            with pytest.raises(_Boom):
                await _write_then_fail(store, path, mode, size)
            assert await snapshot(store) == before, f"open({path!r}, {mode!r}) left changes"

    @covers("write.abort")
    async def test_exception_inside_with_below_missing_dirs(
        self, store: StoreAPI, part_size: int
    ) -> None:
        with pytest.raises(_Boom):
            await _write_then_fail(store, "nodir/sub/new.bin", "wb", part_size + 1)
        # Whether the parents were made is unspecified; the file must not exist.
        assert not await store.exists("nodir/sub/new.bin")
        if await store.isdir("nodir/sub"):
            assert await store.listdir("nodir/sub") == []

    @covers("write.abort")
    async def test_cancellation_keeps_old_content(
        self, store: StoreAPI, api_kind: str, part_size: int
    ) -> None:
        if api_kind != "async":
            pytest.skip("cancelling a blocking call is not possible; async API only")
        await make_tree(store, {"keep.bin": b"old"})
        before = await snapshot(store)
        size = part_size + 1
        for path in ("keep.bin", "new.bin", "newdir/new.bin"):
            started = anyio.Event()

            async def writer(path: str = path, started: anyio.Event = started) -> None:
                async with store.open(path, "wb") as f:
                    await f.write(b"n" * size)  # at least one part goes to the backend
                    await f.write(b"tail")
                    started.set()
                    await anyio.sleep_forever()

            async with anyio.create_task_group() as tg:
                tg.start_soon(writer)
                await started.wait()
                tg.cancel_scope.cancel()
            after = await snapshot(store)
            after.pop("newdir", None)  # whether parents were made is unspecified
            assert after == before, f"cancelled write to {path!r} left changes"

    # ---------------------------------------------------- read/write bytes

    @covers("api.bytes-helpers")
    async def test_read_and_write_bytes(self, store: StoreAPI) -> None:
        await store.write_bytes("rw.bin", b"first")
        assert await store.read_bytes("rw.bin") == b"first"
        await store.write_bytes("rw.bin", b"second, longer")
        assert await store.read_bytes("rw.bin") == b"second, longer"
        await store.write_bytes("rw.bin", b"")
        assert await store.read_bytes("rw.bin") == b""
        assert await store.exists("rw.bin")
        blob = os.urandom(3 * 1024 * 1024 + 7)
        await store.write_bytes(full_path(store, "sub/blob.bin"), blob)
        assert await store.read_bytes("sub/blob.bin") == blob

    @covers("open.file-api", "stat.fields")
    async def test_empty_file(self, store: StoreAPI) -> None:
        async with store.open("empty.bin", "wb"):
            pass
        assert await store.read_bytes("empty.bin") == b""
        st = await store.stat("empty.bin")
        assert st.st_size == 0
        assert not st.is_dir
        async with store.open("empty.bin", "rb") as f:
            assert await f.read() == b""
            assert await f.readline() == b""
        items: list[Any] = []
        async with store.open("empty.bin", "r") as f:
            items.extend([line async for line in f])
        assert items == []
