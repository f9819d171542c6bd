"""Fixtures for dev-server tests: every test runs a real server on 127.0.0.1 with an ephemeral port."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from greenroom.devserver.config import ServerConfig
from greenroom.devserver.server import DevServer

Scenario = Callable[[DevServer], Awaitable[Any]]


def run_with_server(scenario: Scenario, **config: Any) -> Any:
    """Start a DevServer on 127.0.0.1:0 in a fresh loop, run ``scenario(server)``, close the server."""

    async def main() -> Any:
        async with DevServer(ServerConfig(port=0, **config)) as server:
            return await scenario(server)

    return asyncio.run(main())


@pytest.fixture
def with_server() -> Callable[..., Any]:
    """``with_server(scenario, **config)`` runs an async scenario against a live server."""
    return run_with_server


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)
