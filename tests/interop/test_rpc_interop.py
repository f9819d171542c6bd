"""Interop: RPC between the official ``livekit`` SDK and greenroom, both ways, against what the official SDK
does to itself (:mod:`tests.interop.scenarios_rpc`). Runs in a private network namespace; never skipped."""

from __future__ import annotations

from typing import Any

import pytest

from tests.interop.netns import run_in_netns

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return run_in_netns("tests.interop.scenarios_rpc:rpc_both_ways", timeout=150)


def _outcomes(result: dict[str, Any], direction: str) -> dict[str, dict[str, Any]]:
    """Each call's outcome without its timing (``s``) and the response's first characters."""
    return {
        name: {k: v for k, v in outcome.items() if k not in ("s", "head")}
        for name, outcome in result["outcomes"][direction].items()
    }


def test_every_outcome_is_the_official_one_both_ways(result: dict[str, Any]) -> None:
    reference = _outcomes(result, "official_to_official")
    for direction in ("official_to_greenroom", "greenroom_to_official"):
        assert _outcomes(result, direction) == reference, direction
    assert reference["success"] == {"ok": True, "len": 15}
    assert reference["app_error"] == {
        "ok": False,
        "code": 4001,
        "message": "custom failure",
        "data": '{"detail": 1}',
    }
    assert reference["handler_raised"]["code"] == 1500
    assert reference["unknown_method"]["code"] == 1400
    assert reference["response_timeout"]["code"] == 1502
    assert reference["no_ack"]["code"] == 1501


def test_payloads_over_the_v1_limit_travel_as_streams(result: dict[str, Any]) -> None:
    """Both SDKs announce data-stream RPC (client_protocol 2), so requests and answers over 15 360 bytes go
    as text streams (v2) both ways; the v1 limits apply only towards v1 callees (tests/rtc/test_rpc.py)."""
    for direction in ("official_to_greenroom", "greenroom_to_official"):
        outcomes = _outcomes(result, direction)
        assert outcomes["request_at_limit"] == {"ok": True, "len": 15_360}
        assert outcomes["response_at_limit"] == {"ok": True, "len": 15_360}
        assert outcomes["request_over_limit"] == {"ok": True, "len": 15_361}, direction
        assert outcomes["response_over_limit"] == {"ok": True, "len": 15_361}, direction


def test_timeouts_take_the_time_they_say(result: dict[str, Any]) -> None:
    for direction, outcomes in result["outcomes"].items():
        for name in ("response_timeout", "no_ack"):
            assert 0.9 < outcomes[name]["s"] < 2.5, (direction, name, outcomes[name]["s"])


def test_handlers_see_the_caller_and_the_deadline_it_gave(result: dict[str, Any]) -> None:
    # with the default timeouts both callers tell the callee 8 s (15 s − the 7 s ack allowance); with
    # response_timeout=1 s, 1 s (never less)
    for callee, caller in (("alice", "bob"), ("bob", "alice")):
        seen = [e for e in result["invoked"][callee] if e["caller"] == caller]
        methods = ["echo", "fail", "crash", "slow", "echo", "echo", "full", "huge"]
        assert [e["method"] for e in seen] == methods
        assert [e["timeout"] for e in seen] == [8.0, 8.0, 8.0, 1.0, 8.0, 8.0, 8.0, 8.0]
        assert [e["payload_len"] for e in seen][4:6] == [15_360, 15_361]
