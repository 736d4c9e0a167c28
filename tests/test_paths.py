"""Path rules: pure functions, no store needed."""

from __future__ import annotations

import os
import pathlib

import pytest

from artifactio import InvalidPathError, PathOutsideStoreError
from artifactio._paths import (
    StoreRoot,
    coerce_path,
    glob_matcher,
    is_directory_pattern,
    split_scheme,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("s3://b/k", "s3://b/k"),
        (b"/tmp/x", "/tmp/x"),
        (pathlib.PurePosixPath("/tmp/y"), "/tmp/y"),
        ("/caf\u00e9", "/caf\u00e9"),
    ],
)
def test_coerce_accepts_str_bytes_pathlike(value: object, expected: str) -> None:
    assert coerce_path(value) == expected


@pytest.mark.parametrize("value", ["", b"", "a\x00b", b"\xff\xfe/x", "bad\udcff"])
def test_coerce_rejects_invalid(value: object) -> None:
    with pytest.raises(InvalidPathError) as info:
        coerce_path(value, "open")
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith("open: ")


def test_coerce_rejects_non_paths() -> None:
    with pytest.raises(TypeError, match=r"expected str, bytes or os\.PathLike"):
        coerce_path(42)


def test_split_scheme() -> None:
    assert split_scheme("S3://bucket/key") == ("s3", "bucket/key")
    assert split_scheme("/abs/path") == ("", "/abs/path")
    assert split_scheme("relative/x") == ("", "relative/x")


class TestObjectRoot:
    root = StoreRoot.parse("s3://bucket/pre/fix/")

    def test_root_spelling(self) -> None:
        assert self.root.uri == "s3://bucket/pre/fix"
        assert self.root.full("a/b") == "s3://bucket/pre/fix/a/b"

    @pytest.mark.parametrize(
        ("path", "key"),
        [
            ("s3://bucket/pre/fix", ""),
            ("s3://bucket/pre/fix/", ""),
            ("s3://bucket/pre/fix/a//b/./c/", "a/b/c"),
            ("s3://bucket/pre/fix/a/../b", "b"),
            ("a/b", "a/b"),
            ("./a/../b/", "b"),
            (".", ""),
        ],
    )
    def test_key(self, path: str, key: str) -> None:
        assert self.root.key(path) == key

    @pytest.mark.parametrize(
        "path",
        [
            "s3://bucket/pre/fixed/x",  # compared by components, not as strings
            "s3://bucket/pre",
            "s3://bucket/pre/fix/../x",
            "s3://other/pre/fix/x",
            "../x",
            "a/../../x",
            "gs://bucket/pre/fix/x",
            "memory://bucket/pre/fix/x",
            "/a/b",  # a local path, not a key below the root
            "/bucket/pre/fix/x",
        ],
    )
    def test_outside(self, path: str) -> None:
        with pytest.raises(PathOutsideStoreError) as info:
            self.root.key(path, "exists")
        assert isinstance(info.value, PermissionError)
        assert info.value.filename == path
        assert "exists: " in str(info.value)


class TestLocalRoot:
    def test_plain_and_uri_spellings(self) -> None:
        plain = StoreRoot.parse("/data/a")
        uri = StoreRoot.parse("file:///data/a")
        for root in (plain, uri):
            assert root.key("/data/a/x") == "x"
            assert root.key("file:///data/a/x/") == "x"
            assert root.key("y/z") == "y/z"
        assert plain.full("x") == "/data/a/x"
        assert uri.full("x") == "file:///data/a/x"
        assert plain.os_path("x/y") == "/data/a/x/y"

    def test_bounds_by_components(self) -> None:
        root = StoreRoot.parse("/data/a")
        for path in ("/data/ab", "/data", "/data/a/../b", "/", "../x"):
            with pytest.raises(PathOutsideStoreError):
                root.key(path)

    def test_filesystem_root(self) -> None:
        root = StoreRoot.parse("/")
        assert root.key("/etc/x") == "etc/x"
        assert root.key("/..") == ""
        assert root.full("etc") == "/etc"
        assert root.uri == "/"

    def test_relative_root_rejected(self) -> None:
        with pytest.raises(InvalidPathError, match="absolute"):
            StoreRoot.parse("relative/dir")


@pytest.mark.parametrize(
    ("pattern", "rel", "expected"),
    [
        ("*.txt", "a.txt", True),
        ("*.txt", "d/a.txt", False),
        ("*.txt", ".hidden.txt", False),
        (".*.txt", ".hidden.txt", True),
        ("?.bin", "a.bin", True),
        ("[ab].bin", "c.bin", False),
        ("**/*.txt", "a.txt", True),
        ("**/*.txt", "x/y/a.txt", True),
        ("**/*.txt", ".x/a.txt", False),
        ("**", "x/y", True),
        ("x/**/z", "x/z", True),
        ("x/**/z", "x/1/2/z", True),
        ("x/*/z", "x/1/2/z", False),
    ],
)
def test_glob_matching(pattern: str, rel: str, expected: bool) -> None:
    assert glob_matcher(pattern).matches(rel) is expected


def test_glob_literal_base() -> None:
    m = glob_matcher("runs/1/*/model.*")
    assert m.base == "runs/1"
    assert m.parts == ("*", "model.*")
    assert m.may_descend("a")
    assert not m.may_descend("a/b")
    assert glob_matcher("a/**/**/b").parts == ("**", "b")


@pytest.mark.parametrize(
    ("pattern", "dirs_only"),
    [
        ("d/", True),
        ("*/", True),
        ("d/**/", True),
        ("d//", True),
        ("./", True),
        ("s3://b/p/", True),
        (b"d/", True),
        ("d", False),
        ("d/**", False),
        ("d/.", False),
        # pathlib drops a trailing slash itself: such a pattern reaches glob without one
        (pathlib.PurePosixPath("d/"), False),
    ],
)
def test_a_pattern_ending_in_a_slash_asks_for_directories(pattern: object, dirs_only: bool) -> None:
    """Patterns are not paths: the trailing slash that normalising drops from a path is kept."""
    assert is_directory_pattern(pattern) is dirs_only


def test_glob_matcher_keeps_the_directories_only_flag() -> None:
    root = StoreRoot.parse("s3://b/p")
    key = root.key("d/*/")  # the key is normalised like any path...
    assert key == "d/*"
    matcher = glob_matcher(key, dirs_only=is_directory_pattern("d/*/"))  # ...the flag is not
    assert matcher.dirs_only
    assert (matcher.base, matcher.parts) == ("d", ("*",))
    assert not glob_matcher(key).dirs_only


def test_pathlike_bytes() -> None:
    class P(os.PathLike[bytes]):
        def __fspath__(self) -> bytes:
            return b"/tmp/q"

    assert coerce_path(P()) == "/tmp/q"


@pytest.mark.parametrize("root_uri", ["/data/a", "/", "file:///data/a", "s3://b/p", "memory://"])
def test_fast_path_agrees_with_full_rules(root_uri: str) -> None:
    """``key()`` takes a shortcut for str paths that are already normal; bytes never do."""
    root = StoreRoot.parse(root_uri)
    base = root.uri.rstrip("/")
    names = ["x", "x/y", ".h", "x/.h", "x/..", "x/../y", "./x", "x//y", "x/", "caf\u00e9", "x/./y"]
    names += ["/x", "//x"]
    candidates = [*names, *(f"{base}/{n}" for n in names), f"{base}/", base]
    for path in candidates:
        try:
            expected: object = root.key(path.encode())
        except (InvalidPathError, PathOutsideStoreError) as exc:
            expected = type(exc)
        try:
            got: object = root.key(path)
        except (InvalidPathError, PathOutsideStoreError) as exc:
            got = type(exc)
        assert got == expected, path
