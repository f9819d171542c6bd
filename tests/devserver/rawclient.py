"""A raw-protocol LiveKit client for tests: websockets + greenroom codecs + runtime PeerTransports.

It speaks exactly what the wire needs and nothing more, so tests can watch every signal message, send
malformed input on purpose, and exchange data through the dev server on 127.0.0.1 without the Room client.
The client engineer may reuse it as a fixture::

    async with DevServer(ServerConfig(port=0)) as server:
        alice = await RawClient.join(server.url, server.mint_token("alice", "r"))
        bob = await RawClient.join(server.url, server.mint_token("bob", "r"))
        await alice.send_user(b"hi", topic="t")
        packet = await bob.next_packet()

Media: ``info = await alice.publish(track)`` (AddTrackRequest → TrackPublished → renegotiate the publisher
PC), ``await alice.unpublish(track)`` (the m-line goes ``inactive``), and on the other side
``remote = await bob.subscribed_track(info.sid)`` — the aiortc track whose subscriber-offer msid is
``PA_sid|TR_sid``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import websockets
from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamTrack
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from greenroom.codecs.models import TrackInfo, TrackSource, TrackType
from greenroom.codecs.packets import DataPacket, UserPacket, decode_packet, encode_packet
from greenroom.codecs.signalling import (
    AddTrackRequest,
    Answer,
    JoinParams,
    JoinResponse,
    Leave,
    Offer,
    ParticipantUpdate,
    PingReq,
    PongResp,
    SignalRequestMessage,
    SignalResponseMessage,
    TrackPublished,
    UpdateMetadata,
    decode_response,
    encode_request,
)
from greenroom.devserver.forwarding import max_bundle
from greenroom.runtime.ice import IcePolicy
from greenroom.runtime.peer import LOSSY, RELIABLE, DataReceived, PeerRole, PeerTransport, TrackReceived

__all__ = ["RawClient", "Received"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Received:
    """A data packet the client received, with the label of the channel it came on."""

    label: str
    packet: DataPacket


class RawClient:
    """One participant: a signal WebSocket, a subscriber PC (server offers) and a publisher PC (we offer)."""

    def __init__(self, ws: ClientConnection, join: JoinResponse, policy: IcePolicy) -> None:
        self.ws = ws
        self.join_response = join
        self.messages: list[SignalResponseMessage] = [join]
        self.packets: list[Received] = []
        self.closed = asyncio.Event()
        self._policy = policy
        self._changed = asyncio.Event()
        self.subscriber = PeerTransport(PeerRole.SUBSCRIBER, self, policy=policy)
        self.publisher: PeerTransport | None = None
        self._answer_lock = asyncio.Lock()
        self._answering: list[asyncio.Task[None]] = []
        self._reader = asyncio.create_task(self._read())
        self._sequence = 0
        self._request_id = 0
        self._offer_id = 1
        self._publish_lock = asyncio.Lock()
        #: subscriber mid -> (msid stream id, msid track id) from the latest server offer
        self.msids: dict[str, tuple[str, str]] = {}
        #: subscriber mid -> the remote aiortc track (``track`` events on the subscriber PC)
        self.remote_tracks: dict[str, MediaStreamTrack] = {}
        #: called with (subscriber RTCPeerConnection, remote track) in aiortc's ``track`` event
        self.on_track: Callable[[Any, MediaStreamTrack], None] | None = None

    @property
    def sid(self) -> str:
        """Our participant sid."""
        assert self.join_response.participant is not None
        return self.join_response.participant.sid

    # --- connecting -------------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        url: str,
        token: str | None,
        *,
        query_token: bool = False,
        params: JoinParams | None = None,
        policy: IcePolicy | None = None,
    ) -> RawClient:
        """Open the signal socket and read the JoinResponse (no peer connection waits)."""
        params = params or JoinParams(sdk="python", version="raw", protocol=16, client_protocol=2)
        headers = {}
        if token is not None and query_token:
            params = replace(params, access_token=token)
        elif token is not None:
            headers["Authorization"] = f"Bearer {token}"
        ws = await websockets.connect(
            f"{url}/rtc?{params.to_query()}", additional_headers=headers, max_size=None
        )
        first = decode_response(await asyncio.wait_for(_recv(ws), 5))
        if not isinstance(first, JoinResponse):
            await ws.close()
            raise ConnectionError(f"first message was {first!r}")
        # max-bundle: aiortc's default policy loses every track but the first when several are added in
        # one negotiation round (see the bundle trap in greenroom.devserver.forwarding).
        return cls(ws, first, max_bundle(policy or IcePolicy.loopback()))

    @classmethod
    async def join(cls, url: str, token: str, *, publish: bool = True, **kwargs: Any) -> RawClient:
        """Open, then connect the subscriber PC (and the publisher PC with its data channels)."""
        client = await cls.open(url, token, **kwargs)
        await client.subscriber.wait_connected(10)
        await client.subscriber.wait_channel_open(RELIABLE, 10)
        if publish:
            await client.start_publisher()
        return client

    async def start_publisher(self) -> None:
        """Create the publisher PC with ``_reliable``/``_lossy`` and negotiate it (offer id 1)."""
        self.publisher = PeerTransport(
            PeerRole.PUBLISHER, self, policy=self._policy, create_data_channels=True
        )
        sdp = await self.publisher.create_offer()
        await self.send(Offer(sdp=sdp, id=1))
        answer = await self.wait_message(Answer)
        assert answer.id == 1, "the server must echo the offer id"
        await self.publisher.set_remote_description(answer.sdp, "answer")
        await self.publisher.wait_connected(10)
        await self.publisher.wait_channel_open(RELIABLE, 10)
        await self.publisher.wait_channel_open(LOSSY, 10)

    # --- signal -----------------------------------------------------------------------------------

    async def send(self, message: SignalRequestMessage) -> None:
        """Send one SignalRequest."""
        await self.ws.send(encode_request(message))

    async def send_raw(self, frame: bytes | str) -> None:
        """Send an arbitrary frame (bad-input tests)."""
        await self.ws.send(frame)

    async def ping(self) -> None:
        """Send a ``ping_req``."""
        await self.send(PingReq(timestamp=int(time.time() * 1000)))

    async def signal_barrier(self, timeout: float = 10) -> list[SignalResponseMessage]:
        """Ping and wait for the pong; returns the signal messages that arrived before it.

        The server answers through the session's one ordered outbox, so whatever it had queued for us before
        it read the ping (an update, an offer) is among them: the barrier for "nothing else was sent".
        """
        pongs = sum(isinstance(m, PongResp) for m in self.messages)
        await self.ping()

        def before_pong() -> list[SignalResponseMessage] | None:
            seen = 0
            for index, message in enumerate(self.messages):
                seen += isinstance(message, PongResp)
                if seen > pongs:
                    return self.messages[:index]
            return None

        return await self._wait(before_pong, timeout)

    async def update_metadata(self, **fields: Any) -> int:
        """Send ``update_metadata``; returns its request id."""
        self._request_id += 1
        await self.send(UpdateMetadata(request_id=self._request_id, **fields))
        return self._request_id

    async def leave(self) -> None:
        """Send ``leave`` (CLIENT_INITIATED) and close."""
        await self.send(Leave())
        await self.close()

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                assert isinstance(frame, bytes)
                message = decode_response(frame)
                self.messages.append(message)
                if isinstance(message, Offer):  # answered aside, so the reader never stops reading
                    self._answering.append(asyncio.create_task(self._answer(message)))
                self._changed.set()
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            self._changed.set()

    async def _answer(self, offer: Offer) -> None:
        async with self._answer_lock:
            self.msids.update(_msids(offer.sdp))
            sdp = await self.subscriber.create_answer(offer.sdp)
            with contextlib.suppress(ConnectionClosed):
                await self.send(Answer(sdp=sdp, id=offer.id))

    async def wait_message(
        self, kind: type[T], predicate: Callable[[T], bool] = lambda _: True, timeout: float = 10
    ) -> T:
        """The first signal message of type ``kind`` (seen so far or arriving) matching ``predicate``."""
        return await self._wait(
            lambda: next((m for m in self.messages if isinstance(m, kind) and predicate(m)), None), timeout
        )

    async def wait_update(self, predicate: Callable[[Any], bool], timeout: float = 10) -> Any:
        """The first ParticipantInfo in a ``ParticipantUpdate`` matching ``predicate``."""

        def find() -> Any:
            for message in self.messages:
                if isinstance(message, ParticipantUpdate):
                    for info in message.participants:
                        if predicate(info):
                            return info
            return None

        return await self._wait(find, timeout)

    # --- data -------------------------------------------------------------------------------------

    async def send_packet(self, packet: DataPacket, *, reliable: bool = True) -> None:
        """Send a DataPacket on the publisher's ``_reliable`` (sequenced) or ``_lossy`` channel."""
        assert self.publisher is not None, "join with publish=True first"
        if reliable:
            self._sequence += 1
            packet = replace(packet, sequence=self._sequence)
        await self.publisher.send(RELIABLE if reliable else LOSSY, encode_packet(packet, max_size=1 << 20))

    async def send_user(
        self,
        payload: bytes,
        *,
        topic: str | None = None,
        reliable: bool = True,
        destinations: tuple[str, ...] = (),
    ) -> None:
        """Send a user packet."""
        await self.send_packet(
            DataPacket(UserPacket(payload=payload, topic=topic), destination_identities=destinations),
            reliable=reliable,
        )

    async def next_packet(
        self, predicate: Callable[[Received], bool] = lambda _: True, timeout: float = 5
    ) -> Received:
        """The first received packet matching ``predicate``; it is removed from :attr:`packets`."""
        found = await self._wait(lambda: next((p for p in self.packets if predicate(p)), None), timeout)
        self.packets.remove(found)
        return found

    def tell(self, message: object) -> None:
        """Peer-transport events (runtime ``Sink``)."""
        if isinstance(message, DataReceived):
            self.packets.append(Received(message.label, decode_packet(message.data, max_size=1 << 20)))
            self._changed.set()
        elif isinstance(message, TrackReceived) and message.role is PeerRole.SUBSCRIBER and message.mid:
            track = self.subscriber.remote_track(message.track_id)
            self.remote_tracks[message.mid] = track
            if self.on_track is not None:  # in aiortc's ``track`` event: before any RTP (e.g. to tap it)
                self.on_track(self.subscriber.pc, track)
            self._changed.set()

    # --- media ------------------------------------------------------------------------------------

    async def publish(
        self,
        *tracks: MediaStreamTrack,
        name: str = "",
        source: TrackSource | None = None,
        codec: str | None = None,
    ) -> list[TrackInfo]:
        """Publish tracks: ``add_track`` each (cid = aiortc track id), then one publisher renegotiation.

        ``codec`` (e.g. ``"video/h264"``) restricts the offered codecs of every track (plus RTX).
        """
        assert self.publisher is not None, "join with publish=True first"
        infos = []
        async with self._publish_lock:
            for track in tracks:
                infos.append(await self._add_track(track, name, source))
                sender = self.publisher.pc.addTrack(track)
                if codec is not None:
                    transceiver = next(t for t in self.publisher.pc.getTransceivers() if t.sender is sender)
                    capabilities = RTCRtpSender.getCapabilities(track.kind).codecs
                    transceiver.setCodecPreferences(
                        [c for c in capabilities if c.mimeType.lower() in (codec, "video/rtx")]
                    )
            await self._renegotiate_publisher()
        return infos

    async def _add_track(self, track: MediaStreamTrack, name: str, source: TrackSource | None) -> TrackInfo:
        kind = TrackType.AUDIO if track.kind == "audio" else TrackType.VIDEO
        src = source or (TrackSource.MICROPHONE if kind is TrackType.AUDIO else TrackSource.CAMERA)
        await self.send(AddTrackRequest(cid=track.id, name=name or track.id, type=kind, source=src))
        published = await self.wait_message(TrackPublished, lambda m: m.cid == track.id)
        assert published.track is not None
        return published.track

    async def unpublish(self, track: MediaStreamTrack) -> None:
        """Unpublish the LiveKit way: no signal message, the m-line stops sending (``inactive``)."""
        assert self.publisher is not None
        async with self._publish_lock:
            for transceiver in self.publisher.pc.getTransceivers():
                if transceiver.sender.track is track:
                    transceiver.direction = "inactive"
                    await transceiver.sender.stop()
            await self._renegotiate_publisher()

    async def _renegotiate_publisher(self) -> None:
        assert self.publisher is not None
        self._offer_id += 1
        offer_id = self._offer_id
        await self.send(Offer(sdp=await self.publisher.create_offer(), id=offer_id))
        answer = await self.wait_message(Answer, lambda a: a.id == offer_id)
        await self.publisher.set_remote_description(answer.sdp, "answer")

    async def subscribed_track(self, track_sid: str, timeout: float = 10) -> MediaStreamTrack:
        """The remote track whose msid (in the server's subscriber offer) is ``PA_sid|track_sid``."""

        def find() -> MediaStreamTrack | None:
            for mid, (stream, track_id) in reversed(self.msids.items()):
                if track_id == track_sid and stream.endswith("|" + track_sid) and mid in self.remote_tracks:
                    return self.remote_tracks[mid]
            return None

        return await self._wait(find, timeout)

    # --- helpers ----------------------------------------------------------------------------------

    async def _wait(self, find: Callable[[], T | None], timeout: float) -> T:
        deadline = time.monotonic() + timeout
        while (found := find()) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"not seen within {timeout} s; last messages: {self.messages[-5:]!r}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                continue
        return found

    async def close(self) -> None:
        """Close the socket and both peer connections."""
        await self.ws.close()
        await self._reader
        await asyncio.gather(*self._answering, return_exceptions=True)
        await self.subscriber.close()
        if self.publisher is not None:
            await self.publisher.close()


def _msids(sdp: str) -> dict[str, tuple[str, str]]:
    """mid -> (msid stream id, msid track id) of every media section of an SDP (("", "") if not sending)."""
    found: dict[str, tuple[str, str]] = {}
    for section in sdp.split("\nm=")[1:]:
        lines = [line.strip() for line in section.splitlines()]
        mid = next((line[6:] for line in lines if line.startswith("a=mid:")), "")
        msid = next((line[7:].split() for line in lines if line.startswith("a=msid:")), [])
        sending = "a=sendonly" in lines or "a=sendrecv" in lines
        if mid:
            found[mid] = (msid[0], msid[1]) if sending and len(msid) == 2 else ("", "")
    return found


async def _recv(ws: Any) -> bytes:
    frame = await ws.recv()
    assert isinstance(frame, bytes), "signal frames are binary"
    return frame
