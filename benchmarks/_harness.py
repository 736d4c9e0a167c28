"""The measuring machinery every benchmark shares: cases, rows, targets, timing, alternation.

A *case* is one workload (``S1`` "up, per call": 1000 x 1 KiB written one call
each). Its *contenders* are artifactio's ways of doing it and each peer's; a
contender is a callable that does the whole workload once, given a fresh tag
(so every run writes below a fresh prefix), plus an untimed ``after`` that
checks what the run did and cleans up. :func:`alternate` runs every contender
of a case once per round, the order rotating from round to round (so drift of
this shared machine hits every contender alike), and records wall seconds
(``time.perf_counter``) and CPU seconds of this process, all threads
(``time.process_time``; the servers run in processes of their own).

A :class:`Row` keeps one contender's runs in the case's unit (objects/s, MB/s
of 10^6 bytes, seconds, µs per call, MiB); the report takes medians. A
:class:`Target` compares two rows of a case (artifactio / peer of the row's
metric) or one row against a bound, as the performance issue states them.

Async clients are bound to an event loop: :class:`EventLoop` keeps one for a
scenario, so sync contenders (``shutil``, the blocking facade) and async ones
(``await store.write_bytes``) are timed by the same loop of calls.
"""

from __future__ import annotations

import asyncio
import importlib
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine
    from pathlib import Path
    from types import TracebackType

    from _s3_clients import S3Endpoint

__all__ = [
    "KiB",
    "MiB",
    "Case",
    "Contender",
    "Context",
    "EventLoop",
    "Results",
    "Row",
    "Settings",
    "Target",
    "alternate",
    "calls_lasting",
    "for_each_limited",
    "missing",
    "on_loop",
]

KiB = 1024
MiB = 1024 * 1024
T = TypeVar("T")

Better = Literal["higher", "lower"]

# The peers' import names; a peer whose module does not import is skipped with the reason.
_MODULES = {
    "s3fs": "s3fs",
    "gcsfs": "gcsfs.core",
    "obstore": "obstore",
    "boto3": "boto3.s3.transfer",
    "fsspec": "fsspec.implementations.local",
    "aiobotocore": "aiobotocore.session",
}
_missing_cache: dict[str, str | None] = {}


def missing(peer: str) -> str | None:
    """Why ``peer`` cannot run here (its library does not import), or ``None``."""
    if peer not in _missing_cache:
        try:
            importlib.import_module(_MODULES[peer])
        except ImportError as exc:
            _missing_cache[peer] = f"{peer} is not installed ({exc}; the bench extra has it)"
        else:
            _missing_cache[peer] = None
    return _missing_cache[peer]


# ------------------------------------------------------------------ the run


@dataclass(frozen=True)
class Settings:
    """Sizes and knobs of one suite run (``--quick`` shrinks every size, one round)."""

    rounds: int = 3
    concurrency: int = 64
    quick: bool = False
    small_count: int = 1000  # S1, S2
    small_size: int = 1 * KiB
    big_size: int = 256 * MiB  # S3
    part_size: int = 8 * MiB
    list_count: int = 10_000  # S4 (and a prefix of list_small objects for the memory slope)
    list_small: int = 1000
    tree_files: int = 1000  # S5
    tree_file_size: int = 64 * KiB
    call_seconds: float = 0.2  # S6: one run of a local metadata call lasts about this
    facade_gets: int = 300  # S6: GETs per run on S3
    gcs_count: int = 1000  # S7
    stream_size: int = 1024 * MiB  # S8

    @classmethod
    def quick_run(cls, concurrency: int = 64) -> Settings:
        return cls(
            rounds=1,
            concurrency=concurrency,
            quick=True,
            small_count=200,
            big_size=16 * MiB,
            list_count=1000,
            list_small=100,
            tree_files=100,
            call_seconds=0.03,
            facade_gets=40,
            gcs_count=100,
            stream_size=32 * MiB,
        )


@dataclass
class Context:
    """What every scenario gets: the settings, where to record, scratch space, the S3 server."""

    settings: Settings
    results: Results
    tmp: Path
    s3: S3Endpoint | None
    """The SeaweedFS endpoint, or ``None`` when SeaweedFS is not installed."""
    selected: frozenset[str] = frozenset(f"S{i}" for i in range(1, 9))
    """The scenarios to run (``--only``)."""

    def wants(self, *scenarios: str) -> bool:
        return any(s in self.selected for s in scenarios)


# ------------------------------------------------------------------ the model


@dataclass(frozen=True)
class Case:
    """One workload of a scenario, and how a run's wall time becomes its metric.

    Attributes:
        scenario: ``"S1"`` ... ``"S8"``.
        name: What the case does (``"up, per call"``).
        unit: ``"objects/s"``, ``"files/s"``, ``"MB/s"`` (10^6 bytes), ``"s"`` or
            ``"us/call"``; ``"MiB"`` and ``"B/object"`` for memory rows (recorded
            as measured, not timed).
        amount: Objects, files, bytes or calls per run (what a rate divides).
        detail: The workload in words, for the table (``"1000 x 1 KiB"``).
    """

    scenario: str
    name: str
    unit: str
    amount: float
    detail: str = ""

    @property
    def better(self) -> Better:
        return "lower" if self.unit in ("s", "us/call", "MiB", "B/object") else "higher"

    def metric(self, wall: float) -> float:
        """The row's value for one run that took ``wall`` seconds."""
        if self.unit == "MB/s":
            return self.amount / 1e6 / wall
        if self.unit in ("objects/s", "files/s"):
            return self.amount / wall
        if self.unit == "us/call":
            return wall / self.amount * 1e6
        return wall


@dataclass
class Row:
    """One contender's runs of one case."""

    case: Case
    client: str
    ours: bool
    values: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)


@dataclass(frozen=True)
class Target:
    """A goal of the issue: ``ours`` against ``peer`` (a ratio) or against a bound alone.

    The ratio is artifactio's metric divided by the peer's, so for rates it must
    reach ``bound`` (``>=``) and for times or memory stay under it (``<=``). With
    ``peer=None`` the row's own median is compared with ``bound``.
    """

    scenario: str
    case: str
    ours: str
    peer: str | None
    bound: float


@dataclass
class Results:
    """Every row, target and skipped contender of one suite run."""

    rows: dict[tuple[str, str, str], Row] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def row(self, case: Case, client: str, ours: bool) -> Row:
        key = (case.scenario, case.name, client)
        if key not in self.rows:
            self.rows[key] = Row(case, client, ours)
        return self.rows[key]

    def record(self, case: Case, client: str, ours: bool, value: float, cpu: float = 0.0) -> None:
        """Add one run's value (already in the case's unit) to a row."""
        row = self.row(case, client, ours)
        row.values.append(value)
        row.cpus.append(cpu)

    def target(self, scenario: str, case: str, ours: str, peer: str | None, bound: float) -> None:
        self.targets.append(Target(scenario, case, ours, peer, bound))

    def skip(self, scenario: str, what: str, reason: str) -> None:
        """Leave ``what`` out of ``scenario``, saying why (printed now and in the table)."""
        self.skipped.append({"scenario": scenario, "what": what, "reason": reason})
        print(f"{scenario}: skipping {what}: {reason}", file=sys.stderr)


@dataclass
class Contender:
    """One way of doing a case: ``run(tag)`` is timed, ``before`` and ``after`` are not.

    Attributes:
        client: The row's label (``"artifactio write_bytes"``, ``"s3fs pipe_file"``).
        run: Does the whole workload once; ``tag`` is unique per run.
        after: Checks what the run did (raising if it is wrong) and cleans up.
        ours: Whether this is artifactio.
        before: Prepares the run (a fresh server, say).
    """

    client: str
    run: Callable[[str], object]
    after: Callable[[str], object] | None = None
    ours: bool = False
    before: Callable[[str], object] | None = None


def on_loop(
    loop: EventLoop,
    client: str,
    work: Callable[[str], Awaitable[object]],
    after: Callable[[str], Awaitable[object]] | None = None,
    *,
    ours: bool = False,
) -> Contender:
    """A contender whose ``work(tag)`` and ``after(tag)`` are coroutines run on ``loop``."""

    def run(tag: str) -> None:
        loop.run(_awaited(work(tag)))

    def check(tag: str) -> None:
        if after is not None:
            loop.run(_awaited(after(tag)))

    return Contender(client, run, check if after is not None else None, ours=ours)


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


def alternate(
    results: Results,
    case: Case,
    contenders: list[Contender],
    rounds: int,
    *,
    tag: str = "",
) -> None:
    """Run each contender once per round, rotating the order, and record the runs."""
    for r in range(rounds):
        shift = r % len(contenders) if contenders else 0
        for contender in contenders[shift:] + contenders[:shift]:
            run_tag = f"{tag}r{r}-{_slug(contender.client)}"
            if contender.before is not None:
                contender.before(run_tag)
            wall, cpu = time.perf_counter(), time.process_time()
            contender.run(run_tag)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if contender.after is not None:
                contender.after(run_tag)
            results.record(case, contender.client, contender.ours, case.metric(wall), cpu)


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label).strip("-")


# ------------------------------------------------------------------ helpers


async def for_each_limited(count: int, limit: int, op: Callable[[int], Awaitable[object]]) -> None:
    """Await ``op(i)`` for every ``i < count``, at most ``limit`` at once (a semaphore)."""
    semaphore = asyncio.Semaphore(limit)

    async def one(i: int) -> None:
        async with semaphore:
            await op(i)

    await asyncio.gather(*(one(i) for i in range(count)))


def calls_lasting(func: Callable[[], object], seconds: float) -> int:
    """How many calls of ``func`` last about ``seconds`` (after a warm-up of 100 calls)."""
    for _ in range(100):
        func()
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            func()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 4:
            return max(1, int(number * seconds / elapsed))
        number *= 4


class EventLoop:
    """An event loop a scenario keeps, so loop-bound clients live across runs.

    ``run(coro)`` runs a coroutine to completion on it from synchronous code
    (``asyncio.Runner`` is Python 3.11+; this works on 3.10 too). Closing
    cancels what is left, finishes async generators and closes the loop.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        if self.loop.is_closed():
            return
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()

    def __enter__(self) -> EventLoop:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
