"""A participant session whose RTP tap cannot be installed: it ends, and the server never decodes."""

from __future__ import annotations

import asyncio
from typing import Any

import aiortc.rtcrtpreceiver
import pytest

from greenroom.codecs.models import DisconnectReason, ParticipantState
from greenroom.codecs.signalling import JoinParams, Leave
from greenroom.devserver.server import DevServer
from greenroom.runtime import aiortc_seams
from greenroom.runtime.media import AiortcSeamError
from tests.devserver.conftest import run_with_server
from tests.devserver.oracle import Tone
from tests.devserver.rawclient import RawClient

NO_AUTO = JoinParams(sdk="python", version="raw", protocol=16, client_protocol=2, auto_subscribe=False)


def test_a_tap_that_cannot_be_installed_ends_the_session_without_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded: list[str] = []
    real_get_decoder = getattr(aiortc.rtcrtpreceiver, "get_decoder")  # noqa: B009 - not exported

    def recording_get_decoder(codec: Any) -> Any:
        decoded.append(str(codec.mimeType))  # no client here subscribes: any decoder would be the server's
        return real_get_decoder(codec)

    def refuse(receiver: Any, buffer: Any) -> None:
        raise AiortcSeamError("test: the receiver's jitter buffer cannot be replaced")

    monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", recording_get_decoder)
    monkeypatch.setattr(aiortc_seams, "set_receiver_jitter_buffer", refuse)

    async def scenario(server: DevServer) -> None:
        alice = await RawClient.join(server.url, server.mint_token("alice", "r"))
        bob = await RawClient.join(server.url, server.mint_token("bob", "r"), publish=False, params=NO_AUTO)
        tone = Tone(440)
        publishing = asyncio.create_task(alice.publish(tone.track, name="mic"))  # never answered
        try:
            leave = await alice.wait_message(Leave)
            assert leave.reason is DisconnectReason.MEDIA_FAILURE
            await asyncio.wait_for(alice.closed.wait(), 5)
            gone = await bob.wait_update(
                lambda p: p.identity == "alice" and p.state is ParticipantState.DISCONNECTED
            )
            assert gone.disconnect_reason is DisconnectReason.MEDIA_FAILURE
            assert not server.end_session("r", "alice")  # the session is gone from the server
        finally:
            publishing.cancel()
            await asyncio.gather(publishing, return_exceptions=True)
            await tone.stop()
            for client in (alice, bob):
                await client.close()
        assert decoded == []

    run_with_server(scenario)
