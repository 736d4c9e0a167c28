"""``ls``, ``du``, ``stat``, ``cat`` and ``rm``: looking at (and removing) what a store holds.

- ``ls URI``: the names in a directory, directories with a trailing ``/``; a
  file lists itself. ``-r`` lists every file below, by path relative to URI;
  ``-l`` adds size and modification time. ``--json``: an array of
  ``{"path", "name", "is_dir", "size", "mtime"}`` (``path`` full, ``name``
  relative to URI), streamed.
- ``du URI``: the bytes and number of files below URI (``--json``:
  ``{"path", "bytes", "files"}``).
- ``stat URI``: what the store knows (``--json``: the ``StatResult`` fields).
- ``cat URI``: the file's bytes on stdout, streamed.
- ``rm URI``: removes a file; ``-r`` a directory tree (with filters: the files
  they take, one by one). ``--dry-run`` lists what would go. ``--json``:
  ``{"path", "removed", "dry_run"}`` (``removed``: the files removed one by one,
  or ``null`` when a whole tree went at once).

``--include``/``--exclude`` take paths relative to URI, as for transfers.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .._paths import join_key
from ..transfer import PathFilter
from ._output import human_size
from ._stores import StoreSet

if TYPE_CHECKING:
    import argparse
    from collections.abc import AsyncIterator

    from .._entries import DirEntry
    from .._store import AsyncArtifactStore

__all__ = ["run_browse"]

_CHUNK = 1024 * 1024


async def run_browse(args: argparse.Namespace) -> int:
    """Run ``ls``, ``du``, ``stat``, ``cat`` or ``rm`` as ``args`` say; the exit status."""
    stores = StoreSet(
        endpoint_url=args.endpoint_url, concurrency=args.concurrency, part_size=args.part_size
    )
    async with stores:
        store, path = stores.target(args.uri)
        command = {"ls": _ls, "du": _du, "stat": _stat, "cat": _cat, "rm": _rm}[args.command]
        await command(args, store, path)
    return 0


def _filter(args: argparse.Namespace) -> PathFilter:
    return PathFilter(getattr(args, "include", ()), getattr(args, "exclude", ()))


def _time(mtime: float | None) -> str:
    if not mtime:
        return "-"
    return datetime.fromtimestamp(mtime, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


async def _entries(
    store: AsyncArtifactStore, key: str, *, recursive: bool, wanted: PathFilter, rel: str = ""
) -> AsyncIterator[tuple[str, DirEntry]]:
    """``(path relative to the top, entry)`` below directory ``key``, sorted, level by level."""
    level: list[DirEntry] = []
    async for page in store._scandir(key):
        level.extend(page)
    level.sort(key=lambda entry: entry.name)
    for entry in level:
        child = f"{rel}/{entry.name}" if rel else entry.name
        if entry.is_dir:
            if not wanted.may_descend(child):
                continue
            if recursive:
                if not entry.is_link:
                    async for item in _entries(
                        store, join_key(key, entry.name), recursive=True, wanted=wanted, rel=child
                    ):
                        yield item
                continue
        elif not wanted.wants_file(child):
            continue
        yield child, entry


async def _ls(args: argparse.Namespace, store: AsyncArtifactStore, path: str) -> None:
    info = await store.stat(path)
    out = sys.stdout
    if args.json:
        out.write("[")
    first = True

    def show(name: str, full: str, is_dir: bool, size: int, mtime: float | None) -> None:
        nonlocal first
        if args.json:
            record = {"path": full, "name": name, "is_dir": is_dir, "size": size, "mtime": mtime}
            out.write(("\n" if first else ",\n") + json.dumps(record))
        elif args.long:
            shown = "DIR" if is_dir else str(size)
            out.write(f"{shown:>12}  {_time(mtime)}  {name}{'/' if is_dir else ''}\n")
        else:
            out.write(f"{name}{'/' if is_dir else ''}\n")
        first = False

    if not info.is_dir:
        show(info.path.rsplit("/", 1)[-1], info.path, False, info.size, info.mtime)
    else:
        key = store._key(path, "ls")
        wanted = _filter(args)
        async for rel, entry in _entries(store, key, recursive=args.recursive, wanted=wanted):
            full = store._full(join_key(key, rel))
            show(rel, full, entry.is_dir, entry.size, entry.mtime)
    if args.json:
        out.write("\n]\n" if not first else "]\n")
    out.flush()


async def _du(args: argparse.Namespace, store: AsyncArtifactStore, path: str) -> None:
    info = await store.stat(path)
    total, files = (info.size, 1) if not info.is_dir else (0, 0)
    if info.is_dir:
        key = store._key(path, "du")
        wanted = _filter(args)
        prefix = len(key) + 1 if key else 0
        async for child, entry in store._iter_tree(key):
            if not entry.is_dir and wanted.wants_file(child[prefix:]):
                total += entry.size
                files += 1
    if args.json:
        print(json.dumps({"path": info.path, "bytes": total, "files": files}))
    else:
        print(f"{total}\t{human_size(total)}\t{files} files\t{info.path}")


async def _stat(args: argparse.Namespace, store: AsyncArtifactStore, path: str) -> None:
    info = await store.stat(path)
    fields: dict[str, Any] = dataclasses.asdict(info)
    if args.json:
        print(json.dumps(fields))
        return
    fields["type"] = "directory" if info.is_dir else "file"
    fields["mtime"] = f"{_time(info.mtime)} UTC ({info.mtime})"
    del fields["is_dir"]
    for name, value in fields.items():
        if value is not None:
            print(f"{name}: {value}")


async def _cat(args: argparse.Namespace, store: AsyncArtifactStore, path: str) -> None:
    del args
    sys.stdout.flush()
    out = sys.stdout.buffer
    async with store.open(path, "rb") as f:
        while chunk := await f.read(_CHUNK):
            out.write(chunk)
    out.flush()


async def _rm(args: argparse.Namespace, store: AsyncArtifactStore, path: str) -> None:
    info = await store.stat(path)
    wanted = _filter(args)
    if info.is_dir and not args.recursive:
        raise IsADirectoryError(f"{info.path} is a directory (use -r)")
    removed: int | None = None

    def would_remove(full: str) -> None:
        if not args.json:
            print(f"would remove {full}")

    if not info.is_dir:
        if args.dry_run:
            would_remove(info.path)
        else:
            await store.remove(path)
        removed = 1
    elif wanted.active or args.dry_run:
        removed = 0
        key = store._key(path, "rm")
        async for rel, _ in _entries(store, key, recursive=True, wanted=wanted):
            full = store._full(join_key(key, rel))
            if args.dry_run:
                would_remove(full)
            else:
                await store.remove(full)
            removed += 1
        if not wanted.active and args.dry_run:
            would_remove(info.path + "/")
    else:
        await store.rmtree(path)
    if args.json:
        print(json.dumps({"path": info.path, "removed": removed, "dry_run": args.dry_run}))
