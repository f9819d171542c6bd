"""Webhooks: signed events livekit-api's WebhookReceiver verifies, in order, retried, never slowing a room."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from livekit import api

from greenroom.codecs.models import DisconnectReason
from greenroom.codecs.packets import UserPacket
from greenroom.codecs.signalling import Leave
from greenroom.devserver.config import ServerConfig
from greenroom.devserver.server import DevServer
from greenroom.devserver.webhooks import CONTENT_TYPE, WebhookPolicy
from tests.devserver.oracle import Tone
from tests.devserver.rawclient import RawClient
from tests.waiting import wait_until

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # dev secret

FAST = WebhookPolicy(backoff_min=0.01, backoff_max=0.05, timeout=30.0)


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: records what it gets; can fail or hold requests on purpose."""

    url: str = ""
    received: list[tuple[str, str, str]] = field(default_factory=list)  # (body, Authorization, content type)
    statuses: list[int] = field(default_factory=list)  # answers for the next requests (then 200)
    release: asyncio.Event | None = None  # when set: hold every request until it is set
    held: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        if self.release is not None:
            self.held += 1
            await self.release.wait()
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            self.received.append(
                (body, request.headers.get("Authorization", ""), request.headers.get("Content-Type", ""))
            )
        return web.Response(status=status)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for body, _, _ in self.received]

    def names(self) -> list[str]:
        return [e["event"] for e in self.events()]


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    recv = Receiver()
    app = web.Application()
    app.router.add_post("/hook", recv.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    recv.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        yield recv
    finally:
        if recv.release is not None:
            recv.release.set()
        await runner.cleanup()


def _with_receiver(scenario: Any, recv_setup: Any = None, **config: Any) -> None:
    async def main() -> None:
        async with receiver() as recv:
            if recv_setup is not None:
                recv_setup(recv)

            async with DevServer(ServerConfig(port=0, webhook_urls=(recv.url,), **config)) as server:
                await scenario(server, recv)

    asyncio.run(main())


async def _wait_names(recv: Receiver, *names: str) -> None:
    await wait_until(
        lambda: recv.names()[-len(names) :] == list(names), what=lambda: f"webhooks {recv.names()}"
    )


def test_lifecycle_events_are_signed_verified_and_in_order() -> None:
    async def scenario(server: DevServer, recv: Receiver) -> None:
        alice = await RawClient.join(server.url, server.mint_token("alice", "r"))
        await _wait_names(recv, "room_started", "participant_joined")
        tone = Tone(440)
        [info] = await alice.publish(tone.track, name="mic")
        await _wait_names(recv, "track_published")
        await alice.unpublish(tone.track)
        await _wait_names(recv, "track_unpublished")
        bob = await RawClient.open(server.url, server.mint_token("bob", "r"))  # never connects its PC
        await bob.close()
        await _wait_names(recv, "participant_connection_aborted")
        async with api.LiveKitAPI(server.http_url, "devkey", "secret") as lk:
            await lk.room.delete_room(api.DeleteRoomRequest(room="r"))
        assert (await alice.wait_message(Leave)).reason is DisconnectReason.ROOM_DELETED
        await _wait_names(recv, "participant_left", "room_finished")
        await tone.stop()
        await alice.close()

        verifier = api.WebhookReceiver(api.TokenVerifier("devkey", "secret"))
        events = [verifier.receive(body, auth) for body, auth, _ in recv.received]
        assert [e.event for e in events] == [
            "room_started",
            "participant_joined",
            "track_published",
            "track_unpublished",
            "participant_connection_aborted",
            "participant_left",
            "room_finished",
        ]
        assert {kind for _, _, kind in recv.received} == {CONTENT_TYPE}
        assert all(e.id.startswith("EV_") and e.created_at > 0 and e.room.name == "r" for e in events)
        assert events[1].participant.identity == "alice"
        assert (events[2].track.sid, events[2].participant.sid) == (info.sid, alice.sid)
        assert events[4].participant.identity == "bob"
        assert len({e.id for e in events}) == len(events)
        body, auth, _ = recv.received[0]
        with pytest.raises(Exception, match="hash mismatch"):
            verifier.receive(body.replace("room_started", "room_finished"), auth)
        assert server.webhooks is not None
        assert (server.webhooks.stats.sent, server.webhooks.stats.dropped) == (7, 0)

    _with_receiver(scenario)


def test_failed_posts_are_retried_with_back_off_and_4xx_is_not_retried() -> None:
    async def scenario(server: DevServer, recv: Receiver) -> None:
        async with api.LiveKitAPI(server.http_url, "devkey", "secret") as lk:
            await lk.room.create_room(api.CreateRoomRequest(name="a"))
            await _wait_names(recv, "room_started")
            assert server.webhooks is not None
            stats = server.webhooks.stats
            assert (stats.retries, stats.sent, stats.failed) == (2, 1, 0)
            recv.statuses = [400]
            await lk.room.create_room(api.CreateRoomRequest(name="b"))
            await wait_until(lambda: stats.failed == 1, what="the 400 to be given up")
            assert (stats.retries, stats.sent) == (2, 1)

    _with_receiver(scenario, lambda recv: setattr(recv, "statuses", [503, 503]), webhook_policy=FAST)


def test_a_receiver_that_hangs_never_slows_rooms_and_drops_are_counted() -> None:
    policy = WebhookPolicy(queue_size=3, backoff_min=0.01, timeout=30.0)

    async def scenario(server: DevServer, recv: Receiver) -> None:
        assert recv.release is not None
        alice = await RawClient.join(server.url, server.mint_token("alice", "r"))
        bob = await RawClient.join(server.url, server.mint_token("bob", "r"), publish=False)
        assert server.webhooks is not None
        stats = server.webhooks.stats
        async with api.LiveKitAPI(server.http_url, "devkey", "secret") as lk:
            for index in range(10):
                await lk.room.create_room(api.CreateRoomRequest(name=f"x{index}"))
            await alice.send_user(b"still flowing")
            got = await bob.next_packet(lambda r: isinstance(r.packet.value, UserPacket))
            assert got.packet.participant_identity == "alice"
        assert recv.held == 1  # everything above happened while the first POST was held
        # One event in flight, three queued (queue_size), every other one dropped and counted.
        assert stats.queued == 1 + policy.queue_size
        dropped = stats.dropped
        assert dropped >= 10 - policy.queue_size
        recv.release.set()
        await wait_until(
            lambda: server.webhooks is not None and stats.sent == stats.queued, what="queued events"
        )
        reported = sum(e.get("numDropped", 0) for e in recv.events())
        assert reported == dropped  # the next delivered event tells the receiver how many were lost
        for client in (alice, bob):
            await client.close()

    _with_receiver(scenario, lambda recv: setattr(recv, "release", asyncio.Event()), webhook_policy=policy)
