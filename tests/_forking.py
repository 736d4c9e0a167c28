"""Running a check in a forked child, which reports through its exit status alone."""

from __future__ import annotations

import os
import traceback
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["fork_running", "in_child", "wait_child"]


def fork_running(check: Callable[[], bool]) -> int:
    """Fork; the child runs ``check`` and exits (0: true, 1: false, 2: it raised); the child's pid.

    The child never returns into the test: it ends with ``os._exit``, printing
    the traceback of what it raised.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python >= 3.12: fork with threads
        pid = os.fork()
    if pid == 0:
        code = 3
        try:
            code = 0 if check() else 1
        except BaseException:
            traceback.print_exc()
            code = 2
        finally:
            os._exit(code)
    return pid


def wait_child(pid: int) -> None:
    """Wait for a child of :func:`fork_running`; fail unless its check held."""
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def in_child(check: Callable[[], bool]) -> None:
    """Run ``check`` in a forked child; fail unless it held."""
    wait_child(fork_running(check))
