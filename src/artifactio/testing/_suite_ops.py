"""Conformance tests for the interface and the operations table: exists ... size.

``copyfile`` and ``rename`` are in :mod:`._suite_copy_rename`, ``glob`` and ``walk``
in :mod:`._suite_listing`.
"""

from __future__ import annotations

import errno
import inspect
import os
import stat as stat_module
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import pytest

from ._covers import covers
from ._harness import (
    Capabilities,
    StoreAPI,
    full_path,
    make_tree,
    raises,
    snapshot,
    unchanged,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["OperationTests"]

_REQUIRED = object()

# ZenML's BaseArtifactStore methods: parameter names in order, with their defaults.
ZENML_METHODS: dict[str, list[tuple[str, Any]]] = {
    "open": [("path", None), ("mode", "r")],
    "copyfile": [("src", _REQUIRED), ("dst", _REQUIRED), ("overwrite", False)],
    "exists": [("path", _REQUIRED)],
    "glob": [("pattern", _REQUIRED)],
    "isdir": [("path", _REQUIRED)],
    "listdir": [("path", _REQUIRED)],
    "makedirs": [("path", _REQUIRED)],
    "mkdir": [("path", _REQUIRED)],
    "remove": [("path", _REQUIRED)],
    "rename": [("src", _REQUIRED), ("dst", _REQUIRED), ("overwrite", False)],
    "rmtree": [("path", _REQUIRED)],
    "stat": [("path", _REQUIRED)],
    "walk": [("top", _REQUIRED), ("topdown", True), ("onerror", None)],
    "size": [("path", _REQUIRED)],
}

# The tree most operation tests start from (the copyfile and rename tests too).
TREE = {
    "src.bin": b"source",
    "other.bin": b"other",
    "d/inner.bin": b"inner",
    "d/sub/deep.bin": b"deep",
    "empty": None,
}


class OperationTests:
    """docs/semantics.md: "Interface", "Operations" but copyfile, directories and special keys."""

    # ------------------------------------------------------- exists / isdir

    @covers("exists.answers", "isdir.answers")
    async def test_exists_and_isdir(self, store: StoreAPI) -> None:
        await make_tree(store, TREE)
        root = store.root
        for path, exists, isdir in [
            ("src.bin", True, False),
            (full_path(store, "src.bin"), True, False),
            ("d", True, True),
            ("d/sub", True, True),
            ("empty", True, True),
            (full_path(store, "d"), True, True),
            (root, True, True),
            (".", True, True),
            ("missing", False, False),
            ("d/missing", False, False),
            ("missing/deeper", False, False),
            ("src.bin/below-a-file", False, False),
            ("d/inner.bin/x", False, False),
        ]:
            assert await store.exists(path) is exists, path
            assert await store.isdir(path) is isdir, path

    @covers("exists.failures")
    async def test_failures_are_not_reported_as_missing(
        self, store: StoreAPI, caps: Capabilities
    ) -> None:
        if not caps.local_paths:
            pytest.skip("needs a local root to make a directory unreadable")
        if os.geteuid() == 0:
            pytest.skip("permissions do not apply to root")
        await make_tree(store, {"locked/inside.bin": b"x"})
        root = store.root.removeprefix("file://").rstrip("/")
        await anyio.to_thread.run_sync(os.chmod, f"{root}/locked", 0)
        try:
            for call in (store.exists, store.isdir):
                with pytest.raises(PermissionError):
                    await call("locked/inside.bin")
        finally:
            await anyio.to_thread.run_sync(os.chmod, f"{root}/locked", 0o755)

    @covers("exists.failures")
    async def test_lookup_failures_are_raised_not_missing(
        self, store: StoreAPI, backend: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A failing service, injected where every backend looks entries up.
        await store.write_bytes("f.bin", b"x")
        failures: list[Callable[[], Exception]] = [
            lambda: PermissionError(errno.EACCES, "lookup: denied (injected)", "x"),
            lambda: ConnectionError("lookup: the service is down (injected)"),
            lambda: OSError(errno.EIO, "lookup: input/output error (injected)", "x"),
        ]
        for make_failure in failures:
            expected = type(make_failure())

            async def failing(*args: object, make: Callable[[], Exception] = make_failure) -> Any:
                raise make()

            monkeypatch.setattr(backend, "_info", failing)
            monkeypatch.setattr(backend, "_isdir", failing)
            for call in (store.exists, store.isdir):
                for path in ("f.bin", "missing", "."):
                    await raises(expected, partial(call, path), f"{call.__name__}({path!r})")
            monkeypatch.undo()
        assert await store.exists("f.bin")

    @covers("errors.message")
    async def test_errors_name_the_path(self, store: StoreAPI) -> None:
        await make_tree(store, TREE)
        missing = full_path(store, "d/missing.bin")
        for call in (store.stat, store.remove, store.read_bytes, store.listdir, store.size):
            with pytest.raises(FileNotFoundError) as info:
                await call("d/missing.bin")
            assert missing in str(info.value), f"{call.__name__}: {info.value}"
            assert info.value.filename == missing, call.__name__
            assert call.__name__.split("_")[0] in str(info.value) or "open" in str(info.value)
        with pytest.raises(IsADirectoryError) as dir_info:
            await store.remove("d")
        assert full_path(store, "d") in str(dir_info.value)
        assert "remove" in str(dir_info.value)

    # ---------------------------------------------------------------- listdir

    @covers("listdir.names")
    async def test_listdir(self, store: StoreAPI) -> None:
        await make_tree(
            store,
            {
                "l/b.txt": b"b",
                "l/a.txt": b"a",
                "l/Z.txt": b"Z",
                "l/.hidden": b"h",
                "l/sub/x": b"x",
                "l/empty": None,
            },
        )
        expected = [".hidden", "Z.txt", "a.txt", "b.txt", "empty", "sub"]
        assert await store.listdir("l") == expected
        assert await store.listdir(full_path(store, "l")) == expected
        assert await store.listdir("l/sub") == ["x"]
        assert await store.listdir("l/empty") == []
        assert await store.listdir(".") == ["l"]
        assert await store.listdir(store.root) == ["l"]

    @covers("listdir.missing", "listdir.file")
    async def test_listdir_errors(self, store: StoreAPI) -> None:
        await make_tree(store, TREE)
        async with unchanged(store):
            for path in ("missing", "d/missing", "missing/deeper"):
                await raises(FileNotFoundError, partial(store.listdir, path), path)
        async with unchanged(store):
            for path in ("src.bin", "d/inner.bin"):
                await raises(NotADirectoryError, partial(store.listdir, path), path)

    # ------------------------------------------------------- makedirs / mkdir

    @covers("makedirs.creates")
    async def test_makedirs(self, store: StoreAPI) -> None:
        await make_tree(store, TREE)
        await store.makedirs("a/b/c")
        for d in ("a", "a/b", "a/b/c"):
            assert await store.isdir(d), d
        assert await store.listdir("a/b/c") == []
        before = await snapshot(store)
        for existing in ("a/b/c", "a", "d", "d/sub", "empty", ".", store.root, "a/b/c/"):
            await store.makedirs(existing)
        assert await snapshot(store) == before
        await store.makedirs(full_path(store, "d/new"))
        assert await store.listdir("d") == ["inner.bin", "new", "sub"]

    @covers("makedirs.file", "makedirs.file-ancestor")
    async def test_makedirs_errors(self, store: StoreAPI) -> None:
        await make_tree(store, TREE)
        async with unchanged(store):
            for path in ("src.bin", "d/inner.bin"):
                await raises(FileExistsError, partial(store.makedirs, path), path)
        async with unchanged(store):
            for path in ("src.bin/x", "src.bin/x/y", "d/inner.bin/x"):
                await raises(NotADirectoryError, partial(store.makedirs, path), path)

    @covers("mkdir.creates")
    async def test_mkdir(self, store: StoreAPI) -> None:
        await make_tree(store, TREE)
        await store.mkdir("top")
        await store.mkdir("d/sub/leaf")
        await store.mkdir(full_path(store, "top/inner"))
        assert await store.isdir("top")
        assert await store.isdir("d/sub/leaf")
        assert await store.listdir("top") == ["inner"]
        assert await store.listdir("d/sub") == ["deep.bin", "leaf"]

    @covers("mkdir.exists", "mkdir.parent-missing", "mkdir.parent-file")
    async def test_mkdir_errors(self, store: StoreAPI) -> None:
        await make_tree(store, TREE)
        cases: list[tuple[type[OSError], str]] = [
            (FileExistsError, "d"),
            (FileExistsError, "empty"),
            (FileExistsError, "src.bin"),
            (FileExistsError, "."),
            (FileExistsError, store.root),
            (FileNotFoundError, "missing/child"),
            (FileNotFoundError, "missing/deeper/child"),
            (NotADirectoryError, "src.bin/child"),
            (NotADirectoryError, "d/inner.bin/child"),
        ]
        async with unchanged(store):
            for exc, path in cases:
                await raises(exc, partial(store.mkdir, path), f"mkdir({path!r})")

    # ----------------------------------------------------------------- remove

    @covers("remove.file")
    async def test_remove(self, store: StoreAPI) -> None:
        await make_tree(store, TREE)
        await store.remove("src.bin")
        assert not await store.exists("src.bin")
        await store.remove(full_path(store, "d/inner.bin"))
        assert await store.listdir("d") == ["sub"]
        await store.remove("d/sub/deep.bin")
        # d/sub was made by writing below it; it stays on a filesystem and
        # vanishes on an object store (see the object-store tests); d holds sub or not.
        assert await store.exists("other.bin")

    @covers("remove.missing", "remove.directory")
    async def test_remove_errors(self, store: StoreAPI) -> None:
        await make_tree(store, TREE)
        async with unchanged(store):
            for path in ("missing.bin", "d/missing.bin", "missing/deeper"):
                await raises(FileNotFoundError, partial(store.remove, path), path)
        async with unchanged(store):
            for path in ("d", "d/sub", "empty", ".", store.root):
                await raises(IsADirectoryError, partial(store.remove, path), path)

    # ----------------------------------------------------------------- rmtree

    @covers("rmtree.deletes", "object.makedirs-levels")
    async def test_rmtree(self, store: StoreAPI) -> None:
        await make_tree(store, {**TREE, "d/sub/empty": None})
        await store.rmtree("d")
        assert not await store.exists("d")
        assert not await store.exists("d/sub/deep.bin")
        assert await snapshot(store) == {"src.bin": b"source", "other.bin": b"other", "empty": None}
        await store.rmtree(full_path(store, "empty"))
        assert await store.listdir(".") == ["other.bin", "src.bin"]
        await make_tree(store, {"p": None, "p/q/r": None})
        await store.rmtree("p/q")
        assert await store.listdir("p") == []  # the parent stays
        # The parents makedirs creates are directories like any other: they
        # outlive what is removed below them, on object stores too.
        await store.makedirs("m/n/o")
        await store.rmtree("m/n/o")
        assert await store.listdir("m") == ["n"]
        assert await store.listdir("m/n") == []

    @covers("rmtree.missing", "rmtree.file", "rmtree.root")
    async def test_rmtree_errors(self, store: StoreAPI) -> None:
        await make_tree(store, TREE)
        async with unchanged(store):
            for path in ("missing", "d/missing", "missing/deeper"):
                await raises(FileNotFoundError, partial(store.rmtree, path), path)
        async with unchanged(store):
            for path in ("src.bin", "d/inner.bin"):
                await raises(NotADirectoryError, partial(store.rmtree, path), path)
        root = store.root
        async with unchanged(store):
            for path in (root, root.rstrip("/") + "/", ".", "./", "d/..", root.rstrip("/") + "/."):
                await raises(PermissionError, partial(store.rmtree, path), path)

    # ---------------------------------------------------------- stat / size

    @covers("stat.fields")
    async def test_stat_file(self, store: StoreAPI) -> None:
        await make_tree(store, TREE)
        for path in ("src.bin", full_path(store, "src.bin")):
            st = await store.stat(path)
            assert st.st_size == st.size == 6
            assert isinstance(st.st_mtime, float)
            assert st.st_mtime == st.mtime
            assert st.st_mtime > 0
            assert stat_module.S_ISREG(st.st_mode)
            assert not stat_module.S_ISDIR(st.st_mode)
            assert st.is_file
            assert not st.is_dir
            assert hasattr(st, "etag")
            assert hasattr(st, "checksum")

    @covers("stat.directory")
    async def test_stat_directory(self, store: StoreAPI) -> None:
        await make_tree(store, TREE)
        for path in ("d", "empty", ".", store.root, full_path(store, "d/sub")):
            st = await store.stat(path)
            assert st.st_size == st.size == 0, path
            assert isinstance(st.st_mtime, float), path
            assert st.st_mtime == st.mtime
            assert stat_module.S_ISDIR(st.st_mode), path
            assert not stat_module.S_ISREG(st.st_mode), path
            assert st.is_dir, path
            assert not st.is_file, path

    @covers("stat.missing")
    async def test_stat_errors(self, store: StoreAPI) -> None:
        await make_tree(store, TREE)
        async with unchanged(store):
            for path in ("missing", "d/missing", "missing/deeper"):
                await raises(FileNotFoundError, partial(store.stat, path), path)

    @covers("size.file", "size.directory")
    async def test_size(self, store: StoreAPI) -> None:
        await make_tree(store, {**TREE, "zero.bin": b"", "d/sub/empty": None})
        assert await store.size("src.bin") == 6
        assert await store.size(full_path(store, "src.bin")) == 6
        assert await store.size("zero.bin") == 0
        assert await store.size("d/sub") == len(b"deep")
        assert await store.size("d") == len(b"inner") + len(b"deep")
        assert await store.size("empty") == 0
        assert await store.size("d/sub/empty") == 0
        total = sum(len(v) for v in TREE.values() if v is not None)
        assert await store.size(".") == total
        assert await store.size(store.root) == total

    @covers("size.missing")
    async def test_size_errors(self, store: StoreAPI) -> None:
        await make_tree(store, TREE)
        async with unchanged(store):
            for path in ("missing", "d/missing", "missing/deeper"):
                await raises(FileNotFoundError, partial(store.size, path), path)

    @covers("object.makedirs-levels")
    async def test_removing_last_file_keeps_makedirs_directory(self, store: StoreAPI) -> None:
        await store.makedirs("made/sub")
        assert await store.exists("made/sub")
        assert await store.listdir("made/sub") == []
        await store.write_bytes("made/sub/only.bin", b"x")
        await store.remove("made/sub/only.bin")
        assert await store.isdir("made/sub")
        assert await store.listdir("made/sub") == []
        assert await store.listdir("made") == ["sub"]

    @covers("object.makedirs-levels")
    async def test_directories_made_outlive_their_last_file(self, store: StoreAPI) -> None:
        await store.makedirs("lv/a/b/c")
        await store.mkdir("lv/m")
        for path in ("lv/a/f.bin", "lv/a/b/c/g.bin", "lv/m/h.bin"):
            await store.write_bytes(path, b"x")
            await store.remove(path)
        assert await snapshot(store) == {
            "lv": None,
            "lv/a": None,
            "lv/a/b": None,
            "lv/a/b/c": None,
            "lv/m": None,
        }
        for d in ("lv", "lv/a", "lv/a/b", "lv/a/b/c", "lv/m"):
            assert await store.isdir(d), d
            assert (await store.stat(d)).is_dir, d
        await store.write_bytes("lv/a/b/c/g.bin", b"x")
        await store.rmtree("lv/a/b/c")
        assert await store.listdir("lv/a") == ["b"]
        assert await store.listdir("lv/a/b") == []

    @covers("object.markers-hidden")
    async def test_directory_markers_never_show(self, store: StoreAPI) -> None:
        await store.makedirs("mk/a/b")
        await store.mkdir("mk/c")
        await store.write_bytes("mk/a/f.bin", b"f")
        assert await store.listdir("mk") == ["a", "c"]
        assert await store.listdir("mk/a") == ["b", "f.bin"]
        assert await store.listdir("mk/a/b") == []
        assert await store.listdir("mk/c") == []
        assert [entry async for entry in store.walk("mk")] == [
            (full_path(store, "mk"), ["a", "c"], []),
            (full_path(store, "mk/a"), ["b"], ["f.bin"]),
            (full_path(store, "mk/a/b"), [], []),
            (full_path(store, "mk/c"), [], []),
        ]
        assert await store.glob("mk/**") == [
            full_path(store, k) for k in ("mk", "mk/a", "mk/a/b", "mk/a/f.bin", "mk/c")
        ]
        assert await store.glob("mk/a/b/*") == []
        assert await store.glob("mk/a/b/**") == [full_path(store, "mk/a/b")]
        assert await store.size("mk") == 1

    @covers("api.methods")
    async def test_methods_and_parameters(self, interface: Any) -> None:
        for name, expected in ZENML_METHODS.items():
            method = getattr(interface, name, None)
            assert callable(method), f"{type(interface).__name__} has no {name}()"
            params = inspect.signature(method).parameters
            got = [(p, params[p].default) for p in list(params)[: len(expected)]]
            want = [(p, params[p].default if d is _REQUIRED else d) for p, d in expected]
            assert got == want, f"{name}{inspect.signature(method)}"
            for p, default in expected:
                if default is _REQUIRED:
                    assert params[p].default is inspect.Parameter.empty, (name, p)

    @covers("object.prefix-dirs", "write.parents")
    async def test_removing_last_file_of_implicit_directory(
        self, store: StoreAPI, caps: Capabilities
    ) -> None:
        await store.write_bytes("implicit/sub/only.bin", b"x")
        await store.remove("implicit/sub/only.bin")
        if caps.object_store:
            # a directory is a prefix: with nothing below it, it is gone
            assert not await store.exists("implicit/sub")
            assert not await store.exists("implicit")
        else:
            assert await store.isdir("implicit/sub")
            assert await store.listdir("implicit/sub") == []

    @pytest.mark.parametrize(
        "name",
        [
            "with space.txt",
            "ünïcødé-日本語.bin",
            "a+b.txt",
            "100%.txt",
            "%2F%20encoded",
            "k=v&x=y.txt",
            "what?.txt",
            "semi;colon,comma.txt",
            "tilde~'quote'.txt",
        ],
    )
    @covers("object.special-keys")
    async def test_special_keys_round_trip(self, store: StoreAPI, name: str) -> None:
        dirname = f"dir {name}"
        await store.write_bytes(f"{dirname}/{name}", name.encode())
        await store.makedirs(f"made {name}")
        assert await store.read_bytes(f"{dirname}/{name}") == name.encode()
        assert await store.read_bytes(full_path(store, f"{dirname}/{name}")) == name.encode()
        assert await store.exists(f"{dirname}/{name}")
        assert await store.isdir(f"made {name}")
        assert await store.listdir(".") == sorted([dirname, f"made {name}"])
        assert await store.listdir(dirname) == [name]
        assert (await store.stat(f"{dirname}/{name}")).st_size == len(name.encode())
        walked = [entry async for entry in store.walk(store.root)]
        assert walked == [
            (store.root, sorted([dirname, f"made {name}"]), []),
            (full_path(store, dirname), [], [name]),
            (full_path(store, f"made {name}"), [], []),
        ]
        await store.copyfile(f"{dirname}/{name}", f"{name}.copy")
        await store.rename(f"{name}.copy", f"{name}.moved")
        assert await store.read_bytes(f"{name}.moved") == name.encode()
        await store.remove(f"{dirname}/{name}")
        assert not await store.exists(f"{dirname}/{name}")
        await store.rmtree(f"made {name}")
        assert not await store.exists(f"made {name}")
