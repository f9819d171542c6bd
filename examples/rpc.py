"""RPC between two participants, written as for ``livekit.rtc`` — only the import differs.

A ``calculator`` participant registers two methods (an async ``add`` and a sync ``divide`` that answers
with an application error on division by zero); a ``client`` participant calls them and prints what comes
back, including the built-in errors (an unknown method, a request too slow to answer).

Where it connects: ``LIVEKIT_URL`` with ``LIVEKIT_API_KEY``/``LIVEKIT_API_SECRET`` (tokens minted here for
room ``rpc``), else an embedded greenroom dev server on an ephemeral loopback port.

Run it: ``python examples/rpc.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator

from greenroom import rtc

__all__ = ["main", "run"]


async def run(url: str, calculator_token: str, client_token: str) -> None:
    """Join both participants, make the calls, print the answers, leave."""
    calculator, client = rtc.Room(), rtc.Room()
    await calculator.connect(url, calculator_token)

    @calculator.local_participant.register_rpc_method("add")
    async def add(data: rtc.RpcInvocationData) -> str:
        numbers = json.loads(data.payload)
        return json.dumps(sum(numbers))

    def divide(data: rtc.RpcInvocationData) -> str:
        a, b = json.loads(data.payload)
        if b == 0:
            raise rtc.RpcError(4000, "division by zero", json.dumps({"dividend": a}))
        return json.dumps(a / b)

    async def slow(data: rtc.RpcInvocationData) -> str:
        await asyncio.sleep(10)  # longer than the caller waits: it gets 1502 and this is cancelled
        return "too late"

    calculator.local_participant.register_rpc_method("divide", divide)
    calculator.local_participant.register_rpc_method("slow", slow)

    await client.connect(url, client_token)
    me = client.local_participant
    print(
        "add ->", await me.perform_rpc(destination_identity="calculator", method="add", payload="[1, 2, 3]")
    )
    print(
        "divide ->",
        await me.perform_rpc(destination_identity="calculator", method="divide", payload="[7, 2]"),
    )
    for method, payload, timeout in (("divide", "[1, 0]", None), ("sqrt", "[4]", None), ("slow", "", 0.5)):
        try:
            await me.perform_rpc(
                destination_identity="calculator", method=method, payload=payload, response_timeout=timeout
            )
        except rtc.RpcError as error:
            print(f"{method} -> error {error.code}: {error.message} {error.data or ''}".rstrip())
    await client.disconnect()
    await calculator.disconnect()


# -- where to connect (not part of the RPC code: the official SDK would use livekit.api / livekit-server) --


@contextlib.asynccontextmanager
async def _server() -> AsyncIterator[tuple[str, str, str]]:
    url, key, secret = (
        os.environ.get(k, "") for k in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")
    )
    if url and key and secret:
        from greenroom.codecs.tokens import Claims, VideoGrants, mint_token

        def token(identity: str) -> str:
            return mint_token(
                key, secret, Claims(identity=identity, video=VideoGrants(room_join=True, room="rpc"))
            )

        yield url, token("calculator"), token("client")
        return
    from greenroom.devserver.config import ServerConfig
    from greenroom.devserver.server import DevServer

    async with DevServer(ServerConfig(port=0)) as server:
        yield server.url, server.mint_token("calculator", "rpc"), server.mint_token("client", "rpc")


async def main() -> None:
    """Run the example once."""
    async with _server() as (url, calculator_token, client_token):
        await run(url, calculator_token, client_token)


if __name__ == "__main__":
    asyncio.run(main())
