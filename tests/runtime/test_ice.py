from __future__ import annotations

import asyncio
from typing import Any

import aioice.ice
import pytest

from greenroom.runtime import loop as rt
from greenroom.runtime.ice import (
    LIVEKIT_MAX_MESSAGE_SIZE,
    IceCandidate,
    IcePolicy,
    IceServer,
    candidate_address,
    data_message_limit,
    gathering_scope,
    parse_max_message_size,
)

UDP_LOOPBACK = "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host"
UDP_LOOPBACK6 = "candidate:2 1 udp 2130706431 ::1 50001 typ host"
UDP_LAN = "candidate:3 1 udp 2130706431 192.0.2.2 50002 typ host"
TCP_LOOPBACK = "candidate:4 1 tcp 1518280447 127.0.0.1 9 typ host tcptype passive"
MDNS = "candidate:5 1 udp 2130706431 3f1c5b2e-8c1a-4b8e-9b0e-2f3a4c5d6e7f.local 50003 typ host"
PRFLX_LAN = "candidate:6 1 udp 1686052607 192.0.2.2 50004 typ srflx raddr 0.0.0.0 rport 0"


def test_loopback_policy_keeps_only_udp_loopback() -> None:
    policy = IcePolicy.loopback()
    assert policy.allows(UDP_LOOPBACK)
    assert policy.allows("a=" + UDP_LOOPBACK6)
    assert not policy.allows(UDP_LAN)
    assert not policy.allows(PRFLX_LAN)
    assert not policy.allows(TCP_LOOPBACK)
    assert not policy.allows(MDNS)
    assert not policy.allows("candidate:garbage")
    assert not policy.allows("")


def test_default_policy_still_drops_tcp_and_mdns() -> None:
    policy = IcePolicy()
    assert policy.gather_addresses is None
    assert policy.allows(UDP_LAN)
    assert policy.allows(UDP_LOOPBACK)
    assert not policy.allows(TCP_LOOPBACK)
    assert not policy.allows(MDNS)
    assert not policy.allows("candidate:1 1 udp 1 some-host.example 5 typ host")


def test_bound_to_accepts_its_own_address_and_loopback() -> None:
    policy = IcePolicy.bound_to("198.18.0.1")
    assert policy.gather_addresses == ("198.18.0.1",)
    assert policy.allows(UDP_LAN.replace("192.0.2.2", "198.18.0.1"))
    assert policy.allows(UDP_LOOPBACK)
    assert not policy.allows(UDP_LAN.replace("192.0.2.2", "198.18.0.2"))
    assert not policy.allows("candidate:1 1 udp 1 some-host.example 5 typ host")
    wide = IcePolicy.bound_to("198.18.0.1", allowed_networks=("198.18.0.0/24",))
    assert wide.allows(UDP_LAN.replace("192.0.2.2", "198.18.0.2"))
    assert not wide.allows(UDP_LOOPBACK)


def test_policy_validates_addresses_and_networks() -> None:
    with pytest.raises(ValueError):
        IcePolicy(gather_addresses=("not-an-ip",))
    with pytest.raises(ValueError):
        IcePolicy(allowed_networks=("10.0.0.0/99",))


def test_filter_sdp_drops_rejected_candidate_lines_only() -> None:
    sdp = "\r\n".join(
        ["v=0", "m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "a=mid:0"]
        + [f"a={c}" for c in (UDP_LOOPBACK, UDP_LAN, TCP_LOOPBACK, MDNS)]
        + ["a=end-of-candidates", ""]
    )
    filtered = IcePolicy.loopback().filter_sdp(sdp)
    kept = ["v=0", "m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "a=mid:0", f"a={UDP_LOOPBACK}"]
    assert filtered == "\r\n".join([*kept, "a=end-of-candidates", ""])


def test_rtc_configuration_is_always_explicit() -> None:
    assert IcePolicy.loopback().rtc_configuration().iceServers == []
    servers = (
        IcePolicy(ice_servers=(IceServer(("turn:127.0.0.1:3478",), "u", "p"),)).rtc_configuration().iceServers
    )
    assert servers is not None
    assert [(s.urls, s.username, s.credential) for s in servers] == [(["turn:127.0.0.1:3478"], "u", "p")]


def test_candidate_helpers() -> None:
    assert candidate_address(UDP_LAN) == "192.0.2.2"
    assert candidate_address("nonsense") is None
    init = {"candidate": UDP_LOOPBACK, "sdpMid": 0, "sdpMLineIndex": "1", "usernameFragment": "x"}
    candidate = IceCandidate.from_init(init)
    assert candidate == IceCandidate(UDP_LOOPBACK, "0", 1)
    assert candidate.to_init() == {"candidate": UDP_LOOPBACK, "sdpMid": "0", "sdpMLineIndex": 1}
    assert IceCandidate.from_init({}) == IceCandidate("", None, None)


SESSION = "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
APPLICATION = "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=sctp-port:5000\r\n"
AUDIO = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


@pytest.mark.parametrize(
    ("sdp", "expected"),
    [
        (SESSION + APPLICATION, LIVEKIT_MAX_MESSAGE_SIZE),
        (SESSION + APPLICATION + "a=max-message-size:262144\r\n", 262144),
        (SESSION + "a=max-message-size:1000\r\n" + APPLICATION, 1000),
        (SESSION + "a=max-message-size:1000\r\n" + APPLICATION + "a=max-message-size:2000\r\n", 2000),
        (SESSION + APPLICATION + "a=max-message-size:2000\r\n" + AUDIO + "a=max-message-size:5\r\n", 2000),
        (SESSION + APPLICATION + "a=max-message-size:0\r\n", 0),
        (SESSION + APPLICATION + "a=max-message-size:lots\r\n", LIVEKIT_MAX_MESSAGE_SIZE),
        (SESSION + APPLICATION + "a=max-message-size:-4\r\n", LIVEKIT_MAX_MESSAGE_SIZE),
        (SESSION + APPLICATION + "a=max-message-size:\r\n", LIVEKIT_MAX_MESSAGE_SIZE),
    ],
)
def test_parse_max_message_size(sdp: str, expected: int) -> None:
    assert parse_max_message_size(sdp) == expected


def test_data_message_limit() -> None:
    assert data_message_limit(262144) == 64_000
    assert data_message_limit(1000) == 1000
    assert data_message_limit(0) == 64_000
    assert data_message_limit(0, None) is None
    assert data_message_limit(262144, None) == 262144


def test_gathering_scope_overrides_host_discovery_only_inside() -> None:
    original = aioice.ice.get_host_addresses(True, True)
    assert "127.0.0.1" not in original  # the trap: aioice skips loopback
    with gathering_scope(IcePolicy.bound_to("127.0.0.1", "::1")):
        assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1", "::1"]
        assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(False, True) == ["::1"]
        with gathering_scope(IcePolicy()):  # nested default policy: aioice's own discovery
            assert aioice.ice.get_host_addresses(True, True) == original
    assert aioice.ice.get_host_addresses(True, True) == original


def test_gathering_scope_is_per_task_and_gathers_on_loopback() -> None:
    async def gather(policy: IcePolicy, both_in_scope: asyncio.Barrier) -> list[str]:
        connection = aioice.ice.Connection(ice_controlling=True)
        with gathering_scope(policy):
            await both_in_scope.wait()  # the other task has entered its own scope meanwhile
            await connection.gather_candidates()
        hosts = [c.host for c in connection.local_candidates]
        await connection.close()
        return hosts

    async def both() -> tuple[list[str], list[str]]:
        v4 = IcePolicy.loopback()
        v6 = IcePolicy.bound_to("::1")
        both_in_scope = asyncio.Barrier(2)
        first, second = await asyncio.gather(gather(v4, both_in_scope), gather(v6, both_in_scope))
        return first, second

    assert rt.run_sync(both(), timeout=10) == (["127.0.0.1"], ["::1"])


def test_aioice_check_pacing_is_shortened_and_nothing_else() -> None:
    import time

    from greenroom.runtime import ice

    with ice.gathering_scope(ice.IcePolicy.loopback()):  # installs the adjustment once per process
        pass
    paced: Any = getattr(aioice.ice, "asyncio")  # noqa: B009 - not exported; the test reads it on purpose
    assert paced is not asyncio
    assert paced.Event is asyncio.Event  # everything else is the real module

    async def timed(delay: float) -> float:
        started = time.monotonic()
        await paced.sleep(delay)  # the sleep under test (its duration is measured)
        return time.monotonic() - started

    assert rt.run_sync(timed(0.02), timeout=5) < 0.015  # the check-pacing tick (20 ms) became 5 ms
    assert rt.run_sync(timed(0.03), timeout=5) >= 0.03  # any other delay is untouched
