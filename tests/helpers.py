"""Shared test helpers (one place for polling, so no test sleeps a fixed time and hopes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["assert_eventually", "assert_eventually_async"]


def assert_eventually(
    predicate: Callable[[], bool], *, timeout: float = 5.0, interval: float = 0.01, message: str = ""
) -> None:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass (then fail with ``message``)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition not met within {timeout} s")
        time.sleep(interval)


async def assert_eventually_async(
    predicate: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float = 5.0,
    interval: float = 0.01,
    message: str = "",
) -> None:
    """The asyncio form of :func:`assert_eventually`; ``predicate`` may be a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
