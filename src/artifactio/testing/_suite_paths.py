"""Conformance tests for the path rules: forms, normalising, bounds, invalid paths."""

from __future__ import annotations

import os
import pathlib
import shutil
import traceback
import uuid
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import pytest

from .._exceptions import UnsupportedSchemeError
from .._paths import split_scheme
from .._registry import get_backend, open_store
from ._covers import covers
from ._harness import (
    Capabilities,
    StoreAPI,
    full_path,
    load_sync_facade,
    make_tree,
    raises,
    rejects,
    snapshot,
    unchanged,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .._paths import PathType

__all__ = [
    "BytesPath",
    "PathRulesTests",
    "StrPath",
    "assert_every_operation_rejects",
    "every_operation",
    "os_root",
]

MODES = ("r", "rb", "w", "wb", "a", "ab", "x", "xb")

# "ok/file.txt" and "ok/dir" exist in every tree the bad-path tests use.
BASE_TREE = {"ok/file.txt": b"content", "ok/dir": None, "ok/dir/inner.bin": b"inner"}


class StrPath(os.PathLike[str]):
    """A minimal ``os.PathLike`` giving ``str``."""

    def __init__(self, path: str) -> None:
        self._path = path

    def __fspath__(self) -> str:
        return self._path


class BytesPath(os.PathLike[bytes]):
    """A minimal ``os.PathLike`` giving ``bytes``."""

    def __init__(self, path: bytes) -> None:
        self._path = path

    def __fspath__(self) -> bytes:
        return self._path


def every_operation(
    store: StoreAPI, bad: PathType
) -> list[tuple[str, Callable[[], Awaitable[object]]]]:
    """One call of every operation (each path argument in turn) with ``bad`` as the path.

    The store must hold ``ok/file.txt`` and ``ok/dir`` (see ``BASE_TREE``).
    """

    async def drain_walk(**kwargs: Any) -> None:
        async for _ in store.walk(bad, **kwargs):
            pass

    def opener(mode: str, by_name: bool = False) -> Callable[[], Awaitable[object]]:
        async def call() -> None:
            ctx = store.open(name=bad, mode=mode) if by_name else store.open(bad, mode)
            async with ctx as f:
                if mode[0] != "r":
                    await f.write(b"x" if "b" in mode else "x")

        return call

    def errors_seen(exc: OSError) -> None:
        raise AssertionError(f"walk called onerror({exc!r}) instead of raising")

    calls: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("exists", lambda: store.exists(bad)),
        ("isdir", lambda: store.isdir(bad)),
        ("stat", lambda: store.stat(bad)),
        ("size", lambda: store.size(bad)),
        ("listdir", lambda: store.listdir(bad)),
        ("glob", lambda: store.glob(bad)),
        ("walk", drain_walk),
        ("walk(onerror)", lambda: drain_walk(onerror=errors_seen)),
        ("walk(bottom-up)", lambda: drain_walk(topdown=False)),
        ("read_bytes", lambda: store.read_bytes(bad)),
        ("write_bytes", lambda: store.write_bytes(bad, b"x")),
        ("makedirs", lambda: store.makedirs(bad)),
        ("mkdir", lambda: store.mkdir(bad)),
        ("remove", lambda: store.remove(bad)),
        ("rmtree", lambda: store.rmtree(bad)),
        ("copyfile(dst)", lambda: store.copyfile("ok/file.txt", bad)),
        ("copyfile(dst, overwrite)", lambda: store.copyfile("ok/file.txt", bad, overwrite=True)),
        ("copyfile(src)", lambda: store.copyfile(bad, "ok/new.txt")),
        ("copyfile(src, overwrite)", lambda: store.copyfile(bad, "ok/file.txt", overwrite=True)),
        ("rename(dst)", lambda: store.rename("ok/file.txt", bad)),
        ("rename(dst, overwrite)", lambda: store.rename("ok/file.txt", bad, overwrite=True)),
        ("rename(dir, dst)", lambda: store.rename("ok/dir", bad)),
        ("rename(src)", lambda: store.rename(bad, "ok/new.txt")),
        ("rename(src, overwrite)", lambda: store.rename(bad, "ok/file.txt", overwrite=True)),
        ("open(name=)", opener("rb", by_name=True)),
    ]
    calls.extend((f"open({mode!r})", opener(mode)) for mode in MODES)
    return calls


async def assert_every_operation_rejects(
    store: StoreAPI, bad: PathType, exc_type: type[BaseException]
) -> None:
    """Every operation given ``bad`` raises ``exc_type`` and changes nothing."""
    async with unchanged(store):
        for label, call in every_operation(store, bad):
            await raises(exc_type, call, f"{label} with {bad!r}")


def os_root(store: StoreAPI) -> str:
    """For a local store, the root as a plain filesystem path."""
    root = store.root
    return root[len("file://") :] if root.startswith("file://") else root


class PathRulesTests:
    """docs/semantics.md, "Paths": forms, normalising, bounds, invalid paths, below a file."""

    @covers("path.types")
    async def test_accepted_path_types(self, store: StoreAPI) -> None:
        full = full_path(store, "forms/x.bin")
        forms: list[PathType] = [
            full,
            "forms/x.bin",
            os.fsencode(full),
            b"forms/x.bin",
            StrPath(full),
            StrPath("forms/x.bin"),
            BytesPath(os.fsencode(full)),
            BytesPath(b"forms/x.bin"),
            pathlib.PurePosixPath("forms/x.bin"),
        ]
        for i, form in enumerate(forms):
            data = f"written through form {i}".encode()
            await store.write_bytes(form, data)
            for other in forms:
                assert await store.read_bytes(other) == data, (form, other)
                assert await store.exists(other)
                assert (await store.stat(other)).st_size == len(data)
        assert await store.isdir(b"forms")
        assert await store.isdir(StrPath("forms"))

    @covers("path.returned-str", "path.full")
    async def test_returned_paths_are_str(self, store: StoreAPI) -> None:
        await make_tree(store, {"ret/a.bin": b"a", "ret/sub/b.bin": b"b"})
        found = await store.glob(b"ret/*")
        assert found == [full_path(store, "ret/a.bin"), full_path(store, "ret/sub")]
        assert all(type(p) is str for p in found)
        names = await store.listdir(b"ret")
        assert names == ["a.bin", "sub"]
        assert all(type(n) is str for n in names)
        walked = [entry async for entry in store.walk(os.fsencode(full_path(store, "ret")))]
        assert walked == [
            (full_path(store, "ret"), ["sub"], ["a.bin"]),
            (full_path(store, "ret/sub"), [], ["b.bin"]),
        ]
        for dirpath, dirnames, filenames in walked:
            assert type(dirpath) is str
            assert all(type(n) is str for n in [*dirnames, *filenames])
        async with store.open(b"ret/a.bin", "rb") as f:
            assert type(f.name) is str
            assert f.name == full_path(store, "ret/a.bin")

    @covers("path.relative", "path.full")
    async def test_relative_paths_join_the_root(self, store: StoreAPI) -> None:
        await store.write_bytes("rel/a.txt", b"relative")
        assert await store.read_bytes(full_path(store, "rel/a.txt")) == b"relative"
        assert await store.exists(full_path(store, "rel/a.txt"))
        assert await store.isdir(full_path(store, "rel"))
        assert await store.glob("rel/*") == [full_path(store, "rel/a.txt")]
        assert await store.listdir(full_path(store, "rel")) == ["a.txt"]
        await store.write_bytes(full_path(store, "rel/b.txt"), b"full")
        assert await store.read_bytes("rel/b.txt") == b"full"
        assert await store.listdir("rel") == ["a.txt", "b.txt"]

    @covers("path.normalise", "glob.dirs-only")
    async def test_normalising(self, store: StoreAPI) -> None:
        await make_tree(store, {"n/y.txt": b"why", "n/sub": None})
        root = store.root.rstrip("/")
        same_file = [
            "n/y.txt",
            "./n/y.txt",
            "n/./y.txt",
            "n//y.txt",
            "n///./y.txt",
            "n/sub/../y.txt",
            "n/y.txt/",
            "n/y.txt//",
            "x/../n/y.txt",
            f"{root}/n/y.txt",
            f"{root}//n//y.txt",
            f"{root}/./n/sub/../y.txt",
            f"{root}/n/y.txt/",
        ]
        for form in same_file:
            assert await store.read_bytes(form) == b"why", form
            assert await store.exists(form), form
            assert not await store.isdir(form), form
            # A glob pattern is not a path: its trailing "/" asks for directories only.
            expected = [] if form.endswith("/") else [full_path(store, "n/y.txt")]
            assert await store.glob(form) == expected, form
        for form in ["n", "n/", "./n", "n/.", "n//", "n/sub/..", f"{root}/n/", f"{root}//n"]:
            assert await store.isdir(form), form
            assert await store.listdir(form) == ["sub", "y.txt"], form
            walked = [entry async for entry in store.walk(form)]
            assert walked[0] == (full_path(store, "n"), ["sub"], ["y.txt"]), form
            spelled = full_path(store, "n") + ("/" if form.endswith("/") else "")
            assert await store.glob(form) == [spelled], form
        assert await store.glob("n//*.txt") == [full_path(store, "n/y.txt")]
        assert await store.glob("./n/sub/../*.txt") == [full_path(store, "n/y.txt")]
        # writes through an unnormalised path land on the normalised key
        await store.write_bytes("n/sub/../z.txt/", b"zed")
        assert await store.listdir("n") == ["sub", "y.txt", "z.txt"]
        assert await store.read_bytes("n/z.txt") == b"zed"

    @covers("path.normalise", "exists.answers", "isdir.answers")
    async def test_root_spellings(self, store: StoreAPI) -> None:
        await store.write_bytes("r.txt", b"r")
        root = store.root
        for form in [root, root.rstrip("/") + "/", ".", "./", "sub/..", root.rstrip("/") + "/."]:
            assert await store.exists(form), form
            assert await store.isdir(form), form
            assert await store.listdir(form) == ["r.txt"], form
            assert (await store.stat(form)).is_dir, form
            walked = [entry async for entry in store.walk(form)]
            assert walked == [(root, [], ["r.txt"])], form

    @covers("path.bounds", "path.outside")
    async def test_bounds_compare_components(self, store: StoreAPI) -> None:
        await make_tree(store, BASE_TREE)
        root = store.root.rstrip("/")
        # Same string prefix as the root, but not below it.
        for bad in [root + "b", root + "b/ok/file.txt", root + "-x/y", root + ".bak"]:
            await assert_every_operation_rejects(store, bad, PermissionError)

    @covers("path.bounds", "path.outside")
    async def test_dotdot_escapes_are_rejected(self, store: StoreAPI) -> None:
        await make_tree(store, BASE_TREE)
        root = store.root.rstrip("/")
        bads: list[PathType] = [
            "..",
            "../x",
            "ok/../../x",
            "./../ok/file.txt",
            "ok/dir/../../../ok/file.txt",
            f"{root}/..",
            f"{root}/../x",
            f"{root}/ok/../../x",
            b"../x",
        ]
        for bad in bads:
            await assert_every_operation_rejects(store, bad, PermissionError)

    @covers("path.invalid")
    async def test_invalid_paths_raise_value_error(self, store: StoreAPI) -> None:
        await make_tree(store, BASE_TREE)
        root = store.root.rstrip("/")
        bads: list[PathType] = [
            "",
            b"",
            StrPath(""),
            "ok/fi\x00le.txt",
            f"{root}/ok/\x00",
            b"ok/\x00",
            b"ok/\xff\xfe.bin",
            os.fsencode(root) + b"/\xff",
            BytesPath(b"\xc3\x28"),
        ]
        for bad in bads:
            await assert_every_operation_rejects(store, bad, ValueError)

    @covers("path.other-scheme")
    async def test_other_schemes_are_outside(self, store: StoreAPI) -> None:
        await make_tree(store, BASE_TREE)
        scheme, rest = split_scheme(store.root)
        own = {scheme or "file"}
        where = rest.strip("/")  # the root's bucket/name and prefix, or its local path
        for other in ("s3", "gs", "memory", "file", "az", "https"):
            if other in own:
                continue
            # The rest of each URI names a path below the root; only the scheme differs.
            for bad in (f"{other}://{where}", f"{other}://{where}/ok/file.txt"):
                await assert_every_operation_rejects(store, bad, PermissionError)

    @covers("path.absolute-local", "path.outside")
    async def test_absolute_local_paths(self, store: StoreAPI) -> None:
        await make_tree(store, BASE_TREE)
        scheme, rest = split_scheme(store.root)
        bads = ["/etc/passwd", "/"]
        if scheme not in ("", "file"):
            # Not a key below the root, even where the rest spells one.
            where = rest.strip("/")  # the root's bucket/name and prefix
            bads += ["/ok/file.txt", "/ok", f"/{where}", f"/{where}/ok/file.txt", "//ok/dir"]
        for bad in bads:
            await assert_every_operation_rejects(store, bad, PermissionError)
        # The root's own spelling and relative paths keep working.
        assert await store.read_bytes(full_path(store, "ok/file.txt")) == b"content"
        assert await store.read_bytes("ok/file.txt") == b"content"

    @covers("config.no-values-in-errors")
    async def test_options_never_shown_in_errors(self, store: StoreAPI) -> None:
        scheme = split_scheme(store.root)[0] or "file"
        try:
            get_backend(scheme)
        except UnsupportedSchemeError:
            pytest.skip(f"no backend is registered for {scheme}://: open_store cannot open it")
        secret = f"sekrit-{uuid.uuid4().hex}"
        number = 7_654_321_987
        cases: list[tuple[str, object]] = [
            ("secret_key", secret),  # a mistyped option may hold a secret
            ("concurrency", secret),  # a wrong type
            ("part_size", [secret]),
            ("concurrency", -number),  # a bad value
        ]
        for make in (open_store, load_sync_facade()):
            for name, value in cases:
                with pytest.raises(ValueError, match=name) as info:
                    make(store.root, **{name: value})
                exc = info.value
                shown = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
                for text in shown:
                    assert secret not in text, (name, text)
                    assert str(number) not in text, (name, text)

    @covers("path.below-file-local")
    async def test_paths_below_a_file_on_local_disk(
        self, store: StoreAPI, caps: Capabilities
    ) -> None:
        if not caps.local_paths:
            pytest.skip("what os raises below a file is the local disk's row")
        await make_tree(store, BASE_TREE)
        for bad in ("ok/file.txt/x", "ok/file.txt/x/y"):
            assert not await store.exists(bad), bad
            assert not await store.isdir(bad), bad
            assert await store.glob(bad + "/*") == [], bad
            errors: list[OSError] = []
            assert [entry async for entry in store.walk(bad, onerror=errors.append)] == []
            assert [type(e) for e in errors] == [NotADirectoryError], bad
            async with unchanged(store):
                for label, call in every_operation(store, bad):
                    if label in ("exists", "isdir", "glob", "walk", "walk(onerror)"):
                        continue  # answered above
                    if label.startswith("walk"):
                        await call()  # without onerror the error is dropped, as os.walk does
                        continue
                    await raises(NotADirectoryError, call, f"{label} with {bad!r}")
                # os.rename resolves both parents before it looks at the source...
                await raises(NotADirectoryError, partial(store.rename, "ok/missing", bad))
                # ...shutil.copyfile opens the source first
                await raises(FileNotFoundError, partial(store.copyfile, "ok/missing", bad))

    @covers("path.below-file-object")
    async def test_paths_below_a_file_on_object_stores(
        self, store: StoreAPI, caps: Capabilities
    ) -> None:
        if not caps.object_store:
            pytest.skip("object stores only: they do not look at ancestors")
        await make_tree(store, BASE_TREE)
        for bad in ("ok/file.txt/x", "ok/file.txt/x/y"):
            async with unchanged(store):
                assert not await store.exists(bad), bad
                assert not await store.isdir(bad), bad
                assert await store.glob(bad + "/*") == [], bad
                errors: list[OSError] = []
                assert [entry async for entry in store.walk(bad, onerror=errors.append)] == []
                assert [type(e) for e in errors] == [FileNotFoundError], bad
                calls: list[tuple[str, Callable[[], Awaitable[object]]]] = [
                    ("stat", partial(store.stat, bad)),
                    ("size", partial(store.size, bad)),
                    ("remove", partial(store.remove, bad)),
                    ("listdir", partial(store.listdir, bad)),
                    ("rmtree", partial(store.rmtree, bad)),
                    ("read_bytes", partial(store.read_bytes, bad)),
                    ("copyfile(src)", partial(store.copyfile, bad, "ok/new.txt")),
                    ("rename(src)", partial(store.rename, bad, "ok/new.txt")),
                ]
                for label, call in calls:
                    await raises(FileNotFoundError, call, f"{label} with {bad!r}")
            # makedirs still refuses a file among the parents
            await rejects(store, NotADirectoryError, partial(store.makedirs, bad))

    @covers("path.local-forms", "path.outside")
    async def test_local_file_uris(self, store: StoreAPI, caps: Capabilities) -> None:
        if not caps.local_paths:
            pytest.skip("local-path rows apply to local roots only")
        plain = os_root(store)
        uri = "file://" + plain
        await store.write_bytes(uri + "/u/a.txt", b"via uri")
        assert await store.read_bytes(plain + "/u/a.txt") == b"via uri"
        assert await store.read_bytes("u/a.txt") == b"via uri"
        # returned paths keep the root's own spelling, whichever spelling was given
        assert await store.glob(uri + "/u/*") == [full_path(store, "u/a.txt")]
        assert await store.glob(plain + "/u/*") == [full_path(store, "u/a.txt")]
        await assert_every_operation_rejects(store, "file://" + plain + "b/x", PermissionError)

    @covers("path.local-symlink-out")
    async def test_local_symlinks_leaving_the_root(
        self, store: StoreAPI, caps: Capabilities
    ) -> None:
        if not caps.local_paths:
            pytest.skip("local-path rows apply to local roots only")
        await make_tree(store, BASE_TREE)
        plain = os_root(store).rstrip("/")
        outside = plain + "-outside"

        def setup() -> None:
            os.makedirs(outside + "/sub", exist_ok=True)
            with open(outside + "/secret", "wb") as f:
                f.write(b"secret")
            os.symlink(outside, plain + "/link")
            os.symlink(outside + "/secret", plain + "/flink")

        await anyio.to_thread.run_sync(setup)
        try:
            for bad in [
                outside + "/secret",
                "link/secret",
                "link/sub",
                "link/new.txt",
                "link",
                "flink",
                plain + "/link/secret",
            ]:
                for label, call in every_operation(store, bad):
                    with pytest.raises(PermissionError):
                        await call()
                    assert await anyio.to_thread.run_sync(_listdir, outside) == [
                        "secret",
                        "sub",
                    ], f"{label} on {bad!r} changed the directory outside the root"
            assert await anyio.to_thread.run_sync(_read, outside + "/secret") == b"secret"
        finally:
            await anyio.to_thread.run_sync(shutil.rmtree, outside)

    @covers("walk.entries")
    async def test_snapshot_sees_everything(self, store: StoreAPI) -> None:
        # The "changes nothing" checks rely on snapshot(); make sure it can fail.
        tree = {"s/a.bin": b"a", "s/empty": None, "s/d/b.bin": b"b", ".h": b"h"}
        await make_tree(store, tree)
        assert await snapshot(store) == {"s": None, "s/d": None, **tree}


def _listdir(path: str) -> list[str]:
    return sorted(os.listdir(path))


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
