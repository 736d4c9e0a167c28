"""Local symlinks: a link leading out of the root is outside the store, links inside work."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import artifactio
from _local_fixtures import local_root, local_store, on_disk, temp_files  # noqa: F401 - fixtures
from artifactio.backends.local import LocalStore
from artifactio.testing import covers

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path


# -------------------------------------------------------------------- symlinks


@pytest.fixture(params=["absolute", "relative", "chained"])
def escaping_root(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A root holding ``link`` (a directory link) and ``flink`` (a file link) that lead out."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "inside.txt").write_text("inside")
    if request.param == "absolute":
        (root / "link").symlink_to(outside)
        (root / "flink").symlink_to(outside / "secret.txt")
    elif request.param == "relative":
        (root / "link").symlink_to("../outside")
        (root / "flink").symlink_to("../outside/secret.txt")
    else:  # an inside link to an inside link that leads out
        (root / "hop").symlink_to(outside)
        (root / "link").symlink_to("hop")
        (root / "flink").symlink_to("hop/secret.txt")
    return root


OUTSIDE_OPERATIONS: dict[str, Callable[[LocalStore], Awaitable[object]]] = {
    "exists": lambda s: s.exists("link"),
    "exists below": lambda s: s.exists("link/secret.txt"),
    "exists missing below": lambda s: s.exists("link/missing.txt"),
    "isdir": lambda s: s.isdir("link"),
    "stat": lambda s: s.stat("flink"),
    "size": lambda s: s.size("link"),
    "listdir": lambda s: s.listdir("link"),
    "glob": lambda s: s.glob("link/*"),
    "read": lambda s: s.read_bytes("flink"),
    "read below": lambda s: s.read_bytes("link/secret.txt"),
    "write through file link": lambda s: s.write_bytes("flink", b"pwned"),
    "write below": lambda s: s.write_bytes("link/new.txt", b"pwned"),
    "overwrite below": lambda s: s.write_bytes("link/secret.txt", b"pwned"),
    "append below": lambda s: s.open("link/secret.txt", "ab"),
    "remove": lambda s: s.remove("link/secret.txt"),
    "remove link": lambda s: s.remove("flink"),
    "rmtree": lambda s: s.rmtree("link"),
    "makedirs": lambda s: s.makedirs("link/sub/dir"),
    "mkdir": lambda s: s.mkdir("link/sub"),
    "copyfile from": lambda s: s.copyfile("flink", "copy.txt"),
    "copyfile into": lambda s: s.copyfile("inside.txt", "link/copy.txt"),
    "rename from": lambda s: s.rename("link/secret.txt", "moved.txt"),
    "rename into": lambda s: s.rename("inside.txt", "link/moved.txt"),
}


@covers("path.local-symlink-out")
@pytest.mark.parametrize("operation", OUTSIDE_OPERATIONS)
async def test_symlink_leading_out_of_the_root_is_outside(
    escaping_root: Path, operation: str
) -> None:
    store = LocalStore(str(escaping_root))
    before = on_disk(escaping_root.parent)
    with pytest.raises(artifactio.PathOutsideStoreError) as info:
        await OUTSIDE_OPERATIONS[operation](store)
    assert isinstance(info.value, PermissionError)
    assert str(escaping_root) in str(info.value)
    assert on_disk(escaping_root.parent) == before
    assert (escaping_root.parent / "outside/secret.txt").read_text() == "secret"


@covers("path.local-symlink-out", "walk.links")
async def test_walks_and_globs_never_show_what_lies_outside(escaping_root: Path) -> None:
    store = LocalStore(str(escaping_root))
    with pytest.raises(PermissionError):
        [w async for w in store.walk("link")]
    errors: list[OSError] = []
    walked = [w async for w in store.walk(store.root, onerror=errors.append)]
    assert walked[0][0] == str(escaping_root)
    assert all("secret.txt" not in files for _, _, files in walked)
    assert "link" in walked[0][1]  # listed among the directories, as os.walk lists it
    assert errors == []  # and, like every link, not entered
    assert not any("secret" in p for p in await store.glob("**"))
    assert await store.size(store.root) == len("inside")


@covers("local.tree-links")
async def test_symlinks_inside_the_root_work(store: LocalStore, root: Path) -> None:
    await store.write_bytes("real/data.txt", b"data")
    (root / "alias").symlink_to("real")
    (root / "flink").symlink_to("real/data.txt")
    assert await store.isdir("alias")
    assert await store.listdir("alias") == ["data.txt"]
    assert await store.read_bytes("alias/data.txt") == b"data"
    assert (await store.stat("flink")).size == 4
    await store.write_bytes("alias/new.txt", b"new")
    assert (root / "real/new.txt").read_bytes() == b"new"
    await store.write_bytes("flink", b"through the link")
    assert (root / "flink").is_symlink()
    assert (root / "real/data.txt").read_bytes() == b"through the link"
    async with store.open("flink", "ab") as f:
        await f.write(b"!")
    assert (root / "real/data.txt").read_bytes() == b"through the link!"
    await store.copyfile("alias/new.txt", "alias/copy.txt")
    assert (root / "real/copy.txt").read_bytes() == b"new"
    # Like os.walk, tree listings do not descend into linked directories.
    assert await store.glob("**/*.txt") == [
        f"{root}/real/copy.txt",
        f"{root}/real/data.txt",
        f"{root}/real/new.txt",
    ]
    assert await store.size(store.root) == 2 * len(b"through the link!") + 3 + 3
    await store.remove("flink")
    assert (root / "real/data.txt").exists()
    assert temp_files(root) == set()


@covers("walk.links")
async def test_walk_lists_linked_directories_without_entering_them(
    store: LocalStore, root: Path
) -> None:
    (root / "real").mkdir()
    (root / "real/data.txt").write_bytes(b"data")
    (root / "alias").symlink_to(root / "real")
    (root / "real/loop").symlink_to("..")  # a cycle: followed, it would nest until ELOOP
    errors: list[OSError] = []
    walked = [w async for w in store.walk(store.root, onerror=errors.append)]
    assert walked == [
        (str(root), ["alias", "real"], []),
        (f"{root}/real", ["loop"], ["data.txt"]),
    ]
    assert errors == []
    # Walking a link itself enters it, as os.walk does with a link as top.
    assert [w async for w in store.walk("alias")] == [(f"{root}/alias", ["loop"], ["data.txt"])]


async def test_root_reached_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "via").symlink_to(tmp_path / "real")
    store = LocalStore(str(tmp_path / "via"))
    await store.write_bytes("a/b.txt", b"b")
    (tmp_path / "real/a/up").symlink_to("..")
    assert await store.read_bytes("a/up/a/b.txt") == b"b"
    assert await store.glob("a/*") == [f"{tmp_path}/via/a/b.txt", f"{tmp_path}/via/a/up"]
    (tmp_path / "real/a/out").symlink_to("../..")
    assert await store.exists("a/out/via/a/b.txt")  # out and back in
    with pytest.raises(PermissionError):
        await store.exists("a/out/other")
