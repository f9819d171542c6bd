"""Interop fault scenarios: numbered reliable packets between the official ``livekit`` SDK and greenroom while
the server sends ``leave{RECONNECT}`` to the sender or to the receiver (issue 17, item 6).

Each runs inside a private network namespace (:func:`tests.interop.netns.run_in_netns`) with the dev server
in-process. The sender publishes ``0, 1, 2 …`` at 50 packets/s (each in its own task, so publishing goes on
while it reconnects); after the fault and the recovery it stops, sends a marker and waits for it (one ordered
path: nothing sent before it is still on its way). The result: what the sender was told (``publish_data``
answered, failed; greenroom's ``data_undelivered`` counts) and what the receiver got, in order.
"""

from __future__ import annotations

import base64
import itertools
from typing import Any

from greenroom.codecs.models import DisconnectReason, LeaveAction
from tests.interop.scenarios_greenroom import GRANTS, V0, _named, _peers, _server

__all__ = ["stream_across_leave"]

ROOM = "faults"
TOPIC = "n"
MARKER = "end"


def _numbers(peer: Any) -> list[int]:
    return [
        int(base64.b64decode(e["data"]).decode())
        for e in peer.received("data_received")
        if e["topic"] == TOPIC
    ]


async def stream_across_leave(sender: str, victim: str) -> dict[str, Any]:
    """``sender`` ("livekit" or "greenroom") streams to the other SDK; the server tells ``victim`` ("sender"
    or "receiver") to reconnect."""
    receiver = "greenroom" if sender == "livekit" else "livekit"
    async with _server() as server, _peers((sender, "alice"), (receiver, "bob")) as (alice, bob):
        for peer in (alice, bob):
            token = server.mint_token(peer.label, ROOM, **GRANTS)
            options = V0 if peer.sdk == "livekit" else {}
            await peer.call("connect", url=server.url, token=token, options=options)
        await alice.wait_event(_named("participant_connected", identity="bob"), timeout=15)
        await alice.call("stream_start", rate=50.0, topic=TOPIC)
        await bob.wait_event(lambda e: len(_numbers(bob)) >= 20, timeout=20)
        target = alice if victim == "sender" else bob
        mark = len(target.events)
        assert server.end_session(
            ROOM, target.label, reason=DisconnectReason.MIGRATION, action=LeaveAction.RECONNECT
        )
        await target.wait_event(
            lambda e: e.get("event") == "reconnected" and any(e is x for x in target.events[mark:]),
            timeout=30,
        )
        count = len(_numbers(bob))
        await bob.wait_event(lambda e: len(_numbers(bob)) >= count + 50, timeout=30)
        sent = await alice.call("stream_stop", timeout=60)
        await alice.call("publish_data", data=base64.b64encode(MARKER.encode()).decode(), topic=MARKER)
        await bob.wait_event(_named("data_received", topic=MARKER), timeout=30)
        got = _numbers(bob)
        reported = sum(e["count"] for e in alice.received("data_undelivered") if e["identity"] == "bob")
        for peer in (alice, bob):
            await peer.call("disconnect")
        lost = sorted(set(sent["ok"]) - set(got))
        return {
            "sent": len(sent["ok"]),
            "failed": len(sent["failed"]),
            "received": len(got),
            "lost": lost,
            "duplicated": len(got) - len(set(got)),
            "reordered": sum(1 for a, b in itertools.pairwise(got) if b < a),
            "reported": reported,
        }
