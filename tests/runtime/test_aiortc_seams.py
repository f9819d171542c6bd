"""aiortc's private parts greenroom relies on (greenroom.runtime.aiortc_seams) are present and checked."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiortc import RTCPeerConnection
from aiortc.rtp import RtpPacket

from greenroom.runtime import aiortc_seams
from greenroom.runtime.seams_check import Seam
from tests.runtime.seams_support import assert_installed_matches, assert_refused_when_gone, private_uses


def test_the_installed_aiortc_has_every_seam_and_the_pin_matches() -> None:
    assert_installed_matches("aiortc", aiortc_seams)


@pytest.mark.parametrize("seam", aiortc_seams.SEAMS, ids=lambda seam: f"{seam.shape}:{seam.label}")
def test_each_seam_is_refused_when_its_name_is_gone(seam: Seam) -> None:
    assert_refused_when_gone("aiortc", aiortc_seams, seam, installed="1.16.0")


def test_only_the_seams_module_touches_aiortc_private_names() -> None:
    names = {
        "_RTCRtpReceiver__jitter_buffer",
        "_RTCRtpReceiver__codecs",
        "_send_rtcp_pli",
        "_send_keyframe",
        "_stream_id",
        "_track_id",
        "_send_data",
        "_sack_needed",
        "_sack_misordered",
        "_sack_duplicates",
        "_association_state",
        "_remote_verification_tag",
    }
    assert private_uses(names, allowed={"aiortc_seams.py"}) == []
    # greenroom.runtime.sctp names the replaced methods as keys for replace_sctp_methods, never as attributes
    methods = set(aiortc_seams.SCTP_REPLACED_METHODS)
    assert private_uses(methods, allowed={"aiortc_seams.py"}, literals=False) == []


def test_sctp_methods_can_only_be_replaced_by_their_checked_names() -> None:
    with pytest.raises(KeyError, match="_handle_sack"):
        aiortc_seams.replace_sctp_methods({"_handle_sack": print})


def test_msid_and_keyframe_hooks_reach_aiortc() -> None:
    async def body() -> None:
        pc = RTCPeerConnection()
        try:
            sender = pc.addTransceiver("audio", direction="sendonly").sender
            aiortc_seams.set_msid(sender, "PA_x|TR_y", "TR_y")
            offer = await pc.createOffer()
            assert "a=msid:PA_x|TR_y TR_y" in offer.sdp
            calls: list[int] = []
            assert aiortc_seams.route_keyframe_requests(sender, lambda: calls.append(1))
            sender._send_keyframe()
            assert calls == [1]
            assert not aiortc_seams.route_keyframe_requests(object(), lambda: None)
            receiver = pc.getTransceivers()[0].receiver
            buffer = aiortc_seams.receiver_jitter_buffer(receiver)
            assert buffer is not None
            assert hasattr(buffer, "add")
            aiortc_seams.set_receiver_jitter_buffer(receiver, "stand-in")
            assert aiortc_seams.receiver_jitter_buffer(receiver) == "stand-in"
            assert aiortc_seams.receiver_codecs(receiver) == {}
            assert aiortc_seams.has_pli(receiver)
            assert not aiortc_seams.has_pli(object())
            assert aiortc_seams.receiver_jitter_buffer(object()) is None
        finally:
            await pc.close()

    asyncio.run(body())


def test_depayloaded_reads_what_the_receiver_stores() -> None:
    packet: Any = RtpPacket(payload=b"\x01\x02")
    packet._data = b"\x02"
    assert aiortc_seams.depayloaded(packet) == b"\x02"
