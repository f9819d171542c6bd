"""The views' port: requests while connected, "not connected" once closed, local changes to the reducer."""

from __future__ import annotations

import asyncio

import pytest

from greenroom.codecs.errors import GreenroomError
from greenroom.codecs.models import ParticipantInfo
from greenroom.rtc._port import RoomPort
from greenroom.rtc._records import LocalChange, LocalTrackUnpublished, ParticipantRecord


def test_a_detached_port_refuses_requests_and_drops_tells() -> None:
    port = RoomPort.detached()
    assert not port.connected
    assert port.media is None
    port.tell(object())  # dropped, no runtime loop started for it
    with pytest.raises(GreenroomError, match="not connected"):
        asyncio.run(port.request(lambda reply: reply))
    with pytest.raises(GreenroomError, match="not connected"):
        asyncio.run(port.add_local_track(object()))
    asyncio.run(port.drop_local_track("cid"))  # nothing to drop: the router went with the connection


def test_reports_reach_the_reducer_even_after_close() -> None:
    """A publish acknowledged just before teardown still lands in the view (as before the port existed)."""
    got: list[LocalChange] = []
    port = RoomPort(None, got.append)
    port.close()
    change = LocalTrackUnpublished(ParticipantRecord(ParticipantInfo(sid="PA_1", identity="me")), "TR_1")
    port.report(change)
    assert got == [change]
