"""Interop scenarios for RPC: the official ``livekit`` SDK and greenroom calling each other, both ways.

Runs inside a private network namespace (:func:`tests.interop.netns.run_in_netns`) on the dev server; each
client is :mod:`tests.interop.peer` in its own process (``--sdk livekit`` / ``--sdk greenroom``).
:func:`rpc_both_ways` makes the same calls in each direction and returns every outcome, plus what each
callee's handler saw, so the test compares them with what the official SDK does to itself.
"""

from __future__ import annotations

from typing import Any

from tests.interop.netns import PeerProcess
from tests.interop.scenarios_greenroom import V0, _peers, _server

__all__ = ["rpc_both_ways"]

LIMIT = 15_360
HANDLERS: list[dict[str, Any]] = [
    {"method": "echo", "mode": "echo"},
    {"method": "fail", "mode": "error"},
    {"method": "crash", "mode": "raise"},
    {"method": "slow", "mode": "sleep", "seconds": 4.0},
    {"method": "huge", "mode": "size", "size": LIMIT + 1},
    {"method": "full", "mode": "size", "size": LIMIT},
]
CALLS: list[tuple[str, dict[str, Any]]] = [
    ("success", {"method": "echo", "payload": "hello → ünïcode"}),
    ("app_error", {"method": "fail", "payload": "p"}),
    ("handler_raised", {"method": "crash", "payload": "p"}),
    ("unknown_method", {"method": "missing", "payload": "p"}),
    ("response_timeout", {"method": "slow", "payload": "p", "response_timeout": 1.0}),
    ("no_ack", {"method": "echo", "payload": "p", "to": "nobody", "max_round_trip_latency": 1.0}),
    ("request_at_limit", {"method": "echo", "payload_size": LIMIT}),
    ("request_over_limit", {"method": "echo", "payload_size": LIMIT + 1}),
    ("response_at_limit", {"method": "full", "payload": "p"}),
    ("response_over_limit", {"method": "huge", "payload": "p"}),
]


async def _calls(caller: PeerProcess, callee: PeerProcess) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, params in CALLS:
        args = {"to": callee.label, **params}
        results[name] = await caller.call("perform_rpc", timeout=30, **args)
    return results


async def rpc_both_ways() -> dict[str, Any]:
    """alice (official) and bob (greenroom) each register the handlers and call the other; carol (official)
    calls alice too, the reference for what the official SDK does to itself."""
    async with (
        _server() as server,
        _peers(("livekit", "alice"), ("greenroom", "bob"), ("livekit", "carol")) as (alice, bob, carol),
    ):
        for peer in (alice, bob, carol):
            options = V0 if peer.sdk == "livekit" else {}
            token = server.mint_token(peer.label, "rpc")
            await peer.call("connect", url=server.url, token=token, options=options)
        for peer in (alice, bob):
            for handler in HANDLERS:
                await peer.call("register_rpc", **handler)
        outcomes = {
            "official_to_greenroom": await _calls(alice, bob),
            "greenroom_to_official": await _calls(bob, alice),
            "official_to_official": await _calls(carol, alice),
        }
        invoked = {
            p.label: [
                {k: e[k] for k in ("method", "caller", "payload_len", "timeout")}
                for e in p.received("rpc_invoked")
            ]
            for p in (alice, bob)
        }
        for peer in (alice, bob, carol):
            await peer.call("disconnect")
        return {"outcomes": outcomes, "invoked": invoked}
