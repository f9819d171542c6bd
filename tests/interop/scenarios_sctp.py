"""Interop scenario for :mod:`greenroom.runtime.sctp`: bursts through the dev server, official ⇄ greenroom.

Runs inside a private network namespace (:func:`tests.interop.netns.run_in_netns`). alice (official SDK)
and bob (greenroom) each send a burst of reliable packets to the room at the same time, back to back; the
dev server (this process, SCTP bundling and delayed SACKs on) relays them, so each direction crosses
libwebrtc's SCTP stack and greenroom's bundled one twice. Returns the indices each side received, in
arrival order, and the server's bundling counters.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from typing import Any

from greenroom.runtime import sctp
from tests.interop.scenarios_greenroom import V0, _peers, _server
from tests.waiting import wait_until

__all__ = ["bursts_both_ways"]


def _indices(events: list[dict[str, Any]], topic: str) -> list[int]:
    return [int(base64.b64decode(e["data"]).split(b":")[0]) for e in events if e.get("topic") == topic]


async def _until(peer: Any, topic: str, count: int, timeout: float) -> None:
    # on a timeout the caller still reports what came (the test asserts on it)
    with contextlib.suppress(AssertionError):
        await wait_until(
            lambda: len(_indices(peer.received("data_received"), topic)) >= count,
            timeout=timeout,
            interval=0.1,
            what=f"{count} packets on {topic}",
        )


async def bursts_both_ways(count: int = 2000) -> dict[str, Any]:
    """``count`` reliable packets official→greenroom and greenroom→official, concurrently."""
    async with _server() as server, _peers(("livekit", "alice"), ("greenroom", "bob")) as (alice, bob):
        before = sctp.stats()
        await alice.call("connect", url=server.url, token=server.mint_token("alice", "burst"), options=V0)
        await bob.call("connect", url=server.url, token=server.mint_token("bob", "burst"), options={})
        await alice.wait_event(lambda e: e.get("event") == "participant_connected")  # bob joined 2nd
        sends = [
            alice.call("publish_series", count=count, interval=0, topic="o2g", timeout=60),
            bob.call("publish_series", count=count, interval=0, topic="g2o", timeout=60),
        ]
        await asyncio.gather(*sends)
        await asyncio.gather(_until(bob, "o2g", count, 30), _until(alice, "g2o", count, 30))
        after = sctp.stats()
        result = {
            "official_to_greenroom": _indices(bob.received("data_received"), "o2g"),
            "greenroom_to_official": _indices(alice.received("data_received"), "g2o"),
            "server_sctp": {k: after[k] - before[k] for k in after},
        }
        for peer in (alice, bob):
            await peer.call("disconnect")
        return result
