"""Paths below a file on a local disk: every operation raises (or returns) what os and shutil do."""

from __future__ import annotations

import functools
import glob
import os
import shutil
from typing import TYPE_CHECKING, Any, TypeAlias

import pytest

import artifactio
from _local_fixtures import on_disk
from artifactio.backends.local import LocalStore
from artifactio.testing import SyncAsAsync, covers

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path


# ------------------------------------------- below a file: what os and shutil raise


def _zenml_copyfile(src: str, dst: str, overwrite: bool = False) -> None:
    """ZenML's ``LocalFilesystem.copyfile``: the exists check, then ``shutil.copyfile``."""
    if not overwrite and os.path.exists(dst):
        raise FileExistsError(dst)
    shutil.copyfile(src, dst)


def _zenml_rename(src: str, dst: str, overwrite: bool = False) -> None:
    """ZenML's ``LocalFilesystem.rename``: the exists check, then ``os.rename``."""
    if not overwrite and os.path.exists(dst):
        raise FileExistsError(dst)
    os.rename(src, dst)


def _os_open(path: str, mode: str) -> None:
    with open(path, mode) as f:
        if mode[0] != "r":
            f.write(b"x" if "b" in mode else "x")


def _os_walk_errors(top: str) -> list[type[OSError]]:
    errors: list[OSError] = []
    for _ in os.walk(top, onerror=errors.append):
        pass
    return [type(e) for e in errors]


def _os_open_at(at: Callable[[str], str], path: str, *, mode: str) -> None:
    _os_open(at(path), mode)


async def _store_open(store: Any, path: str, mode: str) -> None:
    async with store.open(path, mode) as f:
        if mode[0] != "r":
            await f.write(b"x" if "b" in mode else "x")


async def _store_walk_errors(store: Any, top: str) -> list[type[OSError]]:
    errors: list[OSError] = []
    async for _ in store.walk(top, onerror=errors.append):
        pass
    return [type(e) for e in errors]


OsCall: TypeAlias = "Callable[[Callable[[str], str], str], object]"
StoreCall: TypeAlias = "Callable[[Any, str], Awaitable[object]]"

# label -> (the call on the twin through os/shutil/glob, the same call on the store).
# On the os side ``at`` turns a path relative to the twin into an absolute one.
BELOW_FILE_OPERATIONS: dict[str, tuple[OsCall, StoreCall]] = {
    "exists": (lambda at, p: os.path.exists(at(p)), lambda s, p: s.exists(p)),
    "isdir": (lambda at, p: os.path.isdir(at(p)), lambda s, p: s.isdir(p)),
    "stat": (lambda at, p: os.stat(at(p)) and None, lambda s, p: s.stat(p)),
    "size": (lambda at, p: os.path.getsize(at(p)), lambda s, p: s.size(p)),
    "listdir": (lambda at, p: os.listdir(at(p)), lambda s, p: s.listdir(p)),
    "glob": (
        lambda at, p: glob.glob(at(p) + "/*", recursive=True),
        lambda s, p: s.glob(p + "/*"),
    ),
    "walk(onerror)": (lambda at, p: _os_walk_errors(at(p)), _store_walk_errors),
    "remove": (lambda at, p: os.remove(at(p)), lambda s, p: s.remove(p)),
    "rmtree": (lambda at, p: shutil.rmtree(at(p)), lambda s, p: s.rmtree(p)),
    "makedirs": (
        lambda at, p: os.makedirs(at(p), exist_ok=True),
        lambda s, p: s.makedirs(p),
    ),
    "mkdir": (lambda at, p: os.mkdir(at(p)), lambda s, p: s.mkdir(p)),
    "read_bytes": (lambda at, p: _os_open(at(p), "rb"), lambda s, p: s.read_bytes(p)),
    "write_bytes": (lambda at, p: _os_open(at(p), "wb"), lambda s, p: s.write_bytes(p, b"x")),
    **{
        f"open({mode!r})": (
            functools.partial(_os_open_at, mode=mode),
            functools.partial(_store_open, mode=mode),
        )
        for mode in ("r", "rb", "w", "wb", "a", "ab", "x", "xb")
    },
    "copyfile(src)": (
        lambda at, p: _zenml_copyfile(at(p), at("new.txt")),
        lambda s, p: s.copyfile(p, "new.txt"),
    ),
    "copyfile(src, overwrite)": (
        lambda at, p: _zenml_copyfile(at(p), at("ok.txt"), overwrite=True),
        lambda s, p: s.copyfile(p, "ok.txt", overwrite=True),
    ),
    "copyfile(dst)": (
        lambda at, p: _zenml_copyfile(at("ok.txt"), at(p)),
        lambda s, p: s.copyfile("ok.txt", p),
    ),
    "copyfile(dst, overwrite)": (
        lambda at, p: _zenml_copyfile(at("ok.txt"), at(p), overwrite=True),
        lambda s, p: s.copyfile("ok.txt", p, overwrite=True),
    ),
    "copyfile(missing src, dst)": (
        lambda at, p: _zenml_copyfile(at("missing.txt"), at(p)),
        lambda s, p: s.copyfile("missing.txt", p),
    ),
    "copyfile(dir src, dst)": (
        lambda at, p: _zenml_copyfile(at("dir"), at(p)),
        lambda s, p: s.copyfile("dir", p),
    ),
    "rename(src)": (
        lambda at, p: _zenml_rename(at(p), at("new.txt")),
        lambda s, p: s.rename(p, "new.txt"),
    ),
    "rename(src, overwrite)": (
        lambda at, p: _zenml_rename(at(p), at("ok.txt"), overwrite=True),
        lambda s, p: s.rename(p, "ok.txt", overwrite=True),
    ),
    "rename(dst)": (
        lambda at, p: _zenml_rename(at("ok.txt"), at(p)),
        lambda s, p: s.rename("ok.txt", p),
    ),
    "rename(dst, overwrite)": (
        lambda at, p: _zenml_rename(at("ok.txt"), at(p), overwrite=True),
        lambda s, p: s.rename("ok.txt", p, overwrite=True),
    ),
    "rename(dir src, dst)": (
        lambda at, p: _zenml_rename(at("dir"), at(p)),
        lambda s, p: s.rename("dir", p),
    ),
    "rename(missing src, dst)": (
        lambda at, p: _zenml_rename(at("missing.txt"), at(p)),
        lambda s, p: s.rename("missing.txt", p),
    ),
}

# shape -> (the tree: content, None for a directory, "->target" for a symlink; the bad path)
BELOW_FILE_SHAPES: dict[str, tuple[dict[str, bytes | str | None], str]] = {
    "below a top-level file": ({"f": b""}, "f/x"),
    "two levels below a file": ({"f": b"data"}, "f/x/y"),
    "below a file in a directory": ({"d/f": b"data", "d/g": b"g"}, "d/f/x"),
    "below a link to a file": ({"t.txt": b"t", "l": "->t.txt"}, "l/x"),
    "below a file, trailing slash": ({"f": b"data"}, "f/x/"),
}


def _make_twin_tree(top: Path, tree: dict[str, bytes | str | None]) -> None:
    full = {"ok.txt": b"ok", "dir": None, "dir/in.txt": b"in", **tree}
    for rel, content in full.items():
        path = top / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.mkdir(exist_ok=True)
        elif isinstance(content, str):
            path.symlink_to(content.removeprefix("->"))
        else:
            path.write_bytes(content)


def _outcome(value: object) -> tuple[str, object]:
    if isinstance(value, (bool, list)):
        return "returned", value
    return "returned", None


@covers("path.below-file-local")
@pytest.mark.parametrize("api", ["async", "sync"])
@pytest.mark.parametrize("shape", BELOW_FILE_SHAPES)
@pytest.mark.parametrize("operation", BELOW_FILE_OPERATIONS)
async def test_below_a_file_raises_what_os_raises(
    tmp_path: Path, operation: str, shape: str, api: str
) -> None:
    tree, bad = BELOW_FILE_SHAPES[shape]
    root, twin = tmp_path / "root", tmp_path / "twin"
    _make_twin_tree(root, tree)
    _make_twin_tree(twin, tree)
    os_call, store_call = BELOW_FILE_OPERATIONS[operation]
    try:
        expected = _outcome(os_call(lambda rel: str(twin / rel), bad))
    except OSError as exc:
        expected = ("raised", type(exc))
    store: Any = LocalStore(str(root))
    if api == "sync":
        store = SyncAsAsync(artifactio.ArtifactStore(store))
    try:
        got = _outcome(await store_call(store, bad))
    except OSError as exc:
        got = ("raised", type(exc))
    # (glob's lists compare too: nothing lies below a file, so both are empty)
    assert got == expected, f"{operation} on {bad!r}: store {got}, os {expected}"
    assert on_disk(root) == on_disk(twin), "the store and os left different trees"
    if api == "sync":
        store.sync_store.close()
