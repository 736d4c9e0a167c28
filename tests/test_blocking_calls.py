"""``run_blocking``: blocking calls off the event loop, with anyio's cancellation rules.

Local stores run every file-system call through it. A call in a cancelled scope
is skipped; a call that started runs to its end and its result reaches the
caller (what it did to files is never lost), the cancellation arriving at the
caller's next checkpoint; the call sees the caller's context variables; a
forked child gets worker threads of its own.
"""

from __future__ import annotations

import contextvars
import os
import signal
import threading

import anyio
import pytest

from _forking import in_child
from artifactio._blocking import run_blocking

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("test_blocking_calls", default="unset")


async def test_the_call_runs_in_a_worker_thread_with_the_callers_context() -> None:
    VAR.set("caller")
    loop_thread = threading.get_ident()
    ident, seen = await run_blocking(lambda: (threading.get_ident(), VAR.get()))
    assert ident != loop_thread
    assert seen == "caller"


async def test_its_exception_is_raised_as_itself() -> None:
    def fail() -> None:
        raise FileNotFoundError(2, "gone", "x")

    with pytest.raises(FileNotFoundError, match="gone"):
        await run_blocking(fail)


async def test_a_cancelled_scope_skips_the_call() -> None:
    ran: list[int] = []
    with anyio.CancelScope() as scope:
        scope.cancel()
        await run_blocking(ran.append, 1)
    assert scope.cancelled_caught
    assert ran == []


async def test_a_started_call_ends_and_hands_its_result_before_the_cancellation() -> None:
    started, release = threading.Event(), threading.Event()
    results: list[str] = []

    def slow() -> str:
        started.set()
        release.wait(30)
        return "written"

    scope = anyio.CancelScope()

    async def caller() -> None:
        with scope:
            results.append(await run_blocking(slow))  # the result arrives despite the cancel
            await anyio.sleep(30)  # the cancellation lands here
            results.append("not reached")

    async with anyio.create_task_group() as tg:
        tg.start_soon(caller)
        await anyio.to_thread.run_sync(started.wait, 30)
        scope.cancel()
        await anyio.sleep(0.05)
        assert results == []  # still waiting for the thread, not abandoned
        release.set()
    assert results == ["written"]
    assert scope.cancelled_caught


async def test_many_calls_at_once() -> None:
    async def one(i: int) -> None:
        assert await run_blocking(pow, i, 2) == i * i

    async with anyio.create_task_group() as tg:
        for i in range(200):
            tg.start_soon(one, i)


async def test_a_forked_child_runs_calls_on_threads_of_its_own() -> None:
    assert await run_blocking(os.getpid) == os.getpid()  # the parent's pool has threads

    def check() -> bool:
        signal.alarm(20)  # a call queued to the parent's threads, which do not exist here, hangs
        return anyio.run(run_blocking, os.getpid) == os.getpid()

    in_child(check)
