"""The join URL says what greenroom is and implements: read by the real dev server from a real connect."""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Any

import pytest

from greenroom.actors import identity
from greenroom.codecs.models import ClientCapability
from greenroom.codecs.signalling import PROTOCOL_VERSION, JoinParams
from greenroom.codecs.streams import ANNOUNCED_CAPABILITIES, ANNOUNCED_PROTOCOL
from greenroom.devserver import server as devserver
from greenroom.devserver.server import DevServer
from tests.rtc.support import connect, run_with_server


def test_the_join_url_names_greenroom_its_version_and_what_it_implements(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[JoinParams] = []
    admit = devserver.admission_from

    def spy(claims: Any, grants: Any, params: JoinParams) -> Any:
        seen.append(params)
        return admit(claims, grants, params)

    monkeypatch.setattr(devserver, "admission_from", spy)

    async def scenario(server: DevServer) -> None:
        room = await connect(server, "alice")
        await room.disconnect()

    run_with_server(scenario)
    [params] = seen
    assert (params.sdk, params.version) == ("greenroom", importlib.metadata.version("greenroom"))
    assert params.protocol == PROTOCOL_VERSION == 15  # the signalling greenroom models, not the official 18
    assert (params.client_protocol, params.capabilities) == (ANNOUNCED_PROTOCOL, ANNOUNCED_CAPABILITIES)
    assert (params.client_protocol, params.capabilities) == (
        2,
        (ClientCapability.CAP_COMPRESSION_DEFLATE_RAW,),
    )
    assert (params.os, params.os_version, params.device_model) == (
        platform.system(),
        platform.release(),
        platform.machine(),
    )
    assert params.auto_subscribe
    assert identity.join_params(auto_subscribe=False).auto_subscribe is False
