"""Interop scenarios: a server ``leave{RECONNECT}`` to one side of a mixed official/greenroom room.

Each function runs inside a private network namespace (:func:`tests.interop.netns.run_in_netns`) with the
dev server in-process, so the scenario can call :meth:`DevServer.end_session` on its own loop. alice is the
official ``livekit`` SDK, bob is greenroom, both the same peer program (:mod:`tests.interop.peer`).

* :func:`greenroom_told_to_reconnect` — the server tells bob (greenroom) to reconnect; alice must see bob
  leave and come back and stay connected herself; data bob publishes once he reports reconnecting arrives;
  data flows both ways afterwards.
* :func:`official_told_to_reconnect` — the reverse: the server tells alice (official) to reconnect; bob must
  keep working, see alice leave and come back, and exchange data with her afterwards.
* :func:`greenroom_republishes_after_reconnect` — bob publishes a tone alice hears; after the server tells bob
  to reconnect he republishes it (``local_track_republished``, a new ``TR_`` sid) and alice hears it again.

Each returns every peer's events (times kept, as ``t``) so the test can check orders, plus what each side
received as data and its ``state`` after the reconnect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from greenroom.codecs.models import DisconnectReason, LeaveAction
from greenroom.devserver.server import DevServer
from tests.interop.netns import PeerProcess
from tests.interop.scenarios_greenroom import GRANTS, V0, _data, _named, _peers, _server
from tests.waiting import wait_until

__all__ = [
    "greenroom_republishes_after_reconnect",
    "greenroom_told_to_reconnect",
    "official_told_to_reconnect",
]

ROOM = "reconnect"
BARRIER = "barrier"  # the topic of the marker packets (left out of the results)
_KEPT = (
    "participant_connected",
    "participant_disconnected",
    "connection_state_changed",
    "reconnecting",
    "reconnected",
    "disconnected",
    "data_received",
)


async def _wait_after(
    peer: PeerProcess, mark: int, predicate: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    """Like :meth:`PeerProcess.wait_event`, but only events from index ``mark`` on count."""
    return await peer.wait_event(lambda e: predicate(e) and any(e is x for x in peer.events[mark:]), timeout)


async def _join(server: DevServer, alice: PeerProcess, bob: PeerProcess) -> None:
    for peer in (alice, bob):
        token = server.mint_token(peer.label, ROOM, **GRANTS)
        options = V0 if peer.sdk == "livekit" else {}
        await peer.call("connect", url=server.url, token=token, options=options)
    await alice.wait_event(_named("participant_connected", identity="bob"))
    # both directions work before anything happens (so a failure after is the reconnect's)
    await alice.send_data(b"a before", topic="before")
    await bob.send_data(b"b before", topic="before")
    await bob.wait_event(_named("data_received", topic="before"))
    await alice.wait_event(_named("data_received", topic="before"))


async def _after(alice: PeerProcess, bob: PeerProcess) -> dict[str, Any]:
    """Reliable data with a topic both ways once everyone is back; then the outcome."""
    await alice.send_data(b"a after", topic="after")
    await bob.send_data(b"b after", topic="after")
    await bob.wait_event(_named("data_received", topic="after"), timeout=15)
    await alice.wait_event(_named("data_received", topic="after"), timeout=15)
    # barrier: a duplicated or late packet from the other side comes before its marker (one ordered path)
    await alice.send_data(b"marker", topic=BARRIER)
    await bob.send_data(b"marker", topic=BARRIER)
    await bob.wait_event(_named("data_received", topic=BARRIER), timeout=15)
    await alice.wait_event(_named("data_received", topic=BARRIER), timeout=15)
    states = {p.label: await p.call("state") for p in (alice, bob)}

    def kept(e: dict[str, Any]) -> bool:
        return e.get("event") in _KEPT and e.get("topic") != BARRIER

    result = {
        "events": {
            p.label: [{k: v for k, v in e.items() if k != "data"} for e in p.events if kept(e)]
            for p in (alice, bob)
        },
        "data": {p.label: [d for d in _data(p) if d[2] != BARRIER] for p in (alice, bob)},
        "states": states,
    }
    for peer in (alice, bob):
        await peer.call("disconnect")
    return result


async def greenroom_told_to_reconnect() -> dict[str, Any]:
    """The server sends bob (greenroom) ``leave{MIGRATION, RECONNECT}`` and closes his session."""
    async with _server() as server, _peers(("livekit", "alice"), ("greenroom", "bob")) as (alice, bob):
        await _join(server, alice, bob)
        mark = len(alice.events)
        assert server.end_session(
            ROOM, "bob", reason=DisconnectReason.MIGRATION, action=LeaveAction.RECONNECT
        )
        # sent as soon as bob reports reconnecting: held if he still is, and delivered exactly once either way
        await bob.wait_event(_named("reconnecting"), timeout=10)
        await bob.send_data(b"b held", topic="held")
        await bob.wait_event(_named("reconnected"), timeout=20)
        await alice.wait_event(_named("data_received", topic="held"), timeout=15)
        await _wait_after(alice, mark, _named("participant_disconnected", identity="bob"), 20)
        await _wait_after(alice, mark, _named("participant_connected", identity="bob"), 20)
        return await _after(alice, bob)


async def official_told_to_reconnect() -> dict[str, Any]:
    """The server sends alice (official) ``leave{MIGRATION, RECONNECT}`` and closes her session."""
    async with _server() as server, _peers(("livekit", "alice"), ("greenroom", "bob")) as (alice, bob):
        await _join(server, alice, bob)
        mark = len(bob.events)
        assert server.end_session(
            ROOM, "alice", reason=DisconnectReason.MIGRATION, action=LeaveAction.RECONNECT
        )
        await _wait_after(bob, mark, _named("participant_disconnected", identity="alice"), 20)
        await _wait_after(bob, mark, _named("participant_connected", identity="alice"), 30)
        await alice.wait_event(_named("reconnected"), timeout=30)
        return await _after(alice, bob)


async def greenroom_republishes_after_reconnect() -> dict[str, Any]:
    """bob (greenroom) publishes a 440 Hz tone alice (official) listens to; then the server tells bob to
    reconnect: bob republishes it (a new ``TR_`` sid) and alice hears it again on the new track."""
    async with _server() as server, _peers(("livekit", "alice"), ("greenroom", "bob")) as (alice, bob):
        await _join(server, alice, bob)
        published = await bob.call("publish_tone", frequencies=[440.0], seconds=30.0, lead=0.5)
        old_sid = published["sid"]
        await alice.call("listen_audio", identity="bob", sid=old_sid)
        await alice.wait_event(lambda e: e.get("event") == "audio_window" and e["rms"] > 500, timeout=15)
        mark = len(alice.events)
        assert server.end_session(
            ROOM, "bob", reason=DisconnectReason.MIGRATION, action=LeaveAction.RECONNECT
        )
        republished = await bob.wait_event(_named("local_track_republished"), timeout=20)
        new_sid = republished["sid"]
        await _wait_after(alice, mark, _named("track_subscribed", sid=new_sid), 20)
        await alice.call("listen_audio", identity="bob", sid=new_sid)
        await alice.wait_event(
            lambda e: e.get("event") == "audio_window" and e["sid"] == new_sid and e["rms"] > 500, timeout=15
        )
        await wait_until(  # a second of the republished tone
            lambda: sum(w["rms"] > 500 for w in alice.received("audio_window") if w["sid"] == new_sid) >= 10,
            timeout=15,
            what="a second of the republished tone at alice",
        )
        kept = (
            "reconnected",
            "local_track_republished",
            "track_published",
            "track_unpublished",
            "track_subscribed",
            "track_unsubscribed",
            "audio_stream_ended",
        )
        result = {
            "old_sid": old_sid,
            "republished": republished,
            "events": {
                p.label: [
                    {k: v for k, v in e.items() if k != "t"} for e in p.events if e.get("event") in kept
                ]
                for p in (alice, bob)
            },
            "windows": {
                sid: [e for e in alice.received("audio_window") if e["sid"] == sid]
                for sid in (old_sid, new_sid)
            },
        }
        for peer in (alice, bob):
            await peer.call("disconnect")
        return result
