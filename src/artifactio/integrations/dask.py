"""Bulk transfers on a Dask cluster: ``copy`` and ``sync`` run as one task per shard.

When a copy or a sync outgrows one machine, run it on the Dask cluster you
have (``pip install 'artifactio[dask]'``)::

    from distributed import Client
    from artifactio.integrations import dask_blocking

    client = Client("tcp://scheduler:8786")
    report = dask_blocking.copy(
        "s3://raw/images", "gs://train/images", client=client, recursive=True,
        src_options={"key": ..., "secret": ...}, dst_options={"token": ...},
    )

:func:`copy` and :func:`sync` take the parameters of :func:`artifactio.copy`
and :func:`artifactio.sync` and return the same :class:`~artifactio.TransferReport`,
plus ``client`` (a ``distributed.Client``), the shard bounds (``shard_size``
files, ``shard_bytes`` bytes), ``shard_retries`` and each end's store options.
Their blocking twins, generated from them, are in
:mod:`artifactio.integrations.dask_blocking`.

**How it splits.** The driver (the process that calls :func:`copy`) opens both
ends and checks them as :func:`artifactio.copy` does (a missing source, a
directory onto a file... raise before anything is submitted). It then lists the
source one directory level at a time (delimiter listings), depth first in key
order, and cuts the key space into :class:`~artifactio.transfer.KeyRange` s of
about ``shard_size`` files or ``shard_bytes`` bytes, preferably where a
subdirectory starts (:mod:`._dask_shards`). Each range is submitted as a task the
moment its end is known, so workers start while the listing goes on; the driver
holds one listing page per directory level it is in and at most
:data:`MAX_PENDING_SHARDS` shards in flight, never the whole listing. Each task
runs :func:`artifactio.transfer.execute` on the plan restricted to its range
(``TransferPlan.restrict``): the worker lists both ends within the range, and
transfers with the plan's ``concurrency`` and bytes in flight (about
``concurrency * part_size``) on an event loop of its own. A worker with several
threads runs as many shards side by side. The ranges tile the key space, so
every path belongs to exactly one shard: what the driver's listing counts only
decides where the cuts fall. The reports merge into one
(:meth:`TransferReport.merge`, ``elapsed`` being the whole run's wall time).

**What travels.** ``src`` and ``dst`` are URIs (``s3://``, ``gs://``, any
registered scheme) or local paths; each worker opens them with
:func:`artifactio.open_store` and ``src_options``/``dst_options`` (as the driver
validated them: secrets are ``pydantic.SecretStr``). Refused with ``TypeError``:
``(store, path)`` pairs and stores (an open store cannot be pickled; pass its
URI and options). Refused with ``ValueError``: ``memory://`` ends when the
workers are other processes (each process has its own memory stores). A local
path must name the same directory on every worker (a shared file system; on a
``LocalCluster`` it does); a relative one is taken from the driver's working
directory. Options not given come from each process's environment, as for
``open_store``. Task keys are ``artifactio-<mode>-<run id>-<shard>``, and the
``repr`` Dask logs and shows of a task names the ends and the options' names,
never an option's value. The workers import artifactio to run a shard (and
Dask's scheduler unpickles task graphs): install the same artifactio wherever
the cluster runs.

**Faults.** A task that raises is retried ``shard_retries`` times by Dask; a
task whose worker died is rerun elsewhere by the scheduler (up to
``distributed.scheduler.allowed-failures`` deaths, then ``KilledWorker``). A
shard that still fails counts its files (as the driver listed them) as failed,
with one entry in ``failures``; the other shards go on (``fail_fast=True``
cancels the shards not finished and stops the listing). A rerun is safe: every
write is all or nothing (no partial object or file is ever visible), and a rerun
of a shard is the same transfer of the same range: ``sync`` skips what the first
attempt finished; ``copy`` replaces it with the same bytes (or, with
``overwrite=False``, skips it), so a rerun costs at most one shard of work. Dask
returns one result per task, so the merged report counts each file once (a
file that a dead attempt wrote and the rerun found up to date counts as
skipped). A worker process killed outright cannot clean up after itself: a big
file it was uploading to S3 in parts leaves a pending multipart upload (a bucket
lifecycle rule ``AbortIncompleteMultipartUpload`` removes those), and a local
destination may keep a hidden temporary file; neither is ever visible as the
destination file.

**Progress.** ``progress`` is called on the driver: ``files_total`` and
``bytes_total`` count what the driver listed (all files that pass the filters,
also those a sync will find up to date), and the ``done`` counts grow as shards
finish.

**Cost.** The source is listed twice (by the driver, then by each shard's
worker), at about one request per 1000 keys on S3 and GCS. A shard lists the
whole of every directory level its range reaches into, so a flat directory of
many thousands of files cut into many shards is listed once per shard; deeper
trees (as most datasets are) are listed about once in all. Each shard costs its
worker an event loop, its stores and a look at both ends (some tens of
milliseconds), and the driver about 15 KB while it is in flight (so at most
about 15 MB, whatever the number of objects): keep shards to many seconds of
work.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
import uuid
from typing import TYPE_CHECKING, Any

import anyio

from .._exceptions import MissingDependencyError

try:
    import distributed
except ImportError as exc:  # pragma: no cover - the dask extra is missing
    raise MissingDependencyError(
        f"artifactio.integrations.dask needs dask.distributed (missing module {exc.name!r}): "
        "pip install 'artifactio[dask]'",
        name=exc.name,
    ) from exc

from .._concurrency import for_each, shielded
from .._primitives import DEFAULT_CONCURRENCY, DEFAULT_PART_SIZE
from .._redact import redact_text
from ..transfer import KeyRange, TransferPlan, TransferReport
from ..transfer._endpoints import open_endpoints
from ..transfer._progress import Tally
from ..transfer._retry import Retrying, RetryPolicy
from ..transfer._walk import resolve
from ._dask_shards import Shard, split
from ._dask_task import ShardTask, StoreSpec, open_ends, run_shard

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Iterable, Mapping

    from distributed import Client

    from .._paths import PathType
    from ..transfer import Compare, ProgressCallback
    from ..transfer._walk import Start

__all__ = [
    "DEFAULT_SHARD_BYTES",
    "DEFAULT_SHARD_SIZE",
    "MAX_PENDING_SHARDS",
    "copy",
    "sync",
]

logger = logging.getLogger("artifactio.integrations.dask")

DEFAULT_SHARD_SIZE = 10_000
"""Files per shard: at a few hundred small files a second per worker thread, tens of seconds."""

DEFAULT_SHARD_BYTES = 4 * 1024**3
"""Bytes per shard (4 GiB): a shard of big files is cut by size, a big file is a shard alone."""

MAX_PENDING_SHARDS = 1024
"""Shards submitted and not yet reported, at most; the driver's listing waits beyond that."""


async def copy(
    src: PathType,
    dst: PathType,
    *,
    client: Client,
    shard_size: int = DEFAULT_SHARD_SIZE,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    shard_retries: int = 2,
    src_options: Mapping[str, Any] | None = None,
    dst_options: Mapping[str, Any] | None = None,
    recursive: bool = False,
    overwrite: bool = True,
    concurrency: int = DEFAULT_CONCURRENCY,
    part_size: int = DEFAULT_PART_SIZE,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    dry_run: bool = False,
    fail_fast: bool = False,
    retries: int = 3,
    progress: ProgressCallback | None = None,
) -> TransferReport:
    """Copy a file, or a directory tree with ``recursive=True``, on a Dask cluster.

    What :func:`artifactio.copy` does, in shards run by the cluster's workers
    (:mod:`artifactio.integrations.dask` says how the source is cut and what a
    rerun does); it returns when every shard has reported.

    Args:
        src: A URI or local path, opened by the driver and by each worker
            (``(store, path)`` pairs are refused).
        dst: Likewise.
        client: The ``distributed.Client`` whose workers run the shards (a
            synchronous one, or an asynchronous one on the event loop it runs on).
        shard_size: Files per shard, at most (about).
        shard_bytes: Bytes per shard (a bigger file is a shard of its own).
        shard_retries: Times Dask reruns a shard whose task raised (a shard whose
            worker died is rerun by the scheduler).
        src_options: Options for ``open_store`` of ``src`` (credentials,
            ``endpoint_url``...), on the driver and on every worker.
        dst_options: Likewise for ``dst``.
        recursive: Copy a directory with everything below it.
        overwrite: Replace destination files that exist; with ``False`` they are
            skipped.
        concurrency: Files in flight at once in each shard (a worker runs one
            shard per thread).
        part_size: Bytes read and written at a time per file.
        include: Glob patterns (relative to ``src``) of the paths to take; all when empty.
        exclude: Glob patterns of paths to leave out.
        dry_run: Plan and report what would be copied; write nothing.
        fail_fast: Stop at the first failed shard or file: the listing stops and
            the shards not finished are cancelled (their files are not counted).
        retries: Attempts after the first for a file that failed transiently.
        progress: Called on the driver with a :class:`~artifactio.TransferProgress`
            snapshot as the listing goes on and shards finish.

    Returns:
        A :class:`~artifactio.TransferReport` of every shard, merged.

    Raises:
        TypeError: ``src`` or ``dst`` is a ``(store, path)`` pair or a store, or
            ``client`` is not a ``distributed.Client``.
        RuntimeError: An asynchronous ``client`` used away from its event loop.
        FileNotFoundError: ``src`` does not exist.
        IsADirectoryError: ``src`` is a directory and ``recursive`` is false.
        NotADirectoryError: ``src`` is a directory and ``dst`` a file.
        OSError: ``dst`` lies inside ``src`` (EINVAL).
        ValueError: An invalid argument or filter pattern, or a ``memory://`` end
            with workers in other processes.
    """
    plan = TransferPlan.for_copy(
        recursive=recursive,
        overwrite=overwrite,
        include=include,
        exclude=exclude,
        dry_run=dry_run,
        fail_fast=fail_fast,
        concurrency=concurrency,
        part_size=part_size,
        retries=retries,
    )
    driver = _Driver(client, plan, shard_size, shard_bytes, shard_retries, progress)
    return await driver.run(
        StoreSpec.parse(src, src_options, "src"), StoreSpec.parse(dst, dst_options, "dst")
    )


async def sync(
    src: PathType,
    dst: PathType,
    *,
    client: Client,
    shard_size: int = DEFAULT_SHARD_SIZE,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    shard_retries: int = 2,
    src_options: Mapping[str, Any] | None = None,
    dst_options: Mapping[str, Any] | None = None,
    delete: bool = False,
    compare: Compare = "size-mtime",
    concurrency: int = DEFAULT_CONCURRENCY,
    part_size: int = DEFAULT_PART_SIZE,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    dry_run: bool = False,
    fail_fast: bool = False,
    retries: int = 3,
    progress: ProgressCallback | None = None,
) -> TransferReport:
    """Make ``dst`` hold what ``src`` holds, on a Dask cluster, transferring only what differs.

    What :func:`artifactio.sync` does, in shards run by the cluster's workers.
    Running it again after an interruption finishes the rest; a run after a
    complete one transfers nothing.

    Args:
        src: A URI or local path (a directory or one file), opened by the driver
            and by each worker (``(store, path)`` pairs are refused).
        dst: Likewise.
        client: The ``distributed.Client`` whose workers run the shards (a
            synchronous one, or an asynchronous one on the event loop it runs on).
        shard_size: Files per shard, at most (about).
        shard_bytes: Bytes per shard (a bigger file is a shard of its own).
        shard_retries: Times Dask reruns a shard whose task raised (a shard whose
            worker died is rerun by the scheduler).
        src_options: Options for ``open_store`` of ``src`` (credentials,
            ``endpoint_url``...), on the driver and on every worker.
        dst_options: Likewise for ``dst``.
        delete: Remove destination files absent from the source. Each shard
            removes those of its own key range once its own transfers succeeded.
        compare: ``"size-mtime"`` (default), ``"size"`` or ``"checksum"``, as for
            :func:`artifactio.sync`.
        concurrency: Files in flight at once in each shard (a worker runs one
            shard per thread).
        part_size: Bytes read and written at a time per file.
        include: Glob patterns (relative to ``src``) of the paths to take; all when empty.
        exclude: Glob patterns of paths to leave out.
        dry_run: Plan and report what would be transferred and deleted; write nothing.
        fail_fast: Stop at the first failed shard or file.
        retries: Attempts after the first for a file that failed transiently.
        progress: Called on the driver with a :class:`~artifactio.TransferProgress`
            snapshot as the listing goes on and shards finish.

    Returns:
        A :class:`~artifactio.TransferReport` of every shard, merged.

    Raises:
        TypeError: ``src`` or ``dst`` is a ``(store, path)`` pair or a store, or
            ``client`` is not a ``distributed.Client``.
        RuntimeError: An asynchronous ``client`` used away from its event loop.
        FileNotFoundError: ``src`` does not exist.
        NotADirectoryError: ``src`` is a directory and ``dst`` a file.
        OSError: ``dst`` lies inside ``src`` (EINVAL).
        ValueError: An invalid argument or filter pattern, or a ``memory://`` end
            with workers in other processes.
    """
    plan = TransferPlan.for_sync(
        delete=delete,
        compare=compare,
        include=include,
        exclude=exclude,
        dry_run=dry_run,
        fail_fast=fail_fast,
        concurrency=concurrency,
        part_size=part_size,
        retries=retries,
    )
    driver = _Driver(client, plan, shard_size, shard_bytes, shard_retries, progress)
    return await driver.run(
        StoreSpec.parse(src, src_options, "src"), StoreSpec.parse(dst, dst_options, "dst")
    )


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"artifactio.integrations.dask: {name} must be a positive int, not {value!r}"
        )
    return value


class _Driver:
    """One transfer on the cluster: cuts, submits, collects and merges the shards."""

    def __init__(
        self,
        client: Client,
        plan: TransferPlan,
        shard_size: int,
        shard_bytes: int,
        shard_retries: int,
        progress: ProgressCallback | None,
    ) -> None:
        if not isinstance(client, distributed.Client):
            raise TypeError(
                "artifactio.integrations.dask: client must be a distributed.Client, "
                f"not {type(client).__name__}"
            )
        if getattr(client, "_asynchronous", False) and not client.asynchronous:
            raise RuntimeError(
                "artifactio.integrations.dask: an asynchronous Client works only on its own "
                "event loop: await artifactio.integrations.dask.copy(...) there, or pass a "
                "synchronous Client"
            )
        if isinstance(shard_retries, bool) or not isinstance(shard_retries, int):
            raise ValueError("artifactio.integrations.dask: shard_retries must be an int")
        if shard_retries < 0:
            raise ValueError("artifactio.integrations.dask: shard_retries must be at least 0")
        self.client = client
        self.plan = plan
        self.shard_size = _positive("shard_size", shard_size)
        self.shard_bytes = _positive("shard_bytes", shard_bytes)
        self.shard_retries = shard_retries
        self.tally = Tally(progress, dry_run=plan.dry_run)
        self.run_id = uuid.uuid4().hex[:12]
        self.reports: list[TransferReport] = []
        self.pending: dict[str, distributed.Future[Any]] = {}
        self.stopped = False
        self._source = ""

    # ------------------------------------------------------------ the run

    async def run(self, src: StoreSpec, dst: StoreSpec) -> TransferReport:
        """Cut, submit and collect every shard; the merged report."""
        started = time.monotonic()
        for end in (src, dst):
            await anyio.to_thread.run_sync(end.load_backend)
        if "memory" in (src.scheme, dst.scheme):
            await self._refuse_memory_across_processes()
        try:
            await self._run(src, dst)
        except BaseException:
            with shielded():
                await self._cancel_pending()
            raise
        self.tally.final()
        if self.tally.callback_error is not None:
            raise self.tally.callback_error
        return TransferReport.merge(self.reports, elapsed=time.monotonic() - started)

    async def _run(self, src: StoreSpec, dst: StoreSpec) -> None:
        plan = self.plan
        retrying = Retrying(RetryPolicy(plan.retries))
        async with contextlib.AsyncExitStack() as stack:
            # The driver's own stores, to check the ends and list the source.
            ends = await stack.enter_async_context(
                open_ends(src, dst, concurrency=plan.concurrency)
            )
            src, dst = src.secured(ends[0][0]), dst.secured(ends[1][0])
            endpoints = await stack.enter_async_context(
                open_endpoints(*ends, concurrency=plan.concurrency)
            )
            start = await resolve(plan, *endpoints, retrying)
            self._source = start.src.full()
            logger.info(
                "%s %s -> %s on the Dask cluster (shards of up to %d files or %d bytes)",
                plan.mode,
                self._source,
                start.dst.full(),
                self.shard_size,
                self.shard_bytes,
            )
            run_one = functools.partial(self._one, src=src, dst=dst)
            await for_each(self._feed(start, retrying, stack), run_one, limit=MAX_PENDING_SHARDS)

    async def _feed(
        self, start: Start, retrying: Retrying, stores: contextlib.AsyncExitStack
    ) -> AsyncGenerator[Shard, None]:
        """The shards, as the listing finds them; the driver's stores close after the last."""
        if start.single is not None:
            entry = start.single[0]
            self.tally.found(entry.size)
            yield Shard(0, KeyRange(), 1, entry.size)
        else:
            shards = split(
                self.plan,
                start.src,
                max_files=self.shard_size,
                max_bytes=self.shard_bytes,
                retrying=retrying,
                tally=self.tally,
            )
            async with contextlib.aclosing(shards):
                async for shard in shards:
                    if self.stopped:
                        return
                    yield shard
        if not self.stopped:
            self.tally.finish_listing()
        await stores.aclose()

    async def _one(self, shard: Shard, *, src: StoreSpec, dst: StoreSpec) -> None:
        """Submit one shard, wait for it, count its report."""
        if self.stopped:
            return
        task = ShardTask(self.plan.restrict(shard.key_range), src, dst, shard.index)
        key = f"artifactio-{self.plan.mode}-{self.run_id}-{shard.index}"
        future = self.client.submit(
            run_shard, task, key=key, retries=self.shard_retries, pure=False
        )
        self.pending[key] = future
        logger.debug(
            "shard %d (%s: %d files, %d bytes) submitted as %s",
            shard.index,
            shard.describe(),
            shard.files,
            shard.bytes,
            key,
        )
        # A cancelled wait leaves the future in ``pending``: run() cancels it on the cluster.
        report = await self._outcome(shard, future)
        del self.pending[key]
        if report is None:
            return  # cancelled by fail_fast: its files are not counted
        self.reports.append(report)
        self._count(shard, report)
        if self.plan.fail_fast and not report.ok and not self.stopped:
            self.stopped = True
            await self._cancel_pending()

    async def _outcome(
        self, shard: Shard, future: distributed.Future[Any]
    ) -> TransferReport | None:
        """The shard's report; a report of its failure; ``None`` when fail_fast cancelled it."""
        await _finished(future)
        status = future.status
        if status in ("finished", "error"):
            try:
                if status == "finished":
                    result = await self._call(future.result)
                else:
                    result = await self._call(future.exception)
            except Exception as failure:  # e.g. the result was lost with its worker
                result = failure
            if isinstance(result, TransferReport):
                return result
            if isinstance(result, BaseException):
                error = f"{type(result).__name__}: {result}"
            else:
                error = f"TypeError: the shard's task returned {type(result).__name__}"
        elif self.stopped:
            return None
        else:
            error = f"CancelledError: the shard's task was {status}"
        text = redact_text(
            f"shard {shard.index} ({shard.describe()}, {shard.files} files as listed) failed "
            f"on the cluster: {error}"
        )
        logger.warning("%s %s: %s", self.plan.mode, self._source, text)
        return TransferReport(
            failed=max(shard.files, 1),
            failures=[{"path": self._source, "error": text}],
            dry_run=self.plan.dry_run,
        )

    def _count(self, shard: Shard, report: TransferReport) -> None:
        """Add a shard's report to the progress counts."""
        self.tally.add_report(report, shard.bytes)

    # ------------------------------------------------------------ the client

    async def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        """``method(*args)`` of the client or a future, without blocking the event loop."""
        if self.client.asynchronous:
            return await method(*args)
        return await anyio.to_thread.run_sync(functools.partial(method, *args))

    async def _cancel_pending(self) -> None:
        futures = list(self.pending.values())
        if futures:
            await self._call(self.client.cancel, futures)

    async def _refuse_memory_across_processes(self) -> None:
        pids = await self._call(self.client.run, os.getpid)
        if any(pid != os.getpid() for pid in pids.values()):
            raise ValueError(
                "artifactio.integrations.dask: a memory:// store lives in one process, and "
                "this cluster's workers are other processes: use a URI every worker reaches "
                "(s3://, gs://, a shared local path)"
            )


async def _finished(future: distributed.Future[Any]) -> None:
    """Wait until ``future`` is done (finished, erred or cancelled), on this event loop."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def wake(_: object) -> None:
        with contextlib.suppress(RuntimeError):  # this loop is closed: nobody waits
            loop.call_soon_threadsafe(done.set)

    future.add_done_callback(wake)  # type: ignore[no-untyped-call]
    await done.wait()
