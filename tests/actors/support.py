"""What the actor-core and supervision tests share: running on the runtime loop, and the leak checks.

Import the two fixtures into a test module to apply them there (they are autouse)::

    from tests.actors.support import fresh_runtime, no_leftover_actors, run
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pykka
import pytest

from greenroom.actors import core
from greenroom.runtime import loop as rt
from tests.helpers import assert_eventually

__all__ = ["fresh_runtime", "no_leftover_actors", "run"]

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 5.0) -> T:
    """Run ``coro`` on the runtime loop and wait for it."""
    return rt.run_sync(coro, timeout=timeout)


async def _stray_tasks() -> list[str]:
    current = asyncio.current_task()
    return sorted(
        task.get_name()
        for task in asyncio.all_tasks()
        if task is not current and task.get_name() != "greenroom-watchdog"
    )


@pytest.fixture(autouse=True)
def no_leftover_actors() -> Iterator[None]:
    """After each test: no actor is left running and no task but the watchdog is left on the loop."""
    yield
    try:
        assert_eventually(
            lambda: not pykka.ActorRegistry.get_all() and not core.live_actors(),
            timeout=3,
            message=f"actors left running: {pykka.ActorRegistry.get_all()} {core.live_actors()}",
        )
        assert run(_stray_tasks()) == []
    finally:
        pykka.ActorRegistry.stop_all(timeout=1)


@pytest.fixture(scope="module", autouse=True)
def fresh_runtime() -> Iterator[None]:
    """Each module starts and ends with a fresh runtime loop."""
    rt.shutdown()
    yield
    rt.shutdown()
