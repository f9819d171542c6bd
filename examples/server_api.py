"""Drive a LiveKit server from a backend with the official ``livekit-api`` client — here ``greenroom serve``.

Run ``greenroom serve`` (or ``make serve``) in another terminal, then ``python examples/server_api.py``.
``LIVEKIT_URL`` (default ``http://127.0.0.1:7880``), ``LIVEKIT_API_KEY`` and ``LIVEKIT_API_SECRET`` (default
the dev server's ``devkey``/``secret``) pick the server; the same program drives livekit-server or LiveKit
Cloud. It creates a room, lists rooms, sends a data packet to everyone in the room, lists its participants
and, with ``--delete``, deletes it (everyone in it is disconnected with ROOM_DELETED).
"""

from __future__ import annotations

import asyncio
import os
import sys
import warnings

from livekit import api


async def main(room: str, delete: bool) -> None:
    url = os.environ.get("LIVEKIT_URL", "http://127.0.0.1:7880")
    key = os.environ.get("LIVEKIT_API_KEY", "devkey")
    secret = os.environ.get("LIVEKIT_API_SECRET", "secret")
    async with api.LiveKitAPI(url, key, secret) as lk:
        created = await lk.room.create_room(api.CreateRoomRequest(name=room, empty_timeout=300))
        print(f"room {created.name} ({created.sid})")
        rooms = await lk.room.list_rooms(api.ListRoomsRequest())
        print("rooms:", sorted(r.name for r in rooms.rooms))
        await lk.room.send_data(api.SendDataRequest(room=room, data=b"hello from the backend", topic="news"))
        people = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
        print("participants:", sorted(p.identity for p in people.participants))
        if delete:
            await lk.room.delete_room(api.DeleteRoomRequest(room=room))
            print(f"deleted {room}")


if __name__ == "__main__":
    warnings.filterwarnings("ignore", message="The HMAC key is")  # PyJWT on the 6-byte dev secret
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "demo", "--delete" in sys.argv))
