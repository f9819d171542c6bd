"""A room client driven by JSON lines, for interop tests: ``python -m tests.interop.peer --sdk livekit``.

The same program runs the official SDK (``--sdk livekit``) or greenroom (``--sdk greenroom``): the only
difference is which ``rtc`` module it imports, which is exactly the compatibility claim under test. It runs
in its own process because the official SDK kills its process on an internal panic.

stdin: one command per line, ``{"id": 1, "op": "connect", ...}``. stdout: one JSON object per line, either a
reply ``{"reply": 1, "ok": true, "result": ...}`` / ``{"reply": 1, "ok": false, "error": "..."}`` or a room
event ``{"event": "data_received", ...}`` with the event's arguments flattened to JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib
import json
import sys
import time
from typing import Any


def _who(participant: Any) -> str | None:
    return None if participant is None else str(participant.identity)


class Peer:
    def __init__(self, rtc: Any) -> None:
        self.rtc = rtc
        self.room: Any = None

    def emit(self, obj: dict[str, Any]) -> None:
        obj.setdefault("t", time.monotonic())
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    def _listen(self, room: Any) -> None:
        def on(name: str, fn: Any) -> None:
            room.on(name, lambda *args: self.emit({"event": name, **fn(*args)}))

        on("participant_connected", lambda p: {"identity": p.identity, "sid": p.sid, "name": p.name})
        on("participant_disconnected", lambda p: {"identity": p.identity})
        on("participant_active", lambda p: {"identity": p.identity})
        on(
            "participant_metadata_changed",
            lambda p, old, new: {"identity": p.identity, "old": old, "new": new},
        )
        on("participant_name_changed", lambda p, old, new: {"identity": p.identity, "old": old, "new": new})
        on("participant_attributes_changed", lambda ch, p: {"identity": p.identity, "changed": dict(ch)})
        on("room_metadata_changed", lambda old, new: {"old": old, "new": new})
        on(
            "data_received",
            lambda pkt: {
                "data": base64.b64encode(bytes(pkt.data)).decode(),
                "kind": int(pkt.kind),
                "from": _who(pkt.participant),
                "topic": pkt.topic,
            },
        )
        on("sip_dtmf_received", lambda d: {"code": d.code, "digit": d.digit, "from": _who(d.participant)})
        on(
            "transcription_received",
            lambda segs, p, pub: {
                "from": _who(p),
                "segments": [{"id": s.id, "text": s.text, "final": s.final} for s in segs],
            },
        )
        on("connection_state_changed", lambda state: {"state": int(state)})
        on("disconnected", lambda reason: {"reason": int(reason)})

    async def op_connect(self, cmd: dict[str, Any]) -> Any:
        self.room = self.rtc.Room()
        self._listen(self.room)
        options = self.rtc.RoomOptions(**cmd.get("options", {}))
        started = time.monotonic()
        await self.room.connect(cmd["url"], cmd["token"], options)
        return {
            "connect_s": time.monotonic() - started,
            "sid": await self.room.sid,
            "identity": self.room.local_participant.identity,
            "remote": sorted(self.room.remote_participants),
        }

    async def op_publish_data(self, cmd: dict[str, Any]) -> Any:
        await self.room.local_participant.publish_data(
            base64.b64decode(cmd["data"]),
            reliable=cmd.get("reliable", True),
            destination_identities=cmd.get("destinations", []),
            topic=cmd.get("topic", ""),
        )

    async def op_publish_series(self, cmd: dict[str, Any]) -> Any:
        """Send ``count`` packets one after another, each carrying ``<index>:<time.monotonic()>``.

        CLOCK_MONOTONIC is system-wide, so a receiver's event ``t`` minus the stamped time is the one-way
        latency (benchmarks). ``interval`` seconds pass between sends so packets do not queue.
        """
        for index in range(cmd["count"]):
            await self.room.local_participant.publish_data(
                f"{index}:{time.monotonic()!r}".encode(),
                reliable=cmd.get("reliable", True),
                topic=cmd.get("topic", "series"),
            )
            await asyncio.sleep(cmd.get("interval", 0.002))
        return {"sent": cmd["count"]}

    async def op_set_metadata(self, cmd: dict[str, Any]) -> Any:
        await self.room.local_participant.set_metadata(cmd["metadata"])

    async def op_set_name(self, cmd: dict[str, Any]) -> Any:
        await self.room.local_participant.set_name(cmd["name"])

    async def op_set_attributes(self, cmd: dict[str, Any]) -> Any:
        await self.room.local_participant.set_attributes(cmd["attributes"])

    async def op_publish_dtmf(self, cmd: dict[str, Any]) -> Any:
        await self.room.local_participant.publish_dtmf(code=cmd["code"], digit=cmd["digit"])

    async def op_publish_transcription(self, cmd: dict[str, Any]) -> Any:
        segments = [self.rtc.TranscriptionSegment(**s) for s in cmd["segments"]]
        await self.room.local_participant.publish_transcription(
            self.rtc.Transcription(
                participant_identity=cmd["identity"], track_sid=cmd.get("track_sid", ""), segments=segments
            )
        )

    async def op_state(self, cmd: dict[str, Any]) -> Any:
        return {
            "connected": self.room.isconnected(),
            "remote": {
                ident: {"name": p.name, "metadata": p.metadata, "attributes": dict(p.attributes)}
                for ident, p in self.room.remote_participants.items()
            },
        }

    async def op_disconnect(self, cmd: dict[str, Any]) -> Any:
        await self.room.disconnect()

    async def handle(self, line: str) -> bool:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "exit":
            self.emit({"reply": cmd.get("id"), "ok": True, "result": None})
            return False
        try:
            result = await getattr(self, f"op_{op}")(cmd)
        except Exception as exc:
            self.emit({"reply": cmd.get("id"), "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        else:
            self.emit({"reply": cmd.get("id"), "ok": True, "result": result})
        return True


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sdk", choices=["livekit", "greenroom"], required=True)
    args = parser.parse_args()
    module = "livekit.rtc" if args.sdk == "livekit" else "greenroom.rtc"
    peer = Peer(importlib.import_module(module))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    peer.emit({"event": "ready", "sdk": args.sdk})
    while line := (await reader.readline()).decode():
        if not await peer.handle(line):
            break
    if peer.room is not None and peer.room.isconnected():
        await peer.room.disconnect()


if __name__ == "__main__":
    asyncio.run(main())
