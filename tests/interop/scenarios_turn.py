"""Interop scenarios for ICE servers and TURN: greenroom clients that may use relayed candidates only, through
a real coturn (the OS package), started here on 127.0.0.1 inside the private network namespace.

With relay-only gathering a client has no host candidate at all, so if it connects, every packet went
through the TURN server — and coturn's own log counts the allocations and the bytes relayed. Runs inside
:func:`tests.interop.netns.run_in_netns`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any

from greenroom import rtc
from greenroom.codecs.models import IceServer
from greenroom.devserver.config import ServerConfig
from greenroom.devserver.server import DevServer
from tests.interop.netns import HOST_IP
from tests.interop.scenarios_greenroom import V0, _named, _peers
from tests.rtc.test_media import RATE, collect, heard, pitch, play, subscribed
from tests.waiting import wait_until

__all__ = ["relayed"]

PASSWORD, REALM = "s3cret", "greenroom.test"
#: One TURN user per phase, so coturn's log says which phase made each allocation, whenever the line arrives.
PHASES = ("server", "user", "tcp", "official")


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Coturn:
    """``turnserver`` on 127.0.0.1 with one long-term credential; its log is kept for the proof."""

    def __init__(self) -> None:
        self.port = _free_udp_port()
        self.url = f"turn:127.0.0.1:{self.port}?transport=udp"
        self.log = ""
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Coturn:
        self._proc = await asyncio.create_subprocess_exec(
            "turnserver",
            "-n",  # no configuration file
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={self.port}",
            "--min-port=49152",
            "--max-port=49252",
            "--lt-cred-mech",
            *(f"--user={name}:{PASSWORD}" for name in PHASES),
            f"--realm={REALM}",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--allow-loopback-peers",
            "--log-file=stdout",
            "--simple-log",
            "--verbose",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await wait_until(
            lambda: "listener opened on" in self.log or "Total General servers" in self.log,
            timeout=15,
            what=f"coturn listening; log: {self.log[-2000:]}",
        )
        return self

    async def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        async for line in self._proc.stdout:
            self.log += line.decode(errors="replace")

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log))

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            await self._proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)


def _allocations(turn: Coturn, user: str) -> int:
    return turn.count(rf"user <{user}>: incoming packet ALLOCATE processed, success")


def _relay_only(server: IceServer | None) -> rtc.RoomOptions:
    servers = [] if server is None else [rtc.IceServer(list(server.urls), server.username, server.credential)]
    config = rtc.RtcConfiguration(
        ice_transport_type=rtc.IceTransportType.TRANSPORT_RELAY, ice_servers=servers
    )
    return rtc.RoomOptions(rtc_config=config)


@contextlib.asynccontextmanager
async def _rooms(server: DevServer, *options: rtc.RoomOptions) -> AsyncIterator[list[rtc.Room]]:
    rooms: list[rtc.Room] = []
    try:
        for index, option in enumerate(options):
            room = rtc.Room()
            rooms.append(room)
            await room.connect(server.url, server.mint_token(f"p{index}", "turn"), option)
        yield rooms
    finally:
        for room in rooms:
            await room.disconnect()


async def _exchange(a: rtc.Room, b: rtc.Room) -> list[str]:
    """a → b and b → a, one reliable packet each way; what arrived."""
    got: list[str] = []
    for room in (a, b):
        room.on("data_received", lambda packet: got.append(packet.data.decode()))
    await wait_until(
        lambda: len(a.remote_participants) == 1 and len(b.remote_participants) == 1, what="peers"
    )
    await a.local_participant.publish_data(b"via turn from a")
    await b.local_participant.publish_data(b"via turn from b")
    await wait_until(lambda: len(got) == 2, timeout=20, what="both packets")
    return sorted(got)


async def _tone(a: rtc.Room, b: rtc.Room) -> float:
    """a publishes a 440 Hz tone, b subscribes: the pitch b hears (0 if nothing loud arrived)."""
    source = rtc.AudioSource(RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track("tone", source)
    await a.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    )
    publication = await subscribed(b, a.local_participant.identity, timeout=20)
    frames: list[Any] = []
    reader = asyncio.ensure_future(collect(rtc.AudioStream(publication.track), frames))
    try:
        position = 0
        for _ in range(20):  # up to 10 s of tone, until b hears it
            position = await play(source, 440.0, 0.5, position)
            if heard(frames) and abs(pitch(frames) - 440.0) < 10:
                break
        return round(pitch(frames)) if heard(frames) else 0.0
    finally:
        reader.cancel()


async def _official_pair(turn: Coturn, host: str) -> dict[str, Any]:
    """The reference: the official SDK (alice) and greenroom (bob) in their own processes, both relay-only
    through the same coturn by their ``RtcConfiguration``; one packet each way."""
    relay = {"url": turn.url, "username": "official", "password": PASSWORD}
    async with (
        DevServer(ServerConfig(bind=host, port=0)) as server,
        _peers(("livekit", "alice"), ("greenroom", "bob")) as (alice, bob),
    ):
        for peer in (alice, bob):
            options = V0 if peer.sdk == "livekit" else {}
            token = server.mint_token(peer.label, "turn-official")
            await peer.call(
                "connect", url=server.url, token=token, options=options, relay_via=relay, timeout=40
            )
        await alice.wait_event(_named("participant_connected", identity="bob"))
        await alice.send_data(b"from the official SDK")
        await bob.send_data(b"from greenroom")
        await bob.wait_event(_named("data_received", **{"from": "alice"}), timeout=30)
        await alice.wait_event(_named("data_received", **{"from": "bob"}), timeout=30)
        got = sorted(e["from"] for p in (alice, bob) for e in p.received("data_received"))
        for peer in (alice, bob):
            await peer.call("disconnect")
        return {"data_from": got}


async def relayed() -> dict[str, Any]:
    """Five rooms' worth of evidence, each through the same coturn:

    * ``from_server``: the dev server hands out the TURN server and ``force_relay``; clients use defaults;
      data both ways and a tone;
    * ``from_user``: the server says nothing; each client's ``RtcConfiguration`` names the TURN server and
      asks for relayed candidates only;
    * ``over_tcp``: as ``from_user``, one client reaching coturn over TCP (``?transport=tcp``);
    * ``bad_password``: as ``from_user`` with a wrong password — relay-only must then fail to connect;
    * ``official``: the official SDK beside greenroom, both relay-only, as the reference.
    """
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    result: dict[str, Any] = {}
    async with Coturn() as turn:
        handed_out = IceServer((turn.url,), "server", PASSWORD)
        config = ServerConfig(bind=HOST_IP, port=0, ice_servers=(handed_out,), force_relay=True)
        async with DevServer(config) as server, _rooms(server, rtc.RoomOptions(), rtc.RoomOptions()) as rooms:
            data = await _exchange(*rooms)
            result["from_server"] = {"data": data, "audio_hz": await _tone(*rooms)}
        async with DevServer(ServerConfig(bind=HOST_IP, port=0)) as server:
            good = IceServer((turn.url,), "user", PASSWORD)
            async with _rooms(server, _relay_only(good), _relay_only(good)) as rooms:
                result["from_user"] = {"data": await _exchange(*rooms)}
            tcp_url = turn.url.replace("transport=udp", "transport=tcp")
            by_tcp, by_udp = IceServer((tcp_url,), "tcp", PASSWORD), IceServer((turn.url,), "tcp", PASSWORD)
            async with _rooms(server, _relay_only(by_tcp), _relay_only(by_udp)) as rooms:
                result["over_tcp"] = {"data": await _exchange(*rooms)}
            bad = IceServer((turn.url,), "user", "wrong")
            room = rtc.Room()
            options = _relay_only(bad)
            options.connect_timeout = 6
            try:
                await room.connect(server.url, server.mint_token("lonely", "turn"), options)
                result["bad_password"] = "connected"
            except rtc.ConnectError as exc:
                result["bad_password"] = str(exc)
            finally:
                await room.disconnect()
        result["official"] = await _official_pair(turn, HOST_IP)
        # each allocation reports what it relayed when it is deleted (the clients refresh it to lifetime 0);
        # once all have, the log is complete and each phase's allocations are counted by their user
        await wait_until(lambda: turn.count(r"peer usage:") >= 17, timeout=30, what="coturn's usage reports")
        keys = dict(zip(PHASES, ("from_server", "from_user", "over_tcp", "official"), strict=True))
        for user, phase in keys.items():
            result[phase]["allocations"] = _allocations(turn, user)
        result["relayed"] = [[int(rb), int(sb)] for rb, sb in _usage(turn.log)]
        result["peers"] = sorted(set(re.findall(r"peer (\d+\.\d+\.\d+\.\d+)", turn.log)))
        result["refused_credentials"] = turn.count(r"user user credentials are incorrect")
        result["tcp_clients"] = turn.count(r"tcp or tls connected to")
    return result


def _usage(log: str) -> list[tuple[str, str]]:
    """``(bytes received from peers, bytes sent to peers)`` of each deleted allocation."""
    return re.findall(r"session \d+: peer usage: .*?rb=(\d+), sp=\d+, sb=(\d+)", log)
