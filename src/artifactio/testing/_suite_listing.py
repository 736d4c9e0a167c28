"""Conformance tests for ``glob`` and ``walk``."""

from __future__ import annotations

import glob
import os
from typing import TYPE_CHECKING

import anyio.to_thread

from ._covers import covers
from ._harness import StoreAPI, full_path, make_tree

if TYPE_CHECKING:
    from pathlib import Path

    from .._store import WalkEntry

__all__ = ["ListingTests"]

GLOB_TREE = {
    "a.txt": b"a",
    "b.txt": b"b",
    "c.log": b"c",
    "ab.txt": b"ab",
    ".hidden": b"h",
    ".hdir/x.txt": b"x",
    "d/e.txt": b"e",
    "d/.h.txt": b"h",
    "d/f/g.txt": b"g",
    "d/f/h.log": b"h",
    "d/empty": None,
    "d/.hd/y.txt": b"y",
}

WALK_TREE = {
    "w/a.txt": b"a",
    "w/.hidden": b"h",
    "w/b/c.txt": b"c",
    "w/b/d/e.txt": b"e",
    "w/f": None,
}


GLOB_PATTERNS = [
    *("*", "*.txt", "?.txt", "??.txt", "[ab].txt", "[!a].txt", "[a-c].*", "a*", "*.nothing"),
    *("d", "d/f", "d/f/g.txt", "missing", "missing/*", "a.txt/*", "a.txt/**", "d/*", "*/*"),
    *("*/*/*", "d/*/*.txt", "d/*/*", "**", "**/*", "**/*.txt", "**/*.log", "d/**", "d/**/*"),
    *("d/**/*.txt", "**/f", "**/f/*", "**/f/**", "d/f/**", "missing/**", "**/missing"),
    *(".*", ".h*", "d/.*", "**/.*", "**/.h.txt", ".hdir/*", ".hdir/**", "d/.hd/**", ".hidden"),
    *("[.]hidden", "*/", "**/", "d/**/", "d/*/", "d/f/", "d/", "d/f/g.txt/", "a.txt/"),
    *("*.txt/", "**/empty", "**/empty/", "d/empty/**", "d/empty/**/", ".hdir/", "*/*/"),
]


def _make_local_tree(top: str, tree: dict[str, bytes | None]) -> None:
    for rel, content in tree.items():
        path = os.path.join(top, rel)
        if content is None:
            os.makedirs(path, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content)


def _glob_glob(top: str, pattern: str) -> list[str]:
    """``glob.glob`` of ``pattern`` below ``top``, relative to ``top`` (``""`` for ``top``).

    Left out: ``glob.glob`` answers ``f/**`` with ``f/`` when ``f`` is a file, a
    directory spelling of something that is no directory; ``glob`` gives nothing.
    """
    found = glob.glob(f"{top}/{pattern}", recursive=True)
    return [p[len(top) + 1 :] for p in found if not p.endswith("/") or os.path.isdir(p)]


class ListingTests:
    """docs/semantics.md, "Listing": ``glob`` and ``walk``."""

    # ------------------------------------------------------------------ glob

    async def _glob(self, store: StoreAPI, pattern: str) -> list[str]:
        prefix = store.root.rstrip("/") + "/"
        found = await store.glob(pattern)
        assert found == sorted(found), f"glob({pattern!r}) is not sorted"
        assert found == await store.glob(prefix + pattern), "full-path pattern differs"
        return [p[len(prefix) :] if p != store.root else "" for p in found]

    @covers("glob.result", "glob.wildcards", "glob.literal", "glob.no-match")
    async def test_glob_within_one_component(self, store: StoreAPI) -> None:
        await make_tree(store, GLOB_TREE)
        for pattern, expected in [
            ("*.txt", ["a.txt", "ab.txt", "b.txt"]),
            ("*", ["a.txt", "ab.txt", "b.txt", "c.log", "d"]),
            ("?.txt", ["a.txt", "b.txt"]),
            ("??.txt", ["ab.txt"]),
            ("[ab].txt", ["a.txt", "b.txt"]),
            ("[!a].txt", ["b.txt"]),
            ("[a-c].*", ["a.txt", "b.txt", "c.log"]),
            ("a*", ["a.txt", "ab.txt"]),
            ("*.nothing", []),
            ("d/*", ["d/e.txt", "d/empty", "d/f"]),
            ("d/*.txt", ["d/e.txt"]),
            ("d/*/*", ["d/f/g.txt", "d/f/h.log"]),
            ("*/*.txt", ["d/e.txt"]),
            ("*/*/*.log", ["d/f/h.log"]),
            ("d/f/g.txt", ["d/f/g.txt"]),
            ("d/f", ["d/f"]),
            ("d", ["d"]),
            ("missing", []),
            ("missing/*", []),
            ("a.txt/*", []),
        ]:
            assert await self._glob(store, pattern) == expected, pattern

    @covers("glob.recursive", "glob.self", "glob.no-match")
    async def test_glob_across_components(self, store: StoreAPI) -> None:
        await make_tree(store, GLOB_TREE)
        for pattern, expected in [
            ("**/*.txt", ["a.txt", "ab.txt", "b.txt", "d/e.txt", "d/f/g.txt"]),
            ("**/*.log", ["c.log", "d/f/h.log"]),
            ("d/**/*.txt", ["d/e.txt", "d/f/g.txt"]),
            ("d/**", ["d", "d/e.txt", "d/empty", "d/f", "d/f/g.txt", "d/f/h.log"]),
            ("**/f", ["d/f"]),
            ("**/f/*", ["d/f/g.txt", "d/f/h.log"]),
            ("d/**/g.txt", ["d/f/g.txt"]),
            ("**/missing", []),
            ("missing/**", []),
        ]:
            assert await self._glob(store, pattern) == expected, pattern

    @covers("glob.dirs-only", "glob.literal")
    async def test_glob_trailing_slash_matches_directories_only(self, store: StoreAPI) -> None:
        await make_tree(store, GLOB_TREE)
        root = store.root.rstrip("/")
        for pattern, expected in [
            ("*/", ["d/"]),
            ("d/*/", ["d/empty/", "d/f/"]),
            ("d/**/", ["d/", "d/empty/", "d/f/"]),
            ("**/f/", ["d/f/"]),
            ("d/f/", ["d/f/"]),
            ("d/", ["d/"]),
            ("d//", ["d/"]),
            ("./d/f/../f/", ["d/f/"]),
            (".*/", [".hdir/"]),
            ("a.txt/", []),
            ("d/f/g.txt/", []),
            ("*.txt/", []),
            ("d/f/*/", []),
            ("missing/", []),
            ("missing/*/", []),
            ("a.txt/**", []),
            ("a.txt/**/", []),
        ]:
            for form in (pattern, f"{root}/{pattern}"):
                found = await store.glob(form)
                assert found == [f"{root}/{rel}" for rel in expected], form
                assert found == sorted(found), form
        # the root itself, in every spelling that ends in "/"
        for form in ("./", f"{root}/", "d/../"):
            assert await store.glob(form) == [f"{root}/"], form
        assert (await store.glob("**/"))[:2] == [f"{root}/", f"{root}/d/"]

    @covers(
        "glob.result",
        "glob.wildcards",
        "glob.recursive",
        "glob.hidden",
        "glob.self",
        "glob.dirs-only",
        "glob.literal",
        "glob.no-match",
    )
    async def test_glob_agrees_with_glob_glob(self, store: StoreAPI, tmp_path: Path) -> None:
        """The same tree on local disk, matched by ``glob.glob(recursive=True)``.

        The documented differences: without a trailing ``/`` in the pattern,
        ``d/**``'s match of ``d`` itself is spelled ``d`` (``glob.glob``: ``d/``),
        and ``f/**`` of a file ``f`` matches nothing (``glob.glob``: ``f/``).
        """
        await make_tree(store, GLOB_TREE)
        twin = str(tmp_path / "twin")
        await anyio.to_thread.run_sync(_make_local_tree, twin, GLOB_TREE)
        root = store.root.rstrip("/")
        for pattern in GLOB_PATTERNS:
            found = await store.glob(pattern)
            reference = await anyio.to_thread.run_sync(_glob_glob, twin, pattern)
            if pattern.endswith("/"):
                assert all(p.endswith("/") for p in found), pattern
            else:
                reference = [p.rstrip("/") for p in reference]
                assert not any(p.endswith("/") for p in found), pattern
            relative = [
                "" if p.rstrip("/") == root else p[len(root) + 1 :].rstrip("/") for p in found
            ]
            assert found == sorted(found), pattern
            assert sorted(relative) == sorted(r.rstrip("/") for r in reference), pattern

    @covers("glob.hidden")
    async def test_glob_hidden_names(self, store: StoreAPI) -> None:
        await make_tree(store, GLOB_TREE)
        for pattern, expected in [
            (".*", [".hdir", ".hidden"]),
            (".h*", [".hdir", ".hidden"]),
            (".hdir/*", [".hdir/x.txt"]),
            ("*/x.txt", []),
            ("d/.*", ["d/.h.txt", "d/.hd"]),
            ("d/.hd/*", ["d/.hd/y.txt"]),
            ("d/*/y.txt", []),
            ("**/y.txt", []),
            ("**/.h.txt", ["d/.h.txt"]),
            (".hidden", [".hidden"]),
        ]:
            assert await self._glob(store, pattern) == expected, pattern

    @covers("glob.result", "path.returned-str")
    async def test_glob_returns_str_for_bytes_pattern(self, store: StoreAPI) -> None:
        await make_tree(store, GLOB_TREE)
        found = await store.glob(b"d/*.txt")
        assert found == [full_path(store, "d/e.txt")]
        assert all(type(p) is str for p in found)

    # ------------------------------------------------------------------ walk

    async def _walk(self, store: StoreAPI, top: str, topdown: bool = True) -> list[WalkEntry]:
        return [entry async for entry in store.walk(top, topdown=topdown)]

    def _expected_walk(self, store: StoreAPI) -> list[WalkEntry]:
        return [
            (full_path(store, "w"), ["b", "f"], [".hidden", "a.txt"]),
            (full_path(store, "w/b"), ["d"], ["c.txt"]),
            (full_path(store, "w/b/d"), [], ["e.txt"]),
            (full_path(store, "w/f"), [], []),
        ]

    @covers("walk.entries")
    async def test_walk_topdown(self, store: StoreAPI) -> None:
        await make_tree(store, WALK_TREE)
        expected = self._expected_walk(store)
        assert await self._walk(store, "w") == expected
        assert await self._walk(store, full_path(store, "w")) == expected
        assert await self._walk(store, "w/") == expected
        assert await self._walk(store, ".") == [(store.root, ["w"], []), *expected]
        assert await self._walk(store, store.root) == [(store.root, ["w"], []), *expected]

    @covers("walk.bottom-up")
    async def test_walk_bottom_up(self, store: StoreAPI) -> None:
        await make_tree(store, WALK_TREE)
        w, b, d, f = self._expected_walk(store)
        assert await self._walk(store, "w", topdown=False) == [d, b, f, w]

    @covers("walk.prune")
    async def test_walk_prunes_when_dirnames_is_edited(self, store: StoreAPI) -> None:
        await make_tree(store, WALK_TREE)
        seen: list[str] = []
        async for dirpath, dirnames, _ in store.walk("w"):
            seen.append(dirpath)
            if "b" in dirnames:
                dirnames.remove("b")
        assert seen == [full_path(store, "w"), full_path(store, "w/f")]
        seen.clear()
        async for dirpath, dirnames, _ in store.walk("w"):
            seen.append(dirpath)
            dirnames[:] = []
        assert seen == [full_path(store, "w")]

    @covers("walk.lazy")
    async def test_walk_is_lazy(self, store: StoreAPI) -> None:
        # Directories are listed as the walk reaches them, not all up front.
        await make_tree(store, WALK_TREE)
        walk = store.walk("w")
        first = await walk.__anext__()
        assert first[0] == full_path(store, "w")
        await store.write_bytes("w/b/d/late.txt", b"late")
        await store.makedirs("w/f/later")
        rest = [entry async for entry in walk]
        assert rest == [
            (full_path(store, "w/b"), ["d"], ["c.txt"]),
            (full_path(store, "w/b/d"), [], ["e.txt", "late.txt"]),
            (full_path(store, "w/f"), ["later"], []),
            (full_path(store, "w/f/later"), [], []),
        ]

    @covers("walk.missing-top")
    async def test_walk_missing_top(self, store: StoreAPI) -> None:
        await make_tree(store, WALK_TREE)
        for top in ("missing", "w/missing", "missing/deeper"):
            errors: list[OSError] = []
            assert [entry async for entry in store.walk(top, onerror=errors.append)] == []
            assert len(errors) == 1, top
            assert isinstance(errors[0], FileNotFoundError), top
            assert await self._walk(store, top) == []
            assert await self._walk(store, top, topdown=False) == []

    @covers("walk.file-top")
    async def test_walk_file_top(self, store: StoreAPI) -> None:
        await make_tree(store, WALK_TREE)
        errors: list[OSError] = []
        assert [entry async for entry in store.walk("w/a.txt", onerror=errors.append)] == []
        assert len(errors) == 1
        assert isinstance(errors[0], NotADirectoryError)
        assert await self._walk(store, "w/a.txt") == []

    @covers("walk.entries")
    async def test_walk_empty_directory(self, store: StoreAPI) -> None:
        await store.makedirs("only")
        assert await self._walk(store, "only") == [(full_path(store, "only"), [], [])]
        assert await self._walk(store, ".") == [
            (store.root, ["only"], []),
            (full_path(store, "only"), [], []),
        ]
