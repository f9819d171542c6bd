"""Helpers for facade tests: a real dev server on 127.0.0.1:0 on the test's own loop (the user's loop),
while greenroom's actors run on the runtime loop thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pykka

from greenroom import rtc
from greenroom.actors.core import live_actors
from greenroom.devserver.config import ServerConfig
from greenroom.devserver.server import DevServer
from greenroom.runtime import loop as runtime

__all__ = ["Recorder", "actor_count", "connect", "run_with_server", "runtime_tasks", "thread_names"]


def run_with_server(scenario: Callable[[DevServer], Awaitable[Any]], **config: Any) -> Any:
    """Run ``scenario(server)`` in a fresh user loop with a dev server listening on 127.0.0.1:0."""

    async def main() -> Any:
        async with DevServer(ServerConfig(port=0, **config)) as server:
            return await scenario(server)

    return asyncio.run(main())


async def connect(server: DevServer, identity: str, room: str = "r1", **grants: Any) -> rtc.Room:
    """A connected greenroom Room for ``identity`` (metadata updates allowed)."""
    grants.setdefault("can_update_own_metadata", True)
    kind = grants.pop("kind", "")
    r = rtc.Room()
    await r.connect(server.url, server.mint_token(identity, room, kind=kind, **grants))
    return r


class Recorder:
    """Records room events as ``(name, args)`` with the thread each callback ran on."""

    def __init__(self, room: rtc.Room, *names: str) -> None:  # names: rtc.room.EventTypes
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self.threads: set[int] = set()
        for name in names:
            room.on(name, self._make(name))  # type: ignore[call-overload]

    def _make(self, name: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            self.threads.add(threading.get_ident())
            self.events.append((name, args))

        return record

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args in self.events if n == name]

    def names(self) -> list[str]:
        return [n for n, _ in self.events]


def actor_count() -> int:
    """Live greenroom actors plus pykka-registered ones."""
    return len(live_actors()) + len(pykka.ActorRegistry.get_all())


def runtime_tasks() -> int:
    """Tasks alive on the runtime loop (the watchdog included)."""

    async def count() -> int:
        current = asyncio.current_task()
        return sum(1 for t in asyncio.all_tasks() if t is not current)

    return runtime.run_sync(count(), timeout=5)


def thread_names() -> list[str]:
    return sorted(t.name for t in threading.enumerate())
