"""S5: a local tree of 1000 files x 64 KiB copied to a new directory, beside ``shutil.copytree``.

Contenders: ``await artifactio.copy(src, dst, recursive=True)`` on the suite's
event loop, its blocking twin ``artifactio.blocking.copy`` called from plain
code, and ``shutil.copytree``. The tree is 10 directories of
``tree_files / 10`` files (random bytes). Every copy goes to a fresh directory
on the same file system, is checked (file count and sizes, one file's bytes)
and removed, untimed. The page cache holds the source for all of them alike.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from _harness import Case, Contender, EventLoop, KiB, alternate
from _s3_clients import check_report

import artifactio

if TYPE_CHECKING:
    from _harness import Context

__all__ = ["run_s5"]


def _tree(root: Path, files: int, size: int) -> Path:
    src = root / "tree"
    for i in range(files):
        d = src / f"d{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.bin").write_bytes(os.urandom(size))
    return src


def run_s5(ctx: Context) -> None:
    """Measure S5 in the suite's scratch directory."""
    s = ctx.settings
    src = _tree(ctx.tmp, s.tree_files, s.tree_file_size)
    sample = next(src.glob("d0/*.bin"))
    case = Case(
        "S5",
        "local tree copy",
        "s",
        s.tree_files,
        f"{s.tree_files} x {s.tree_file_size // KiB} KiB in 10 directories",
    )

    def copied(tag: str, who: str) -> None:
        dst = ctx.tmp / tag
        files = [Path(d, f) for d, _, fs in os.walk(dst) for f in fs]
        if len(files) != s.tree_files or any(f.stat().st_size != s.tree_file_size for f in files):
            raise RuntimeError(f"{who}: {len(files)} files of the wrong sizes in {dst}")
        if (dst / sample.relative_to(src)).read_bytes() != sample.read_bytes():
            raise RuntimeError(f"{who}: {sample.name} differs from its source")
        shutil.rmtree(dst)

    with EventLoop() as loop:

        async def art_copy(tag: str) -> None:
            check_report(
                await artifactio.copy(
                    str(src), str(ctx.tmp / tag), recursive=True, concurrency=s.concurrency
                ),
                "artifactio.copy",
            )

        def blocking_copy(tag: str) -> None:
            check_report(
                artifactio.blocking.copy(
                    str(src), str(ctx.tmp / tag), recursive=True, concurrency=s.concurrency
                ),
                "artifactio.blocking.copy",
            )

        contenders = [
            Contender("artifactio.copy", lambda tag: loop.run(art_copy(tag)), ours=True),
            Contender("artifactio.blocking.copy", blocking_copy, ours=True),
            Contender("shutil.copytree", lambda tag: shutil.copytree(src, ctx.tmp / tag)),
        ]
        for contender in contenders:
            contender.after = lambda tag, who=contender.client: copied(tag, who)
        contenders[0].run("warm")  # untimed: imports, the loop's thread pool
        copied("warm", "warm-up")
        alternate(ctx.results, case, contenders, s.rounds)
    for ours in ("artifactio.copy", "artifactio.blocking.copy"):
        ctx.results.target("S5", case.name, ours, "shutil.copytree", 1.0)
    shutil.rmtree(src)
