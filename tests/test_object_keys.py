"""Names with characters XML 1.0 forbids (``\\x01``, ``\\x0c``...), on S3 and on GCS.

S3 speaks XML: a store refuses such paths, yet trees that other tools filled with
such keys still list, move and go (a batch delete's XML body cannot carry them,
so those keys are deleted one by one). GCS's JSON API has no such limit: the
names work like any other. See ``object.s3-xml-names`` and
``object.gcs-control-names`` in docs/semantics.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import artifactio
from _s3_fixtures import BUCKET, key_prefix, keys_below
from artifactio.backends.gcs import GCSStore
from artifactio.backends.s3 import S3Client, S3Store
from artifactio.testing import covers
from artifactio.testing._harness import make_tree
from artifactio.testing._suite_paths import BASE_TREE, assert_every_operation_rejects

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from artifactio.embedded import FakeGCSServer

XML_FORBIDS = ["\x01", "\x08", "\x0b", "\x0c", "\x0e", "\x1f", "\ufffe", "\uffff"]
"""A sample of what XML 1.0 forbids (NUL aside: no backend takes it)."""


# ---------------------------------------------------------------------- S3


@pytest.mark.s3
@covers("object.s3-xml-names")
@pytest.mark.parametrize("char", XML_FORBIDS, ids=[f"U+{ord(c):04X}" for c in XML_FORBIDS])
async def test_s3_refuses_paths_xml_cannot_hold(s3_store: S3Store, char: str) -> None:
    await make_tree(s3_store, BASE_TREE)
    for bad in (f"ok/a{char}b.txt", f"ok/d{char}/f.txt", f"{s3_store.root}/ok/{char}"):
        await assert_every_operation_rejects(s3_store, bad, artifactio.InvalidPathError)
    with pytest.raises(ValueError, match="XML"):
        await s3_store.write_bytes(f"ok/a{char}b.txt", b"x")


@pytest.mark.s3
@covers("object.s3-xml-names")
def test_s3_facade_refuses_them_too(s3_root: str, s3_options: dict[str, Any]) -> None:
    with artifactio.ArtifactStore(s3_root, **s3_options) as store:
        with pytest.raises(artifactio.InvalidPathError, match="XML"):
            store.write_bytes("a\x01b.txt", b"x")
        assert store.listdir(".") == []


OTHER_TOOLS_KEYS = {
    "tree/a\x01b.txt": b"1",
    "tree/form\x0cfeed": b"22",
    "tree/sub\x1f/c.txt": b"333",
    "tree/sub\x1f/nested/\ufffe": b"4444",
    "tree/carriage\rreturn": b"55555",  # XML allows it, but reads it back as \n
    "tree/plain.txt": b"666666",
    "tree/more/plain.txt": b"7777777",
}


@pytest.mark.s3
@covers("object.s3-xml-names")
async def test_s3_trees_other_tools_filled_list_move_and_go(
    raw_s3: Any, s3_store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = key_prefix(s3_store.root)
    for key, data in OTHER_TOOLS_KEYS.items():
        raw_s3.put_object(Bucket=BUCKET, Key=prefix + key, Body=data)
    assert await s3_store.listdir("tree") == sorted(
        ["a\x01b.txt", "form\x0cfeed", "sub\x1f", "carriage\rreturn", "plain.txt", "more"]
    )
    walked = [(top, dirs, files) async for top, dirs, files in s3_store.walk("tree")]
    assert walked[1] == (f"{s3_store.root}/tree/more", [], ["plain.txt"])
    assert walked[2] == (f"{s3_store.root}/tree/sub\x1f", ["nested"], ["c.txt"])
    assert walked[3] == (f"{s3_store.root}/tree/sub\x1f/nested", [], ["\ufffe"])
    assert len(await s3_store.glob("tree/**")) == len(OTHER_TOOLS_KEYS) + 4  # + dirs, tree
    assert await s3_store.size("tree") == sum(len(d) for d in OTHER_TOOLS_KEYS.values())

    monkeypatch.setattr(S3Client, "delete_batch", 3)  # several batches, each with such keys
    await s3_store.rename("tree", "moved")
    moved = sorted("moved/" + key.removeprefix("tree/") for key in OTHER_TOOLS_KEYS)
    assert sorted(keys_below(raw_s3, s3_store.root)) == moved
    assert await s3_store.read_bytes("moved/more/plain.txt") == b"7777777"
    await s3_store.rmtree("moved")
    assert keys_below(raw_s3, s3_store.root) == []
    assert not await s3_store.exists("moved")


# --------------------------------------------------------------------- GCS


@pytest.fixture
async def gcs_store(gcs_root: str, fake_gcs_server: FakeGCSServer) -> AsyncIterator[GCSStore]:
    async with GCSStore(gcs_root, **fake_gcs_server.store_options()) as s:
        yield s


@pytest.mark.gcs
@covers("object.gcs-control-names")
@pytest.mark.parametrize("char", XML_FORBIDS, ids=[f"U+{ord(c):04X}" for c in XML_FORBIDS])
async def test_gcs_names_xml_cannot_hold_work_everywhere(gcs_store: GCSStore, char: str) -> None:
    store = gcs_store
    name = f"a{char}b.txt"
    await store.write_bytes(f"d/{name}", b"data")
    assert await store.read_bytes(f"d/{name}") == b"data"
    assert await store.exists(f"d/{name}")
    assert (await store.stat(f"d/{name}")).size == 4
    await store.makedirs(f"d/sub{char}/empty")
    await store.copyfile(f"d/{name}", f"d/sub{char}/{name}")
    assert await store.listdir("d") == sorted([name, f"sub{char}"])
    assert await store.glob(f"d/sub{char}/*") == [
        f"{store.root}/d/sub{char}/{name}",
        f"{store.root}/d/sub{char}/empty",
    ]
    walked = [entry async for entry in store.walk("d")]
    assert walked[1] == (f"{store.root}/d/sub{char}", ["empty"], [name])
    assert await store.size("d") == 8
    await store.rename(f"d/{name}", f"d/moved{char}")
    await store.remove(f"d/moved{char}")
    await store.rename("d", f"e{char}")
    assert await store.listdir(".") == [f"e{char}"]
    assert await store.isdir(f"e{char}/sub{char}/empty")
    await store.rmtree(f"e{char}")
    assert await store.listdir(".") == []
