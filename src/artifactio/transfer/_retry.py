"""Retries of whole items: which errors, how long to wait, and one budget per transfer.

The stores already retry single requests (S3 and GCS: throttling, 5xx, dropped
connections; their ``retries`` option). A transfer retries a whole *item* (one
file moved, one deletion, one directory listed) only when an error still gets
through that is worth another go: :func:`is_transient` — the endpoint could not
be reached (``StoreConnectionError`` and every ``ConnectionError``), a timeout,
a checksum that did not match (``IntegrityError``), or a source that changed
while it was read (``ESTALE``). A missing file, a refused permission, a path
outside the store and every other error fail the item at once.

Waits grow exponentially with full jitter (a random wait between 0 and
``base * 2**attempt``, at most ``cap``), so items that failed together do not
retry together. A failure is retried in one layer only
(:func:`~artifactio._exceptions.was_retried`): what a store raises after its own
request retries (S3 and GCS with ``retries`` above 0) fails the item at once,
and a part of a large file that was retried alone is not retried again with
its whole file. One :class:`RetryBudget` is shared by every item of a transfer:
each retry spends a token and each success earns a tenth of one back, so a
flaky link costs a few retries while a service that is down makes the
transfer's items fail quickly instead of each one waiting out its own
retries — the retries of the layers and the items never multiply unbounded.
"""

from __future__ import annotations

import asyncio
import errno
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import anyio

from .._exceptions import IntegrityError, mark_retried, was_retried

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["RetryBudget", "RetryPolicy", "Retrying", "is_transient"]

T = TypeVar("T")

_TRANSIENT: tuple[type[BaseException], ...] = (
    ConnectionError,  # StoreConnectionError, resets, refused connections
    TimeoutError,
    asyncio.TimeoutError,
    IntegrityError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether an item that failed with ``exc`` is worth another attempt."""
    if isinstance(exc, _TRANSIENT):
        return True
    return isinstance(exc, OSError) and exc.errno == errno.ESTALE


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently one item is retried.

    Attributes:
        retries: Attempts after the first (0: never retry).
        base: The first wait's upper bound, in seconds.
        cap: The longest wait, in seconds.
    """

    retries: int = 3
    base: float = 0.1
    cap: float = 5.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be at least 0, not {self.retries}")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The wait before retry number ``attempt`` (1 for the first retry)."""
        bound = min(self.cap, self.base * (2 ** max(attempt - 1, 0)))
        return rng.uniform(0.0, bound)


class RetryBudget:
    """Retries shared by every item of one transfer.

    Args:
        tokens: Retries available at the start (and at most).
        refund: Tokens earned back by each success.
    """

    def __init__(self, tokens: float = 100.0, refund: float = 0.1) -> None:
        self.capacity = float(tokens)
        self.tokens = float(tokens)
        self.refund = refund

    def spend(self) -> bool:
        """Take one retry; ``False`` when the budget is exhausted."""
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def earn(self) -> None:
        """An item succeeded."""
        self.tokens = min(self.capacity, self.tokens + self.refund)


class Retrying:
    """Runs items with a :class:`RetryPolicy` against one shared :class:`RetryBudget`.

    Args:
        policy: Per-item retries and waits.
        budget: The transfer's budget.
        rng: The source of jitter.
        sleep: How to wait (``anyio.sleep``; tests may pass their own).
    """

    def __init__(
        self,
        policy: RetryPolicy,
        budget: RetryBudget | None = None,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.policy = policy
        self.budget = budget if budget is not None else RetryBudget()
        self._rng = rng if rng is not None else random.Random()
        self._sleep = sleep
        self.retried = 0

    async def pause(self, exc: BaseException, tries: int) -> bool:
        """After failure ``exc`` of try number ``tries`` (1 for the first): wait and say retry.

        Returns:
            ``True`` after waiting, when another attempt is allowed; ``False`` at
            once when ``exc`` is not transient, this item's retries are used up,
            or the shared budget is empty.
        """
        if was_retried(exc):
            return False  # the store's request retries, or an inner call, had their go
        if not is_transient(exc) or tries > self.policy.retries or not self.budget.spend():
            return False
        self.retried += 1
        await self._sleep(self.policy.delay(tries, self._rng))
        return True

    def succeeded(self) -> None:
        """An item succeeded (the shared budget earns a little back)."""
        self.budget.earn()

    async def call(
        self, attempt: Callable[[], Awaitable[T]], *, failed: Exception | None = None
    ) -> T:
        """Await ``attempt()``; again after a transient failure, while retries last.

        Args:
            attempt: One try.
            failed: The item's first try already failed with this (elsewhere):
                only the retries are left.

        Raises:
            Exception: The last failure, when it is not transient, or when this
                item's retries or the shared budget are used up.
        """
        tries = 0
        if failed is not None:
            tries = 1
            if not await self.pause(failed, tries):
                mark_retried(failed)
                raise failed
        while True:
            tries += 1
            try:
                result = await attempt()
            except Exception as exc:
                if await self.pause(exc, tries):
                    continue
                mark_retried(exc)  # an outer call does not retry it again
                raise
            self.succeeded()
            return result
