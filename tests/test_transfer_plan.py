"""Bulk transfers, the pure parts: planning, filters, ranges, reports, progress, checksums, retries.

Nothing here touches a store: the planner is fed listings made up in the test.
"""

from __future__ import annotations

import errno
import json
import pickle
import random
from typing import TYPE_CHECKING

import pytest

import artifactio
from artifactio import DirEntry, IntegrityError, StoreConnectionError
from artifactio.transfer import (
    Action,
    KeyRange,
    LevelPlanner,
    PathFilter,
    RetryPolicy,
    TransferPlan,
    TransferProgress,
    TransferReport,
    is_transient,
    split_points,
)
from artifactio.transfer._checksums import (
    Digest,
    checksums_match,
    computable,
    decode,
    streaming_algorithms,
)
from artifactio.transfer._progress import ItemProgress, Tally
from artifactio.transfer._retry import RetryBudget, Retrying

if TYPE_CHECKING:
    from collections.abc import Iterator


def f(name: str, size: int = 10, mtime: float | None = 100.0) -> DirEntry:
    return DirEntry(name, False, size, mtime)


def d(name: str, *, link: bool = False) -> DirEntry:
    return DirEntry(name, True, is_link=link)


COPY = TransferPlan.for_copy(recursive=True)
SYNC = TransferPlan.for_sync()


# ------------------------------------------------------------------ decide


@pytest.mark.parametrize(
    ("plan", "dst", "kind", "reason"),
    [
        (COPY, None, "transfer", "new"),
        (COPY, f("x", 10), "transfer", "overwrite"),
        (TransferPlan.for_copy(overwrite=False), f("x", 99), "skip", "exists"),
        (SYNC, None, "transfer", "new"),
        (SYNC, f("x", 11), "transfer", "size differs"),
        (SYNC, f("x", 10, 100.0), "skip", "same size and mtime"),
        (SYNC, f("x", 10, 200.0), "skip", "same size and mtime"),  # destination newer
        (SYNC, f("x", 10, 99.5), "skip", "same size and mtime"),  # within the 1 s window
        (SYNC, f("x", 10, 98.0), "transfer", "source newer"),
        (SYNC, f("x", 10, None), "skip", "same size (no modification time)"),
        (TransferPlan.for_sync(compare="size"), f("x", 10, 1.0), "skip", "same size"),
        (TransferPlan.for_sync(compare="size"), f("x", 12, 1.0), "transfer", "size differs"),
        (TransferPlan.for_sync(compare="checksum"), f("x", 10, 500.0), "check", "same size"),
        (TransferPlan.for_sync(compare="checksum"), f("x", 9), "transfer", "size differs"),
        (SYNC, d("x"), "conflict", "a file in the source, a directory at the destination"),
    ],
)
def test_decide(plan: TransferPlan, dst: DirEntry | None, kind: str, reason: str) -> None:
    action = plan.decide("a/x", f("x", 10, 100.0), dst)
    assert (action.kind, action.reason, action.path, action.size) == (kind, reason, "a/x", 10)


# ------------------------------------------------------------------ one level


def test_level_planner_plans_each_source_name_once_and_descends() -> None:
    planner = LevelPlanner(SYNC, "top", {"a": f("a", 10), "sub": d("sub")})
    first = planner.source_page([f("a", 10), f("b", 3), d("sub"), d("new")])
    again = planner.source_page([f("a", 10), f("c", 1)])  # a listing retried from its start
    assert [(a.kind, a.path, a.in_dst) for a in first] == [
        ("skip", "top/a", False),
        ("transfer", "top/b", False),
        ("descend", "top/sub", True),
        ("descend", "top/new", False),
    ]
    assert [(a.kind, a.path) for a in again] == [("transfer", "top/c")]
    assert planner.finish() == []  # no delete: what only the destination holds stays


def test_level_planner_conflicts_and_links() -> None:
    planner = LevelPlanner(COPY, "", {"f": d("f"), "g": f("g")})
    actions = planner.source_page([f("f"), d("g"), d("link", link=True)])
    assert [(a.kind, a.path) for a in actions] == [("conflict", "f"), ("conflict", "g")]


def test_level_planner_deletes_what_only_the_destination_holds() -> None:
    destination = {"keep": f("keep"), "gone": f("gone", 7), "olddir": d("olddir")}
    planner = LevelPlanner(TransferPlan.for_sync(delete=True), "p", destination)
    planner.source_page([f("keep")])
    assert planner.finish() == [
        Action("delete", "p/gone", 7),
        Action("delete", "p/olddir", is_dir=True),
    ]


def test_level_planner_deletes_only_what_the_filters_cover() -> None:
    plan = TransferPlan.for_sync(delete=True, exclude=["**/*.log"])
    destination = {"a.log": f("a.log"), "b.bin": f("b.bin"), "olddir": d("olddir")}
    planner = LevelPlanner(plan, "", destination)
    planner.source_page([])
    assert planner.finish() == [
        Action("delete", "b.bin", 10),
        # a filter applies: the directory is looked into, not removed whole
        Action("descend", "olddir", is_dir=True, in_src=False, in_dst=True),
    ]


def test_level_planner_deletes_only_inside_its_key_range() -> None:
    plan = TransferPlan.for_sync(delete=True).restrict(KeyRange("b", "m"))
    destination = {"a": f("a"), "c": f("c"), "d": d("d"), "m": d("m"), "z": f("z")}
    planner = LevelPlanner(plan, "", destination)
    planner.source_page([])
    assert planner.finish() == [Action("delete", "c", 10), Action("delete", "d", is_dir=True)]


# ------------------------------------------------------------------ filters


def test_filter_patterns_cover_directories_and_their_contents() -> None:
    flt = PathFilter(exclude=["cache/", "**/*.tmp"])
    assert flt.wants_file("model.bin")
    assert not flt.wants_file("cache/x.bin")
    assert not flt.wants_file("a/b/c.tmp")
    assert not flt.wants_file("c.tmp")  # ** takes zero directories too
    assert not flt.may_descend("cache")  # not even listed
    assert flt.may_descend("a")


def test_filter_include_takes_matching_files_and_whole_directories() -> None:
    flt = PathFilter(include=["models", "*.json"], exclude=["models/old"])
    assert flt.wants_file("models/a/w.bin")
    assert flt.wants_file("config.json")
    assert not flt.wants_file("sub/config.json")  # * stays within one name
    assert not flt.wants_file("data/x.bin")
    assert not flt.wants_file("models/old/w.bin")
    assert flt.may_descend("models")
    assert not flt.may_descend("data")
    assert not flt.may_descend("models/old")


def test_filter_follows_globs_rule_for_dot_names() -> None:
    flt = PathFilter(include=["**/*.txt"])
    assert flt.wants_file("a/b.txt")
    assert not flt.wants_file(".hidden.txt")
    assert PathFilter(include=["**/.*"]).wants_file("a/.hidden.txt")


@pytest.mark.parametrize("pattern", ["", "/", "a/../b"])
def test_filter_rejects_bad_patterns(pattern: str) -> None:
    with pytest.raises(ValueError, match="filter"):
        TransferPlan.for_copy(include=[pattern])


# ------------------------------------------------------------------ key ranges


def test_key_range_prefix_and_pruning() -> None:
    below = KeyRange.prefix("a/b")
    assert below.contains("a/b/c")
    assert below.contains("a/b/c/d")
    assert not below.contains("a/b")
    assert not below.contains("a/bc")
    assert not below.contains("a/b0")
    assert below.may_hold_below("a")
    assert below.may_hold_below("a/b")
    assert not below.may_hold_below("a/c")
    assert not below.may_hold_below("b")
    assert KeyRange("m", None).may_hold_below("a") is False
    assert KeyRange("a/x", "b").may_hold_below("a") is True
    assert KeyRange("a/", "b").holds_all_below("a")
    assert not KeyRange("a/x", "b").holds_all_below("a")
    with pytest.raises(ValueError, match="after"):
        KeyRange("b", "a")


def test_key_range_split_covers_without_overlap() -> None:
    pieces = KeyRange().split(["m", "c", "m", "x"])
    assert pieces == [KeyRange(None, "c"), KeyRange("c", "m"), KeyRange("m", "x"), KeyRange("x")]
    names = ["", "a", "c", "c/d", "lz", "m", "q", "x", "zz"]
    for name in names:
        assert sum(p.contains(name) for p in pieces) == 1
    assert KeyRange("c", "m").split(["a", "d", "z"]) == [KeyRange("c", "d"), KeyRange("d", "m")]


def test_split_points_balances_counts() -> None:
    names = [f"n{i:03d}" for i in range(100)]
    cuts = split_points(names[::-1], 4)
    assert cuts == ["n025", "n050", "n075"]
    assert split_points(["a"], 4) == []
    assert split_points(["a", "b"], 8) == ["b"]
    with pytest.raises(ValueError, match="at least 1"):
        split_points(names, 0)


# A made-up tree, planned level by level as the engine does: the shards' actions are the whole's.
SOURCE: dict[str, object] = {
    "a": {"x.bin": 5, "y.bin": 6, "deep": {"z.bin": 7}},
    "b.txt": 3,
    "c": {"w.bin": 1},
    "m": {"n": {"o.bin": 2}},
    "q.bin": 4,
}
DEST: dict[str, object] = {"a": {"x.bin": 5, "old.bin": 9}, "gone": {"g.bin": 1}, "r.bin": 2}


def _entries(tree: dict[str, object]) -> list[DirEntry]:
    return [d(k) if isinstance(v, dict) else f(k, int(str(v)), 1.0) for k, v in tree.items()]


def _plan_tree(plan: TransferPlan) -> Iterator[Action]:
    def sub(tree: dict[str, object] | None, rel: str) -> dict[str, object] | None:
        for part in rel.split("/") if rel else []:
            found = (tree or {}).get(part)
            tree = found if isinstance(found, dict) else None
        return tree

    stack = [Action("descend", "", is_dir=True, in_dst=True)]
    while stack:
        level = stack.pop()
        dst = sub(DEST, level.path) or {}
        planner = LevelPlanner(plan, level.path, {e.name: e for e in _entries(dst)})
        actions = planner.source_page(_entries(sub(SOURCE, level.path) or {}))
        actions += planner.finish()
        for action in actions:
            if action.kind == "descend":
                stack.append(action)
            else:
                yield action


@pytest.mark.parametrize("boundaries", [["b"], ["a/deep", "c", "q.bin"], ["0", "zz"]])
def test_shards_plan_exactly_what_the_whole_plans(boundaries: list[str]) -> None:
    plan = TransferPlan.for_sync(delete=True)
    whole = sorted(_plan_tree(plan), key=lambda a: a.path)
    pieces = plan.shard(boundaries)
    assert len(pieces) == len(boundaries) + 1
    sharded = sorted((a for p in pieces for a in _plan_tree(p)), key=lambda a: a.path)
    assert [(a.kind, a.path) for a in sharded] == [(a.kind, a.path) for a in whole]
    assert {(a.kind, a.path) for a in whole} == {
        ("skip", "a/x.bin"),
        ("transfer", "a/y.bin"),
        ("transfer", "a/deep/z.bin"),
        ("delete", "a/old.bin"),
        ("transfer", "b.txt"),
        ("transfer", "c/w.bin"),
        ("delete", "gone"),
        ("transfer", "m/n/o.bin"),
        ("transfer", "q.bin"),
        ("delete", "r.bin"),
    }


def test_plan_checks_its_arguments_and_pickles() -> None:
    with pytest.raises(ValueError, match="compare"):
        TransferPlan.for_sync(compare="mtime")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delete"):
        TransferPlan("copy", delete=True)
    with pytest.raises(ValueError, match="concurrency"):
        TransferPlan.for_copy(concurrency=0)
    with pytest.raises(ValueError, match="retries"):
        TransferPlan.for_copy(retries=-1)
    one = TransferPlan("copy", include="*.bin")  # type: ignore[arg-type]
    assert one.include == ("*.bin",)
    assert TransferPlan.for_copy(include="*.bin", exclude="x").exclude == ("x",)  # not characters
    assert TransferPlan.for_sync(include="*.bin").include == ("*.bin",)
    piece = TransferPlan.for_sync(exclude=["x"]).shard(["k"])[1]
    assert pickle.loads(pickle.dumps(piece)) == piece
    assert piece.restrict(KeyRange("a", "p")).key_range == KeyRange("k", "p")


# ------------------------------------------------------------------ reports


def test_report_json_has_exactly_the_api_fields() -> None:
    report = TransferReport(3, 1, 1, 300, 2.0, [{"path": "/x", "error": "OSError: no"}], deleted=2)
    data = json.loads(report.to_json())
    assert list(data) == ["transferred", "skipped", "failed", "bytes", "elapsed", "failures"]
    assert data["failures"] == [{"path": "/x", "error": "OSError: no"}]
    assert TransferReport.from_dict(data) == TransferReport(
        3, 1, 1, 300, 2.0, [{"path": "/x", "error": "OSError: no"}]
    )
    assert report.bytes_per_second == 150.0
    assert report.files_per_second == 1.5
    assert not report.ok
    assert TransferReport().ok
    assert TransferReport().bytes_per_second == 0.0
    assert "transferred 3 files" in str(report)
    assert "deleted 2" in str(report)
    with pytest.raises(ValueError, match="missing"):
        TransferReport.from_dict({"transferred": 1})


def test_reports_merge() -> None:
    a = TransferReport(1, 2, 0, 10, 1.0, deleted=1)
    b = TransferReport(3, 0, 1, 5, 2.0, [{"path": "p", "error": "e"}])
    total = a + b
    assert total == TransferReport(4, 2, 1, 15, 3.0, [{"path": "p", "error": "e"}], deleted=1)
    assert TransferReport.merge([a, b], elapsed=2.5).elapsed == 2.5
    assert TransferReport.merge([]) == TransferReport()
    assert a.__add__(3) is NotImplemented


# ------------------------------------------------------------------ progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_is_throttled_and_ends_with_a_final_call() -> None:
    clock = Clock()
    seen: list[TransferProgress] = []
    tally = Tally(seen.append, clock=clock)
    tally.found(100)
    tally.add_bytes(10)  # first call: at once
    tally.add_bytes(10)  # too soon
    clock.now = 0.2
    tally.add_bytes(10)
    tally.transferred_file(100)  # too soon
    tally.final()
    assert [s.bytes_done for s in seen] == [10, 30, 30]
    assert seen[-1].transferred == 1
    assert seen[-1].files_done == 1


def test_item_progress_counts_each_byte_once_across_retries() -> None:
    tally = Tally(None)
    tally.found(100)
    item = ItemProgress(tally, 100)
    item.advance(40)
    item.restart()  # the attempt failed; the next one starts from 0
    item.advance(30)
    assert tally.bytes_done == 40
    item.advance(30)
    assert tally.bytes_done == 60
    item.done()
    assert tally.bytes_done == 100 == tally.bytes_total
    snapshot = tally.snapshot()
    assert snapshot.fraction == 1.0
    assert TransferProgress().fraction is None


def test_a_failing_callback_is_kept_for_the_end() -> None:
    calls = 0

    def broken(_: TransferProgress) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("bug in the progress bar")

    tally = Tally(broken)
    tally.skipped_file()
    tally.final()
    assert calls == 1
    assert isinstance(tally.callback_error, RuntimeError)


# ------------------------------------------------------------------ checksums


def test_checksums_compare_by_algorithm_and_value() -> None:
    md5_hex = "md5:0cc175b9c0f1b6a831c399e269772661"  # md5(b"a")
    md5_b64 = "md5:DMF1ucDxtqgxw5niaXcmYQ=="
    assert decode(md5_hex) == decode(md5_b64)
    assert checksums_match(md5_hex, md5_b64) is True
    assert checksums_match(md5_hex, "md5:" + "0" * 32) is False
    assert checksums_match(md5_hex, "crc32c:AAAAAA==") is None
    assert checksums_match(md5_hex, None) is None
    assert checksums_match("md5:not base64!", md5_hex) is None
    assert decode("nocolon") is None


def test_digests() -> None:
    crc = Digest("crc32c")
    crc.update(b"1234")
    crc.update(b"56789")
    assert crc.checksum() == "crc32c:4waSgw=="  # CRC-32C("123456789") = 0xE3069283
    md5 = Digest("md5")
    md5.update(b"a")
    assert md5.checksum() == "md5:0cc175b9c0f1b6a831c399e269772661"
    assert streaming_algorithms() == ("crc32c",)  # the test extra installs google-crc32c
    assert computable(None, "crc32c:AAAAAA==") == "crc32c"
    assert computable("etag:zzz", None) == "md5"
    with pytest.raises(ValueError, match="cannot be computed"):
        Digest("whirlpool")


# ------------------------------------------------------------------ retries


def test_which_errors_are_transient() -> None:
    assert is_transient(StoreConnectionError("down"))
    assert is_transient(ConnectionResetError())
    assert is_transient(TimeoutError())
    assert is_transient(IntegrityError(errno.EIO, "checksum", "p"))
    assert is_transient(OSError(errno.ESTALE, "changed while read", "p"))
    assert not is_transient(FileNotFoundError(errno.ENOENT, "missing", "p"))
    assert not is_transient(PermissionError(errno.EACCES, "denied", "p"))
    assert not is_transient(artifactio.PathOutsideStoreError("p", "/root"))
    assert not is_transient(ValueError("bad"))


async def test_retrying_retries_transient_failures_only() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    retrying = Retrying(
        RetryPolicy(retries=3, base=0.1, cap=0.3), rng=random.Random(1), sleep=sleep
    )
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise StoreConnectionError("reset")
        return "ok"

    assert await retrying.call(flaky) == "ok"
    assert attempts == 3
    assert len(waits) == 2
    assert 0 <= waits[0] <= 0.1
    assert 0 <= waits[1] <= 0.2

    async def missing() -> None:
        raise FileNotFoundError("gone")

    with pytest.raises(FileNotFoundError):
        await retrying.call(missing)
    assert len(waits) == 2  # not retried

    async def down() -> None:
        raise StoreConnectionError("down")

    with pytest.raises(StoreConnectionError):
        await retrying.call(down)
    assert len(waits) == 5
    assert max(waits) <= 0.3


async def test_one_retry_budget_for_the_whole_transfer() -> None:
    async def sleep(seconds: float) -> None:
        pass

    retrying = Retrying(RetryPolicy(retries=5), RetryBudget(tokens=4), sleep=sleep)
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise StoreConnectionError("down")

    for _ in range(3):  # three items of a transfer against a dead service
        with pytest.raises(StoreConnectionError):
            await retrying.call(down)
    assert calls == 3 + 4  # each item once, plus the budget's four retries in all
    assert retrying.retried == 4
