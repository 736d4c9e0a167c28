"""Peak RSS of one operation, measured in a child process of its own.

The parent calls :func:`peak_growth` with a job (``"module:function"`` of a
module in this directory) and a JSON-ready spec; a fresh Python runs this file
as a script, imports the job and runs ``await job(spec, meter)``. The job opens
its clients and does any warm-up first, then wraps the part to measure in
``with meter:``. On entry the meter collects garbage, resets the kernel's
high-water mark of the process's resident set (``/proc/self/clear_refs``, value
5) and reads the current RSS; on exit it reads the high-water mark again
(``VmHWM``). The growth is that peak minus the RSS on entry: what the operation
needed beyond the process as it was, all threads included (obstore's Rust
runtime, boto3's pools). Where the mark cannot be reset (not Linux), the
child's ``ru_maxrss`` stands in for the peak, which can only overstate. The
child ends with ``os._exit`` once its result is printed.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from types import TracebackType

__all__ = ["Meter", "peak_growth"]

HERE = Path(__file__).resolve().parent


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Meter:
    """``with meter:`` around what a child job measures; the result in ``growth_mib``."""

    def __init__(self) -> None:
        self.baseline_kib = 0
        self.peak_kib = 0
        self.method = ""
        self.extra: dict[str, Any] = {}

    def __enter__(self) -> Meter:
        gc.collect()
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
                f.write("5")
            self.method = "VmHWM reset"
        except OSError:
            self.method = "ru_maxrss"
        self.baseline_kib = _status_kib("VmRSS") or 0
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        peak = _status_kib("VmHWM") if self.method == "VmHWM reset" else None
        if peak is None:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        self.peak_kib = peak

    def result(self) -> dict[str, Any]:
        return {
            "growth_mib": (self.peak_kib - self.baseline_kib) / 1024,
            "peak_mib": self.peak_kib / 1024,
            "baseline_mib": self.baseline_kib / 1024,
            "method": self.method,
            **self.extra,
        }


def peak_growth(job: str, spec: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
    """Run ``job`` in a child Python; its :meth:`Meter.result` (``growth_mib``...).

    Raises:
        RuntimeError: The child failed (its stderr's tail is in the message).
    """
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), job, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{job} failed in its child process (status {done.returncode}): {done.stderr[-2000:]}"
        )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _child(job: str, spec: dict[str, Any]) -> dict[str, Any]:
    module_name, func_name = job.split(":")
    func: Callable[[dict[str, Any], Meter], Coroutine[Any, Any, None]] = getattr(
        importlib.import_module(module_name), func_name
    )
    meter = Meter()
    asyncio.run(func(spec, meter))
    if not meter.method:
        raise RuntimeError(f"{job} never entered its meter")
    return meter.result()


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    print(json.dumps(_child(sys.argv[1], json.loads(sys.argv[2]))), flush=True)
    # The measurement is complete: skip the interpreter's teardown, where obstore's
    # runtime aborts the process now and then (SIGABRT after the result was printed).
    os._exit(0)
