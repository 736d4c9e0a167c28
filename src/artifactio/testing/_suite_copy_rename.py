"""Conformance tests for ``copyfile`` and ``rename``: their rows, and which error comes first."""

from __future__ import annotations

import errno
import inspect
from functools import partial
from typing import Any

import pytest

from ._covers import covers
from ._harness import (
    Capabilities,
    StoreAPI,
    full_path,
    make_tree,
    raises,
    rejects,
    snapshot,
    unchanged,
)
from ._suite_ops import TREE

__all__ = ["CopyRenameTests"]


class _InjectedFailure(OSError):
    """The failure the suite injects into a backend's bulk step."""


class CopyRenameTests:
    """docs/semantics.md: the ``copyfile`` rows of "Operations", "Rename", and the error order."""

    # -------------------------------------------------------------- copyfile

    @covers("copyfile.copies", "copyfile.dst-parents")
    async def test_copyfile(self, store: StoreAPI) -> None:
        await make_tree(store, TREE)
        await store.copyfile("src.bin", "copy.bin")
        assert await store.read_bytes("copy.bin") == b"source"
        assert await store.read_bytes("src.bin") == b"source"
        await store.copyfile(full_path(store, "src.bin"), full_path(store, "d/copy.bin"))
        assert await store.read_bytes("d/copy.bin") == b"source"
        await store.copyfile("d/sub/deep.bin", "empty/deep.bin")
        assert await store.listdir("empty") == ["deep.bin"]
        await store.copyfile("src.bin", "new/parents/copy.bin")  # parents made, as for writes
        assert await store.read_bytes("new/parents/copy.bin") == b"source"
        assert await store.isdir("new/parents")
        await store.write_bytes("zero.bin", b"")
        await store.copyfile("zero.bin", "zero-copy.bin")
        assert await store.read_bytes("zero-copy.bin") == b""

    @covers("copyfile.overwrite")
    async def test_copyfile_overwrite(self, store: StoreAPI) -> None:
        await make_tree(store, TREE)
        await store.copyfile("src.bin", "other.bin", overwrite=True)
        assert await store.read_bytes("other.bin") == b"source"
        await store.copyfile("src.bin", "fresh.bin", overwrite=True)
        assert await store.read_bytes("fresh.bin") == b"source"
        before = await snapshot(store)
        await store.copyfile("src.bin", "src.bin", overwrite=True)
        assert await snapshot(store) == before

    @covers(
        "copyfile.src-missing",
        "copyfile.src-dir",
        "copyfile.dst-exists",
        "copyfile.dst-dir",
        "order.dst-exists-first",
    )
    async def test_copyfile_errors(self, store: StoreAPI, caps: Capabilities) -> None:
        await make_tree(store, TREE)
        cases: list[tuple[type[OSError], str, str, bool]] = [
            (FileNotFoundError, "missing.bin", "dst.bin", False),
            (FileNotFoundError, "missing.bin", "dst.bin", True),
            (FileNotFoundError, "nodir/missing.bin", "dst.bin", False),
            (IsADirectoryError, "d", "dst.bin", False),
            (IsADirectoryError, "d", "dst.bin", True),
            (FileExistsError, "src.bin", "other.bin", False),
            (FileExistsError, "src.bin", "src.bin", False),
            (FileExistsError, "src.bin", "d", False),
            (IsADirectoryError, "src.bin", "d", True),
            (IsADirectoryError, "src.bin", "empty", True),
            (IsADirectoryError, "src.bin", ".", True),
            (IsADirectoryError, "src.bin", store.root, True),
            # "destination exists" is checked before anything about the source
            (FileExistsError, "missing.bin", "other.bin", False),
            (FileExistsError, "d", "other.bin", False),
            (FileExistsError, "missing.bin", "d", False),
        ]
        if caps.checks_ancestors:
            cases.append((NotADirectoryError, "src.bin", "other.bin/x.bin", False))
        async with unchanged(store):
            for exc, src, dst, overwrite in cases:
                await raises(
                    exc,
                    partial(store.copyfile, src, dst, overwrite=overwrite),
                    f"copyfile({src!r}, {dst!r}, overwrite={overwrite})",
                )

    # ----------------------------------------------------------------- rename

    @covers("rename.file", "rename.dst-parents")
    async def test_rename_file(self, store: StoreAPI) -> None:
        await make_tree(store, TREE)
        await store.rename("src.bin", "moved.bin")
        assert not await store.exists("src.bin")
        assert await store.read_bytes("moved.bin") == b"source"
        await store.rename(full_path(store, "moved.bin"), full_path(store, "d/moved.bin"))
        assert await store.read_bytes("d/moved.bin") == b"source"
        await store.rename("d/moved.bin", "empty/moved.bin")
        assert await store.listdir("empty") == ["moved.bin"]
        await store.rename("empty/moved.bin", "new/parents/moved.bin")  # parents made
        assert await store.read_bytes("new/parents/moved.bin") == b"source"
        await store.rename("new/parents/moved.bin", "other.bin", overwrite=True)
        assert await store.read_bytes("other.bin") == b"source"
        assert not await store.exists("new/parents/moved.bin")

    @covers("rename.directory", "rename.onto-empty-dir")
    async def test_rename_directory(self, store: StoreAPI) -> None:
        await make_tree(store, {**TREE, "d/sub/empty": None})
        await store.rename("d", "e")
        assert not await store.exists("d")
        assert await snapshot(store) == {
            "src.bin": b"source",
            "other.bin": b"other",
            "empty": None,
            "e": None,
            "e/inner.bin": b"inner",
            "e/sub": None,
            "e/sub/deep.bin": b"deep",
            "e/sub/empty": None,
        }
        await store.rename("e", "empty/e")  # into an existing directory
        assert await store.read_bytes("empty/e/sub/deep.bin") == b"deep"
        await store.makedirs("target")
        await store.rename("empty/e", "target", overwrite=True)  # onto an empty directory
        assert await store.read_bytes("target/sub/deep.bin") == b"deep"
        assert await store.listdir("empty") == []
        await store.rename("empty", "renamed-empty")
        assert await store.isdir("renamed-empty")
        assert not await store.exists("empty")

    @covers("rename.same-path")
    async def test_rename_onto_itself(self, store: StoreAPI) -> None:
        await make_tree(store, TREE)
        before = await snapshot(store)
        await store.rename("src.bin", "src.bin", overwrite=True)
        await store.rename("src.bin", full_path(store, "src.bin"), overwrite=True)
        assert await snapshot(store) == before
        await rejects(store, FileExistsError, lambda: store.rename("src.bin", "src.bin"))
        await rejects(store, FileExistsError, lambda: store.rename("d", "d"))

    @covers(
        "rename.src-missing",
        "rename.dst-exists",
        "rename.file-onto-dir",
        "rename.dir-onto-file",
        "order.dst-exists-first",
    )
    async def test_rename_errors(self, store: StoreAPI) -> None:
        await make_tree(store, {**TREE, "full/x.bin": b"x"})
        cases: list[tuple[type[OSError], str, str, bool]] = [
            (FileNotFoundError, "missing.bin", "dst.bin", False),
            (FileNotFoundError, "missing.bin", "dst.bin", True),
            (FileNotFoundError, "missing/deeper", "dst.bin", False),
            (FileExistsError, "src.bin", "other.bin", False),
            (FileExistsError, "src.bin", "d", False),
            (FileExistsError, "d", "full", False),
            (FileExistsError, "d", "src.bin", False),
            # "destination exists" is checked before anything about the source
            (FileExistsError, "missing.bin", "other.bin", False),
            (FileExistsError, "missing.bin", "d", False),
            (IsADirectoryError, "src.bin", "d", True),
            (IsADirectoryError, "src.bin", "empty", True),
            (IsADirectoryError, "d/inner.bin", "d", True),  # onto its own parent
            (IsADirectoryError, "d/sub/deep.bin", "d/sub", True),
            (NotADirectoryError, "d", "src.bin", True),
            (NotADirectoryError, "empty", "other.bin", True),
        ]
        async with unchanged(store):
            for exc, src, dst, overwrite in cases:
                await raises(
                    exc,
                    partial(store.rename, src, dst, overwrite=overwrite),
                    f"rename({src!r}, {dst!r}, overwrite={overwrite})",
                )

    @covers("rename.dst-parents")
    async def test_rename_makes_destination_parents(self, store: StoreAPI) -> None:
        await make_tree(store, {**TREE, "d/sub/empty": None})
        await store.rename("src.bin", "p/q/moved.bin")
        assert await store.read_bytes("p/q/moved.bin") == b"source"
        await store.rename("d", "x/y/d")
        await store.rename("empty", full_path(store, "x/z/empty"))
        assert await snapshot(store) == {
            "other.bin": b"other",
            "p": None,
            "p/q": None,
            "p/q/moved.bin": b"source",
            "x": None,
            "x/y": None,
            "x/y/d": None,
            "x/y/d/inner.bin": b"inner",
            "x/y/d/sub": None,
            "x/y/d/sub/deep.bin": b"deep",
            "x/y/d/sub/empty": None,
            "x/z": None,
            "x/z/empty": None,
        }

    @covers("rename.failure-cleanup")
    async def test_failed_directory_move_leaves_no_partial_copy(
        self, store: StoreAPI, backend: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        tree = {f"src/f{i}.bin": bytes([i]) * i for i in range(6)}
        await make_tree(store, {**tree, "src/sub/g.bin": b"g", "src/empty": None})
        before = await snapshot(store)
        # Bulk steps (copying files, writing markers) go through the backend's
        # _for_each: run them one at a time and fail the third, after two are made.
        real_for_each = backend._for_each
        steps: list[str] = []

        async def failing_for_each(items: Any, func: Any, *, limit: int | None = None) -> None:
            async def step(item: Any) -> None:
                if len(steps) == 2 and "failed" not in steps:
                    steps.append("failed")
                    raise _InjectedFailure(errno.EIO, "copy: injected failure", "dst")
                await func(item)
                if "failed" not in steps:
                    steps.append("done")

            await real_for_each(items, step, limit=1)

        monkeypatch.setattr(backend, "_for_each", failing_for_each)
        try:
            await store.rename("src", "dst")
        except _InjectedFailure:
            assert steps[:3] == ["done", "done", "failed"]
            monkeypatch.undo()
            assert await snapshot(store) == before, "the failed move left changes"
            await store.rename("src", "dst")  # a retry is not refused
        else:
            # The backend moved the directory in one step (local disk: os.rename),
            # so it cannot have failed part-way.
            assert steps == []
            monkeypatch.undo()
        expected = {"dst" + key[len("src") :]: value for key, value in before.items()}
        assert await snapshot(store) == expected

    @covers("rename.not-atomic")
    async def test_rename_says_it_is_not_atomic_on_object_stores(
        self, interface: Any, caps: Capabilities
    ) -> None:
        if not caps.object_store:
            pytest.skip("object stores only: elsewhere rename may be atomic")
        doc = " ".join((inspect.getdoc(interface.rename) or "").split())
        assert "object stores" in doc
        assert "not atomic" in doc

    @covers("rename.dir-onto-full-dir")
    async def test_rename_directory_onto_non_empty_directory(self, store: StoreAPI) -> None:
        await make_tree(store, {**TREE, "full/x.bin": b"x"})
        info = await rejects(store, OSError, lambda: store.rename("d", "full", overwrite=True))
        assert isinstance(info.value, OSError)
        assert info.value.errno == errno.ENOTEMPTY

    @covers("rename.into-itself")
    async def test_rename_directory_into_itself(self, store: StoreAPI) -> None:
        await make_tree(store, TREE)
        async with unchanged(store):
            for dst in ("d/sub/inside", "d/inside", "d/sub/deeper/still"):
                exc = await raises(OSError, partial(store.rename, "d", dst), dst)
                assert isinstance(exc, OSError)
                assert exc.errno == errno.EINVAL, dst

    @covers("rename.root")
    async def test_rename_root(self, store: StoreAPI) -> None:
        await make_tree(store, TREE)
        async with unchanged(store):
            for src in (".", store.root):
                await raises(PermissionError, partial(store.rename, src, "elsewhere"))
