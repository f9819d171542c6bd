"""Shared test helpers (older names for :mod:`tests.waiting`: no test sleeps a fixed time and hopes)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tests.waiting import wait_until, wait_until_sync

__all__ = ["assert_eventually", "assert_eventually_async"]


def assert_eventually(
    predicate: Callable[[], bool], *, timeout: float = 5.0, interval: float = 0.01, message: str = ""
) -> None:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass (then fail with ``message``)."""
    wait_until_sync(predicate, timeout=timeout, interval=interval, what=message or "a condition")


async def assert_eventually_async(
    predicate: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float = 5.0,
    interval: float = 0.01,
    message: str = "",
) -> None:
    """The asyncio form of :func:`assert_eventually`; ``predicate`` may be a coroutine function."""
    await wait_until(predicate, timeout=timeout, interval=interval, what=message or "a condition")
