"""Interop scenarios: greenroom clients and the official ``livekit`` SDK in one room on the dev server.

Each function runs inside a private network namespace (:func:`tests.interop.netns.run_in_netns`): the dev
server binds ``198.18.0.1``; every client is the same peer program (:mod:`tests.interop.peer`) with only the
``rtc`` import changed (``--sdk livekit`` or ``--sdk greenroom``), each in its own process.

* :func:`mixed_rooms` — official and greenroom clients in one room, in both join orders (two rooms run
  side by side): participant events, metadata/name/attributes, reliable and lossy data with topics and
  destinations, DTMF and transcription both ways, leave both ways.
* :func:`same_program_both_sdks` — the compatibility claim: one command sequence run by two official clients
  in one room and by two greenroom clients in another; the events each side observes are returned
  normalised (sids masked, times dropped) so the test can compare them.

A peer that dies mid-scenario (the official SDK aborts its process on an internal panic) shows up as
``ConnectionResetError`` on the next command; :func:`_peers` then re-raises with every peer's exit code and
stderr, which is where the panic message is.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

from greenroom.devserver.config import ServerConfig
from greenroom.devserver.server import DevServer
from tests.interop.netns import HOST_IP, PeerProcess

__all__ = ["mixed_rooms", "same_program_both_sdks"]

V0: dict[str, Any] = {"single_peer_connection": False}
GRANTS: dict[str, Any] = {"can_update_own_metadata": True}
# A transcription needs a TR_ track sid: the Rust SDK aborts its process on any other (see
# greenroom.actors.participant, ParticipantActor._publish). No such track exists, so publication is None.
TRACK = "TR_transcribed01"
SEGMENTS = [{"id": "s1", "text": "hello", "start_time": 0, "end_time": 5, "language": "en", "final": True}]
BARRIER = "barrier"  # the topic of marker packets (never part of a result)
RELIABLE_KIND, LOSSY_KIND = 1, 0  # DataPacketKind as the peers report it
_SID = re.compile(r"\b(PA|RM|TR)_[A-Za-z0-9]+")


class PeerDiedError(RuntimeError):
    """A scenario step failed; the message carries every peer's exit code and stderr."""


@contextlib.asynccontextmanager
async def _server() -> AsyncIterator[DevServer]:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    async with DevServer(ServerConfig(bind=HOST_IP, port=0)) as server:
        yield server


@contextlib.asynccontextmanager
async def _peers(*specs: tuple[str, str]) -> AsyncIterator[list[PeerProcess]]:
    """Start ``(sdk, label)`` peers; stop them all at the end, reporting their stderr if a step failed."""
    peers = list(await asyncio.gather(*(PeerProcess(sdk, label).start() for sdk, label in specs)))
    try:
        yield peers
    except Exception as exc:
        await asyncio.gather(*(peer.stop() for peer in peers), return_exceptions=True)
        report = "\n".join(
            f"--- {p.label} ({p.sdk}) rc={p._proc.returncode if p._proc else None}\n"
            f"{p.stderr.decode(errors='replace')[-2000:]}"
            for p in peers
        )
        raise PeerDiedError(f"{type(exc).__name__}: {exc}\n{report}") from exc
    else:
        await asyncio.gather(*(peer.stop() for peer in peers), return_exceptions=True)


def _named(name: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("event") == name and all(e.get(k) == v for k, v in fields.items())


def _data(peer: PeerProcess) -> list[list[Any]]:
    return [
        [base64.b64decode(e["data"]).decode(), e["from"], e["topic"], e["kind"]]
        for e in peer.received("data_received")
        if e["topic"] != BARRIER
    ]


def _events(peer: PeerProcess, *names: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "t"} for e in peer.events if e.get("event") in names]


_OBSERVED = (
    "participant_connected",
    "participant_disconnected",
    "participant_metadata_changed",
    "participant_name_changed",
    "participant_attributes_changed",
    "sip_dtmf_received",
    "transcription_received",
)


async def _mixed_room(server: DevServer, room: str, *, official_first: bool) -> dict[str, Any]:
    """alice: official agent; bob: greenroom agent; carol: greenroom, the bystander for destinations."""
    specs = (("livekit", "alice"), ("greenroom", "bob"), ("greenroom", "carol"))
    async with _peers(*specs) as (alice, bob, carol):
        token = server.mint_token
        tokens = {
            "alice": token("alice", room, kind="agent", **GRANTS),
            "bob": token("bob", room, kind="agent", **GRANTS),
            "carol": token("carol", room),
        }
        order = (alice, bob, carol) if official_first else (bob, carol, alice)
        connects = {}
        for peer in order:
            options = V0 if peer.sdk == "livekit" else {}
            connects[peer.label] = await peer.call(
                "connect", url=server.url, token=tokens[peer.label], options=options
            )
        for index, peer in enumerate(order):  # earlier members come in the JoinResponse, later ones as events
            for later in order[index + 1 :]:
                await peer.wait_event(_named("participant_connected", identity=later.label))

        # data: official -> greenroom and greenroom -> official; reliable and lossy; topics; destinations
        await alice.send_data(b"a->all", topic="t1")
        await alice.send_data(b"a->bob lossy", reliable=False, destinations=["bob"], topic="t3")
        await bob.send_data(b"b->all", topic="t2")
        await bob.send_data(b"b->alice", destinations=["alice"])
        await bob.send_data(b"b->alice lossy", reliable=False, destinations=["alice"], topic="t4")
        await alice.wait_event(_named("data_received", **{"from": "bob", "topic": ""}))
        await alice.wait_event(_named("data_received", topic="t4"))
        await bob.wait_event(_named("data_received", topic="t3"))
        await carol.wait_event(_named("data_received", topic="t2"))
        await carol.wait_event(_named("data_received", topic="t1"))

        # metadata, name, attributes, both ways
        for peer, who in ((bob, "bob"), (alice, "alice")):
            await peer.call("set_metadata", metadata=f"{who}-meta")
            await peer.call("set_name", name=f"{who.title()} X.")
            await peer.call("set_attributes", attributes={"role": who})
        await alice.wait_event(_named("participant_attributes_changed", identity="bob"))
        await bob.wait_event(_named("participant_attributes_changed", identity="alice"))

        # DTMF and transcription, both ways (both are agents: the server forwards their transcriptions)
        await alice.call("publish_dtmf", code=11, digit="#")
        await bob.call("publish_dtmf", code=3, digit="3")
        await alice.call("publish_transcription", identity="bob", track_sid=TRACK, segments=SEGMENTS)
        await bob.call("publish_transcription", identity="alice", track_sid=TRACK, segments=SEGMENTS)
        await bob.wait_event(_named("sip_dtmf_received", digit="#"))
        await alice.wait_event(_named("sip_dtmf_received", digit="3"))
        await bob.wait_event(_named("transcription_received"))
        await alice.wait_event(_named("transcription_received"))
        await carol.wait_event(_named("transcription_received", **{"from": "alice"}))

        # barrier: a marker from each sender to everyone, reliable and lossy; anything misrouted or
        # duplicated on those paths came before it (markers are left out of the results)
        for sender in (alice, bob):
            for reliable in (True, False):
                await sender.send_data(b"marker", reliable=reliable, topic=BARRIER)
        for receiver in (alice, bob, carol):
            for sender in (alice, bob):
                if sender is not receiver:
                    for kind in (RELIABLE_KIND, LOSSY_KIND):
                        marker = _named("data_received", topic=BARRIER, kind=kind, **{"from": sender.label})
                        await receiver.wait_event(marker)

        # leave: greenroom -> official in one order, official -> greenroom in the other
        leavers = (carol, bob) if official_first else (alice,)
        for leaver in leavers:
            await leaver.call("disconnect")
        stayers = [p for p in (alice, bob, carol) if p not in leavers]
        for stayer in stayers:
            for leaver in leavers:
                await stayer.wait_event(_named("participant_disconnected", identity=leaver.label))
        states = {p.label: await p.call("state") for p in stayers}
        for stayer in stayers:
            await stayer.call("disconnect")
        return {
            "connects": connects,
            "data": {p.label: _data(p) for p in (alice, bob, carol)},
            "states": states,
            "events": {p.label: _events(p, *_OBSERVED) for p in (alice, bob, carol)},
        }


async def mixed_rooms() -> dict[str, Any]:
    """The mixed room twice, side by side: official client first, and greenroom clients first."""
    async with _server() as server:
        official_first, greenroom_first = await asyncio.gather(
            _mixed_room(server, "official-first", official_first=True),
            _mixed_room(server, "greenroom-first", official_first=False),
        )
    return {"official_first": official_first, "greenroom_first": greenroom_first}


_UNCOMPARED = (None, "ready", "disconnected")


def _normalise(event: dict[str, Any]) -> dict[str, Any]:
    """Drop the time stamp and mask sids (``PA_…`` → ``PA_*``) so two runs compare equal."""
    out = {}
    for key, value in event.items():
        if key == "t":
            continue
        out[key] = _SID.sub(lambda m: f"{m.group(1)}_*", value) if isinstance(value, str) else value
    return out


async def _same_program(server: DevServer, sdk: str) -> dict[str, Any]:
    """One fixed command sequence between two clients of ``sdk`` (x acts, y watches, then y leaves)."""
    room = f"compat-{sdk}"
    async with _peers((sdk, "x"), (sdk, "y")) as (x, y):
        await x.call("connect", url=server.url, token=server.mint_token("x", room, kind="agent", **GRANTS))
        await y.call("connect", url=server.url, token=server.mint_token("y", room, **GRANTS))
        await x.wait_event(_named("participant_active", identity="y"))  # pins the order of what follows
        steps: list[tuple[str, dict[str, Any], Callable[[dict[str, Any]], bool]]] = [
            ("set_metadata", {"metadata": "m1"}, _named("participant_metadata_changed", new="m1")),
            ("set_name", {"name": "Ex"}, _named("participant_name_changed", new="Ex")),
            ("set_attributes", {"attributes": {"k": "v"}}, _named("participant_attributes_changed")),
            (
                "set_attributes",
                {"attributes": {"k": ""}},
                _named("participant_attributes_changed", changed={"k": ""}),
            ),
            (
                "publish_data",
                {"data": "aGk=", "topic": "t", "destinations": ["y"]},
                _named("data_received", topic="t"),
            ),
            ("publish_data", {"data": "bG9zc3k=", "reliable": False}, _named("data_received", topic="")),
            ("publish_dtmf", {"code": 10, "digit": "*"}, _named("sip_dtmf_received")),
            (
                "publish_transcription",
                {"identity": "y", "track_sid": TRACK, "segments": SEGMENTS},
                _named("transcription_received"),
            ),
        ]
        for op, params, seen in steps:
            await x.call(op, **params)
            await y.wait_event(seen)
        views = {"x": await x.call("state"), "y": await y.call("state")}
        await y.call("disconnect")
        await x.wait_event(_named("participant_disconnected", identity="y"))
        await x.call("disconnect")
        # After its own disconnect() the official client emits connection_state_changed(DISCONNECTED) but
        # only sometimes ``disconnected`` (its event task may already be gone): that one is not compared.
        for peer in (x, y):
            await peer.wait_event(_named("connection_state_changed", state=0))
            # a round trip: every event the peer program emitted before answering is in ``events``
            await peer.call("state")
        events = {
            p.label: [_normalise(e) for e in p.events if e.get("event") not in _UNCOMPARED] for p in (x, y)
        }
        return {"events": events, "views": views}


async def same_program_both_sdks() -> dict[str, Any]:
    """:func:`_same_program` with the official SDK and with greenroom, side by side on one server."""
    async with _server() as server:
        official, greenroom = await asyncio.gather(
            _same_program(server, "livekit"), _same_program(server, "greenroom")
        )
    return {"livekit": official, "greenroom": greenroom}
