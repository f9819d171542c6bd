"""Server API interop: RoomService calls through ``livekit-api``, their effects seen by official SDK clients.

Runs inside the private namespace (``tests.interop.test_api_interop``): the dev server in this process,
two official ``livekit`` clients in subprocesses, and the official ``livekit-api`` client here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import warnings
from collections.abc import AsyncIterator
from typing import Any

from livekit import api

from greenroom.devserver.config import ServerConfig
from greenroom.devserver.server import DevServer
from tests.interop.netns import HOST_IP, PeerProcess

__all__ = ["official_clients_see_room_service"]

V0: dict[str, Any] = {"single_peer_connection": False}


@contextlib.asynccontextmanager
async def _setup() -> AsyncIterator[tuple[DevServer, api.LiveKitAPI, PeerProcess, PeerProcess]]:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # livekit-api signs with PyJWT, which warns about the 6-byte dev secret (the dev defaults are the point).
    warnings.filterwarnings("ignore", message="The HMAC key is")
    async with DevServer(ServerConfig(bind=HOST_IP, port=0)) as server:
        peers = await asyncio.gather(*(PeerProcess("livekit", label).start() for label in ("alice", "bob")))
        lk = api.LiveKitAPI(server.http_url, "devkey", "secret")
        try:
            yield server, lk, peers[0], peers[1]
        finally:
            await lk.aclose()
            await asyncio.gather(*(peer.stop() for peer in peers), return_exceptions=True)


def _named(name: str, **fields: Any) -> Any:
    return lambda e: e.get("event") == name and all(e.get(k) == v for k, v in fields.items())


async def official_clients_see_room_service() -> dict[str, Any]:
    """Mute, send data, room and participant metadata, remove, delete — each seen by official clients."""
    async with _setup() as (server, lk, alice, bob):
        await alice.call("connect", url=server.url, token=server.mint_token("alice", "r"), options=V0)
        await bob.call("connect", url=server.url, token=server.mint_token("bob", "r"), options=V0)
        published = await alice.call("publish_tone", frequencies=[440.0], seconds=30.0, lead=0.0)
        await bob.call("listen_audio", identity="alice", timeout=15)
        sid = published["sid"]
        result: dict[str, Any] = {}

        muted = await lk.room.mute_published_track(
            api.MuteRoomTrackRequest(room="r", identity="alice", track_sid=sid, muted=True)
        )
        result["mute_answer"] = muted.track.muted
        result["bob_muted"] = (await bob.wait_event(_named("track_muted", sid=sid)))["from"]

        await lk.room.send_data(
            api.SendDataRequest(room="r", data=b"from the api", topic="api", destination_identities=["bob"])
        )
        got = await bob.wait_event(_named("data_received", topic="api"))
        result["data"] = {"from": got["from"], "topic": got["topic"], "data": got["data"]}

        await lk.room.update_room_metadata(api.UpdateRoomMetadataRequest(room="r", metadata="room-meta"))
        result["room_metadata"] = [
            (await p.wait_event(_named("room_metadata_changed", new="room-meta")))["new"]
            for p in (alice, bob)
        ]
        await lk.room.update_participant(
            api.UpdateParticipantRequest(room="r", identity="alice", metadata="m2")
        )
        result["participant_metadata"] = (
            await bob.wait_event(_named("participant_metadata_changed", identity="alice"))
        )["new"]

        await lk.room.remove_participant(api.RoomParticipantIdentity(room="r", identity="bob"))
        result["bob_removed"] = (await bob.wait_event(_named("disconnected")))["reason"]
        await alice.wait_event(_named("participant_disconnected", identity="bob"))
        await lk.room.delete_room(api.DeleteRoomRequest(room="r"))
        result["alice_deleted"] = (await alice.wait_event(_named("disconnected")))["reason"]
        result["rooms_after"] = [r.name for r in (await lk.room.list_rooms(api.ListRoomsRequest())).rooms]
        return result
