"""A room client driven by JSON lines, for interop tests: ``python -m tests.interop.peer --sdk livekit``.

The same program runs the official SDK (``--sdk livekit``) or greenroom (``--sdk greenroom``): the only
difference is which ``rtc`` module it imports, which is exactly the compatibility claim under test. It runs
in its own process because the official SDK kills its process on an internal panic.

stdin: one command per line, ``{"id": 1, "op": "connect", ...}``. stdout: one JSON object per line, either a
reply ``{"reply": 1, "ok": true, "result": ...}`` / ``{"reply": 1, "ok": false, "error": "..."}`` or a room
event ``{"event": "data_received", ...}`` with the event's arguments flattened to JSON.

Media commands use only the public ``livekit.rtc`` API (so they run against greenroom's facade too):
``publish_tone`` (an ``AudioSource`` playing a sequence of sine tones, ``tone`` events mark each start),
``listen_audio`` (an ``AudioStream`` on a subscribed track; ``audio_window`` events give the FFT peak and
RMS of each window), ``publish_colours`` (alias ``publish_colors``) / ``watch_video`` (solid-colour RGBA
frames through a ``VideoSource``, ``colour`` events mark each start; ``video_frame`` events give each
received frame's size and mean RGB) and ``set_muted``. Media room events
(``track_subscribed`` …) are only listened to once a media command ran, so data-only peers see no change.

A full reconnect shows up as ``reconnecting`` / ``reconnected`` events (no arguments) and, per republished
local track, ``local_track_republished`` (``sid``, ``previous_sid``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import importlib
import json
import os
import sys
import tempfile
import time
from typing import Any

import numpy as np

from tests.interop.peer_e2ee import E2eeOps, encryption_options
from tests.waiting import wait_until

_RATE = 48_000


def _write_file(path: str, data: bytes) -> None:
    with open(path, "wb") as file:
        file.write(data)


def _who(participant: Any) -> str | None:
    return None if participant is None else str(participant.identity)


class Peer(E2eeOps):
    def __init__(self, rtc: Any) -> None:
        self.rtc = rtc
        self.room: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._media_events = False
        self._publications: dict[str, Any] = {}

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
        on("reconnecting", lambda: {})
        on("reconnected", lambda: {})
        if hasattr(room, "dropped_events"):  # greenroom's report of reliable packets that may be lost
            on("data_undelivered", lambda identity, count, reason: {"identity": identity, "count": count})
        on(
            "local_track_republished",
            lambda pub, previous_sid: {"sid": pub.sid, "previous_sid": previous_sid},
        )

    async def op_connect(self, cmd: dict[str, Any]) -> Any:
        self.room = self.rtc.Room()
        self._listen(self.room)
        options = dict(cmd.get("options", {}))
        if "encryption" in options:
            self.listen_e2ee(self.room)
            options["encryption"] = encryption_options(self.rtc, options["encryption"])
        options = self.rtc.RoomOptions(**options)
        if "relay_via" in cmd:  # relayed candidates only, through this TURN server (same API on both SDKs)
            turn = cmd["relay_via"]
            server = self.rtc.IceServer(
                urls=[turn["url"]], username=turn["username"], password=turn["password"]
            )
            relay = self.rtc.IceTransportType.TRANSPORT_RELAY
            options.rtc_config = self.rtc.RtcConfiguration(ice_transport_type=relay, ice_servers=[server])
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
            await asyncio.sleep(cmd.get("interval", 0.002))  # pacing of the series (benchmarks)
        return {"sent": cmd["count"]}

    async def op_stream_start(self, cmd: dict[str, Any]) -> Any:
        """Publish ``0, 1, 2 …`` (text, reliable, ``topic``) every ``1/rate`` s, each in its own task so that
        publishing goes on while the room reconnects, until ``stream_stop``."""
        self._stream: dict[str, list[int]] = {"ok": [], "failed": []}

        async def send(n: int) -> None:
            try:
                await self.room.local_participant.publish_data(str(n), reliable=True, topic=cmd["topic"])
            except Exception:
                self._stream["failed"].append(n)
            else:
                self._stream["ok"].append(n)

        async def pump() -> None:
            n = 0
            sends: set[asyncio.Task[None]] = set()
            self._stream_sends = sends
            while True:
                task = asyncio.create_task(send(n))
                sends.add(task)
                task.add_done_callback(sends.discard)
                n += 1
                await asyncio.sleep(1 / cmd["rate"])

        self._stream_pump = asyncio.create_task(pump())

    async def op_stream_stop(self, cmd: dict[str, Any]) -> Any:
        """Stop the stream, wait for every send to be answered: ``{"ok": [...], "failed": [...]}``."""
        self._stream_pump.cancel()
        await asyncio.gather(self._stream_pump, return_exceptions=True)
        await asyncio.gather(*self._stream_sends, return_exceptions=True)
        return self._stream

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

    async def op_agent_transcript(self, cmd: dict[str, Any]) -> Any:
        """One transcript segment as livekit-agents' room output sends it (voice/room_io/_output.py): the
        ``Transcription`` packet, then a text stream on ``lk.transcription`` written on behalf of the
        transcribed participant with the segment id, final flag and track id as attributes."""
        segment = cmd["segment"]
        await self.op_publish_transcription(
            {"identity": cmd["identity"], "track_sid": cmd["track_sid"], "segments": [segment]}
        )
        attributes = {
            "lk.transcription_final": "true" if segment["final"] else "false",
            "lk.transcribed_track_id": cmd["track_sid"],
            "lk.segment_id": segment["id"],
        }
        writer = await self.room.local_participant.stream_text(
            topic="lk.transcription", sender_identity=cmd["identity"], attributes=attributes
        )
        await writer.write(segment["text"])
        await writer.aclose()

    # --- RPC -----------------------------------------------------------------------------------------

    async def op_register_rpc(self, cmd: dict[str, Any]) -> Any:
        """Answer ``method`` as ``mode`` says: ``echo``, ``error`` (RpcError 4001), ``raise`` (ValueError),
        ``sleep`` (``seconds``, then ``"late"``), ``size`` (a response of ``size`` characters)."""
        rtc, mode = self.rtc, cmd.get("mode", "echo")

        async def handler(data: Any) -> str:
            self.emit(
                {
                    "event": "rpc_invoked",
                    "method": data.method,
                    "caller": data.caller_identity,
                    "payload_len": len(data.payload),
                    "timeout": data.response_timeout,
                    "request_id": data.request_id,
                }
            )
            if mode == "error":
                raise rtc.RpcError(4001, "custom failure", '{"detail": 1}')
            if mode == "raise":
                raise ValueError("a bug in the handler")
            if mode == "sleep":
                await asyncio.sleep(cmd.get("seconds", 5.0))  # a slow handler (the caller's deadline test)
                return "late"
            if mode == "size":
                return "r" * int(cmd["size"])
            return str(data.payload)

        self.room.local_participant.register_rpc_method(cmd["method"], handler)

    async def op_perform_rpc(self, cmd: dict[str, Any]) -> Any:
        """Call and report the outcome (never raises): ``payload``, or ``payload_size`` characters of x."""
        payload = cmd["payload"] if "payload" in cmd else "x" * cmd["payload_size"]
        options = {k: cmd[k] for k in ("response_timeout", "max_round_trip_latency") if k in cmd}
        started = time.monotonic()
        try:
            answer = await self.room.local_participant.perform_rpc(
                destination_identity=cmd["to"], method=cmd["method"], payload=payload, **options
            )
        except self.rtc.RpcError as error:
            return {
                "ok": False,
                "code": error.code,
                "message": error.message,
                "data": error.data,
                "s": time.monotonic() - started,
            }
        return {"ok": True, "len": len(answer), "head": answer[:40], "s": time.monotonic() - started}

    # --- data streams --------------------------------------------------------------------------------

    def _stream_event(self, kind: str, topic: str, identity: str, reader: Any) -> None:
        async def read() -> None:
            event: dict[str, Any] = {
                "event": "stream_received",
                "kind": kind,
                "topic": topic,
                "from": identity,
            }
            digest, length, chunks = hashlib.sha256(), 0, 0
            try:
                async for chunk in reader:
                    if topic == "lk.transcription":  # transcripts are short: the text itself is reported
                        event["text"] = event.get("text", "") + chunk
                    data = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
                    digest.update(data)
                    length, chunks = length + len(chunk), chunks + 1
            except self.rtc.StreamError as error:
                event["error"] = error.description
            info = reader.info
            event.update(
                length=length,
                chunks=chunks,
                sha256=digest.hexdigest(),
                stream_id=info.stream_id,
                mime_type=info.mime_type,
                size=info.size,
                attributes=dict(info.attributes or {}),
                name=getattr(info, "name", None),
            )
            self.emit(event)

        self._spawn(read())

    async def op_handle_streams(self, cmd: dict[str, Any]) -> Any:
        """Register text and/or byte handlers on ``topic`` that read each stream and report it."""
        topic = cmd["topic"]
        if cmd.get("text", True):
            self.room.register_text_stream_handler(
                topic, lambda reader, identity: self._stream_event("text", topic, identity, reader)
            )
        if cmd.get("bytes", True):
            self.room.register_byte_stream_handler(
                topic, lambda reader, identity: self._stream_event("bytes", topic, identity, reader)
            )

    @staticmethod
    def _text(cmd: dict[str, Any]) -> str:
        return str(cmd["text"]) if "text" in cmd else str(cmd.get("unit", "é")) * int(cmd["repeat"])

    async def op_cpu(self, cmd: dict[str, Any]) -> Any:
        """This process's CPU time so far (every thread), in seconds."""
        return {"cpu_s": time.process_time()}

    async def op_rpc_series(self, cmd: dict[str, Any]) -> Any:
        """``count`` calls one after another; each round trip (perform_rpc → its answer) in milliseconds."""
        latencies = []
        for _ in range(cmd["count"]):
            started = time.perf_counter()
            await self.room.local_participant.perform_rpc(
                destination_identity=cmd["to"], method=cmd["method"], payload=cmd.get("payload", "ping")
            )
            latencies.append((time.perf_counter() - started) * 1000)
        return {"latency_ms": latencies}

    async def op_send_text(self, cmd: dict[str, Any]) -> Any:
        text = self._text(cmd)
        started = time.monotonic()
        info = await self.room.local_participant.send_text(
            text,
            topic=cmd["topic"],
            destination_identities=cmd.get("destinations"),
            attributes=cmd.get("attributes"),
        )
        return {
            "stream_id": info.stream_id,
            "size": info.size,
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "started": started,
        }

    async def op_send_bytes(self, cmd: dict[str, Any]) -> Any:
        data = os.urandom(cmd["size"])
        info = await self.room.local_participant.send_bytes(
            data, topic=cmd["topic"], name=cmd.get("name"), destination_identities=cmd.get("destinations")
        )
        return {"stream_id": info.stream_id, "size": info.size, "sha256": hashlib.sha256(data).hexdigest()}

    async def op_send_file(self, cmd: dict[str, Any]) -> Any:
        data = os.urandom(cmd["size"])
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, cmd.get("name", "file.bin"))
            await asyncio.to_thread(_write_file, path, data)
            started = time.monotonic()
            info = await self.room.local_participant.send_file(
                path, topic=cmd["topic"], destination_identities=cmd.get("destinations")
            )
        return {
            "stream_id": info.stream_id,
            "name": info.name,
            "mime_type": info.mime_type,
            "size": info.size,
            "sha256": hashlib.sha256(data).hexdigest(),
            "s": time.monotonic() - started,
            "started": started,
        }

    async def op_stream_text(self, cmd: dict[str, Any]) -> Any:
        writer = await self.room.local_participant.stream_text(
            topic=cmd["topic"],
            attributes=cmd.get("attributes"),
            destination_identities=cmd.get("destinations"),
        )
        for part in cmd["parts"]:
            await writer.write(part)
        await writer.aclose(reason=cmd.get("reason", ""), attributes=cmd.get("close_attributes"))
        return {"stream_id": writer.info.stream_id}

    async def op_stream_bytes(self, cmd: dict[str, Any]) -> Any:
        writer = await self.room.local_participant.stream_bytes(
            cmd.get("name", "stream.bin"), topic=cmd["topic"], destination_identities=cmd.get("destinations")
        )
        digest = hashlib.sha256()
        for size in cmd["sizes"]:
            data = os.urandom(size)
            digest.update(data)
            await writer.write(data)
        await writer.aclose()
        return {"stream_id": writer.info.stream_id, "sha256": digest.hexdigest()}

    async def op_send_raw_streams(self, cmd: dict[str, Any]) -> Any:
        """greenroom only: crafted stream packets (hostile input), ``packets`` as
        ``{"header": {...}} | {"chunk": [id, index, text]} | {"trailer": [id, reason]}``."""
        from greenroom.codecs import packets  # only the greenroom peer is asked this

        send = self.room.local_participant._streams.packet
        destinations = tuple(cmd.get("destinations", ()))
        for spec in cmd["packets"]:
            value: Any
            if "header" in spec:
                fields = spec["header"]
                value = packets.StreamHeader(
                    stream_id=fields["id"],
                    topic=fields["topic"],
                    total_length=fields.get("total_length"),
                    content_header=packets.ByteHeader("raw") if fields.get("bytes") else packets.TextHeader(),
                )
            elif "chunk" in spec:
                stream_id, index, text = spec["chunk"]
                value = packets.StreamChunk(stream_id, index, text.encode())
            else:
                stream_id, reason = spec["trailer"]
                value = packets.StreamTrailer(stream_id, reason)
            await send(value, destinations)

    async def op_state(self, cmd: dict[str, Any]) -> Any:
        return {
            "connected": self.room.isconnected(),
            "remote": {
                ident: {"name": p.name, "metadata": p.metadata, "attributes": dict(p.attributes)}
                for ident, p in self.room.remote_participants.items()
            },
        }

    # --- media -------------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _listen_media(self) -> None:
        if self._media_events:
            return
        self._media_events = True

        def on(name: str, fn: Any) -> None:
            self.room.on(name, lambda *args: self.emit({"event": name, **fn(*args)}))

        def track(pub: Any, p: Any) -> dict[str, Any]:
            features = [int(f) for f in pub.frame_metadata_features]
            return {"sid": pub.sid, "kind": int(pub.kind), "from": _who(p), "features": features}

        on("track_published", track)
        on("track_unpublished", track)
        on("track_subscribed", lambda t, pub, p: track(pub, p))
        on("track_unsubscribed", lambda t, pub, p: track(pub, p))
        on("track_muted", lambda p, pub: track(pub, p))
        on("track_unmuted", lambda p, pub: track(pub, p))
        on("local_track_subscribed", lambda t: {"sid": t.sid})
        on("active_speakers_changed", lambda speakers: {"speakers": [_who(p) for p in speakers]})
        on(
            "connection_quality_changed",
            lambda p, quality: {"identity": _who(p), "quality": int(quality)},
        )

    async def op_publish_tone(self, cmd: dict[str, Any]) -> Any:
        """Publish a microphone track playing ``frequencies`` for ``seconds`` each (then silence)."""
        self._listen_media()
        rtc = self.rtc
        # ``queue_ms`` (optional) bounds how far capture may run ahead of sending (latency benchmarks)
        source = rtc.AudioSource(
            _RATE, 1, **({"queue_size_ms": cmd["queue_ms"]} if "queue_ms" in cmd else {})
        )
        track = rtc.LocalAudioTrack.create_audio_track(cmd.get("name", "tone"), source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        publication = await self.room.local_participant.publish_track(track, options)
        self._publications[publication.sid] = publication
        self._spawn(
            self._play(
                source, publication.sid, cmd["frequencies"], cmd.get("seconds", 1.0), cmd.get("lead", 0.5)
            )
        )
        return {"sid": publication.sid}

    async def _play(
        self, source: Any, sid: str, frequencies: list[float], seconds: float, lead: float
    ) -> None:
        chunk = _RATE // 100  # 10 ms frames
        plan = [(0.0, lead), *((float(f), seconds) for f in frequencies), (0.0, 1.0)]
        for frequency, duration in plan:
            self.emit({"event": "tone", "frequency": frequency, "sid": sid})
            for index in range(int(duration * 100)):
                n = np.arange(index * chunk, (index + 1) * chunk)
                samples = (8000 * np.sin(2 * np.pi * frequency * n / _RATE)).astype(np.int16)
                frame = self.rtc.AudioFrame(samples.tobytes(), _RATE, 1, chunk)
                await source.capture_frame(frame)
        self.emit({"event": "tone_done", "sid": sid})

    async def op_listen_audio(self, cmd: dict[str, Any]) -> Any:
        """Open an ``AudioStream`` on the first subscribed audio track from ``identity`` (waiting for one).

        ``sid`` (optional) picks that track instead of the first one.
        """
        self._listen_media()
        track = await self._remote_track(
            cmd["identity"], self.rtc.TrackKind.KIND_AUDIO, cmd.get("timeout", 10), cmd.get("sid")
        )
        stream = self.rtc.AudioStream(track, sample_rate=_RATE, num_channels=1)
        self._spawn(self._hear(stream, track.sid, _RATE * cmd.get("window_ms", 100) // 1000))
        return {"sid": track.sid}

    async def _remote_track(self, identity: str, kind: Any, timeout: float, sid: str | None = None) -> Any:
        def find() -> Any:
            participant = self.room.remote_participants.get(identity)
            for publication in [] if participant is None else participant.track_publications.values():
                if sid is not None and publication.sid != sid:
                    continue
                if publication.kind == kind and publication.track is not None:
                    return publication.track
            return None

        return await wait_until(
            find, timeout=timeout, what=f"a subscribed track of kind {kind} from {identity}"
        )

    async def _hear(self, stream: Any, sid: str, size: int) -> None:
        pending = np.zeros(0, dtype=np.float64)
        async for event in stream:
            frame = event.frame
            pending = np.concatenate(
                [pending, np.frombuffer(bytes(frame.data), dtype=np.int16).astype(np.float64)]
            )
            while len(pending) >= size:
                window, pending = pending[:size], pending[size:]
                spectrum = np.abs(np.fft.rfft(window * np.hanning(size)))
                peak = float(np.fft.rfftfreq(size, 1 / _RATE)[int(np.argmax(spectrum))])
                rms = float(np.sqrt(np.mean(window**2)))
                self.emit({"event": "audio_window", "sid": sid, "peak_hz": peak, "rms": rms})
        self.emit({"event": "audio_stream_ended", "sid": sid})

    async def op_publish_colours(self, cmd: dict[str, Any]) -> Any:
        """Publish a camera track showing each of ``colours`` (``[r, g, b]``) for ``seconds`` at ``fps``.

        ``lead`` seconds of black come first (the subscriber's stream may open after the publication).
        """
        self._listen_media()
        rtc = self.rtc
        width, height = cmd.get("width", 64), cmd.get("height", 48)
        source = rtc.VideoSource(width, height)
        track = rtc.LocalVideoTrack.create_video_track(cmd.get("name", "colours"), source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
        if "codec" in cmd:  # e.g. "H264" (a VideoCodec name)
            options.video_codec = getattr(rtc.VideoCodec, cmd["codec"])
        for name in cmd.get("features", ()):  # FrameMetadataFeature names, e.g. "FMF_FRAME_ID"
            options.frame_metadata_features.append(getattr(rtc.FrameMetadataFeature, name))
        publication = await self.room.local_participant.publish_track(track, options)
        self._publications[publication.sid] = publication
        features = [int(f) for f in publication.frame_metadata_features]
        plan = [
            ([0, 0, 0], cmd.get("lead", 0.0)),
            *((list(c), cmd.get("seconds", 1.0)) for c in cmd["colours"]),
        ]
        self._spawn(self._show(source, publication.sid, plan, (width, height), cmd.get("fps", 30)))
        return {"sid": publication.sid, "features": features}

    op_publish_colors = op_publish_colours

    async def _show(
        self, source: Any, sid: str, plan: list[tuple[list[int], float]], size: tuple[int, int], fps: int
    ) -> None:
        width, height = size
        for colour, seconds in plan:
            self.emit({"event": "colour", "rgb": colour, "sid": sid})
            data = np.tile(np.array([*colour, 255], np.uint8), width * height).tobytes()
            for _ in range(round(seconds * fps)):
                frame = self.rtc.VideoFrame(width, height, self.rtc.VideoBufferType.RGBA, data)
                source.capture_frame(frame)
                await asyncio.sleep(1 / fps)  # pacing: a camera captures in real time
        self.emit({"event": "colours_done", "sid": sid})

    async def op_watch_video(self, cmd: dict[str, Any]) -> Any:
        """Open an RGBA ``VideoStream`` on the first subscribed video track from ``identity``."""
        self._listen_media()
        track = await self._remote_track(
            cmd["identity"], self.rtc.TrackKind.KIND_VIDEO, cmd.get("timeout", 10), cmd.get("sid")
        )
        stream = self.rtc.VideoStream(track, format=self.rtc.VideoBufferType.RGBA)
        self._spawn(self._watch(stream, track.sid))
        return {"sid": track.sid}

    async def _watch(self, stream: Any, sid: str) -> None:
        async for event in stream:
            frame = event.frame
            pixels = np.frombuffer(bytes(frame.data), dtype=np.uint8).reshape(-1, 4)
            mean = [round(float(v)) for v in pixels[:, :3].mean(axis=0)]
            self.emit(
                {
                    "event": "video_frame",
                    "sid": sid,
                    "width": frame.width,
                    "height": frame.height,
                    "rgb": mean,
                }
            )
        self.emit({"event": "video_stream_ended", "sid": sid})

    async def op_set_muted(self, cmd: dict[str, Any]) -> Any:
        publication = self._publications[cmd["sid"]]
        if cmd["muted"]:
            publication.track.mute()
        else:
            publication.track.unmute()

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
