"""Waiting on conditions, never on time (issue 9, item 8).

A test never sleeps a fixed time before an assertion. It waits for what the assertion is about:

* :func:`wait_until` / :func:`wait_until_sync` poll a predicate with a deadline and fail with ``what``;
* :func:`before_marker` proves "nothing else arrived": the test sends a marker *after* the action that must
  produce nothing, on the same path (same sender, channel, topic — messages on one path are ordered), waits
  for the marker, and asserts on what arrived before it;
* :func:`resend_until` re-sends on a path that may drop a message (a peer that is still reconnecting);
* :func:`recorded_logs` collects what a component logged, for waiting on a decision that has no other
  observable trace (the dev server dropping a packet from a sender without the grant).

The only sleeps here are the polling intervals of these waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TypeVar

__all__ = [
    "LogRecords",
    "before_marker",
    "recorded_logs",
    "resend_until",
    "wait_until",
    "wait_until_sync",
]

T = TypeVar("T")
#: what is being waited for: a text, or a function giving it at the time of failure (to show the state)
What = str | Callable[[], str]
POLL = 0.01


def _timed_out(what: What, timeout: float) -> AssertionError:
    text = what() if callable(what) else what
    return AssertionError(f"timed out after {timeout} s waiting for {text}")


async def wait_until(
    predicate: Callable[[], T | Awaitable[T | None] | None],
    *,
    timeout: float = 5.0,
    what: What = "a condition",
    interval: float = POLL,
) -> T:
    """Poll ``predicate`` (a function or coroutine function) until it returns something truthy; return that.

    Raises:
        AssertionError: ``timeout`` seconds passed first (the message names ``what``).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            raise _timed_out(what, timeout)
        await asyncio.sleep(interval)  # the polling interval of a predicate wait


def wait_until_sync(
    predicate: Callable[[], T | None],
    *,
    timeout: float = 5.0,
    what: What = "a condition",
    interval: float = POLL,
) -> T:
    """The blocking form of :func:`wait_until`, for threads without a loop (``SyncRoom``, pykka)."""
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() >= deadline:
            raise _timed_out(what, timeout)
        time.sleep(interval)  # the polling interval of a predicate wait
    return result


async def before_marker(
    received: Callable[[], Sequence[T]],
    is_marker: Callable[[T], bool],
    *,
    timeout: float = 5.0,
    what: What = "the marker",
) -> list[T]:
    """Wait until a marker is among ``received()``; return what arrived before the first one.

    The caller sent the marker after the action under test, on the same ordered path, so anything that
    action produced on that path is in the returned list.
    """
    await wait_until(lambda: any(is_marker(item) for item in received()), timeout=timeout, what=what)
    items = list(received())
    return items[: next(i for i, item in enumerate(items) if is_marker(item))]


async def resend_until(
    send: Callable[[], Awaitable[object]],
    predicate: Callable[[], object],
    *,
    every: float = 0.2,
    timeout: float = 5.0,
    what: What = "a message to arrive",
) -> None:
    """``send()``, then wait up to ``every`` seconds for ``predicate``; again until ``timeout``.

    For a path that may lose a message while the test cannot know when it is ready again (a peer still
    reconnecting): each attempt waits on the predicate, not on time.
    """
    deadline = time.monotonic() + timeout
    while True:
        await send()
        remaining = deadline - time.monotonic()
        with contextlib.suppress(AssertionError):
            await wait_until(predicate, timeout=max(0.0, min(every, remaining)), what=what)
            return
        if time.monotonic() >= deadline:
            raise _timed_out(what, timeout)


class LogRecords(logging.Handler):
    """The records one logger (and its children) emitted while installed, in order."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def count(self, text: str) -> int:
        """How many records contain ``text`` in their formatted message."""
        return sum(text in record.getMessage() for record in self.records)


@contextlib.contextmanager
def recorded_logs(name: str) -> Iterator[LogRecords]:
    """Collect what logger ``name`` logs (at its effective level) inside the ``with`` block."""
    logger = logging.getLogger(name)
    handler = LogRecords()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
