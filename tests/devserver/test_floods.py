"""Every flood and bad input of issue 17 against a live server, beside a well-behaved pair in the same room.

Each test runs one scenario of ``tests/devserver/floods.py`` at a small scale: the server applies its bound
(the counter in ``server.stats`` and what the attacker was told), the pair keeps delivering numbered reliable
packets in order while and after it happens, and the process's traced memory comes back to its baseline once
the attacker is gone. ``benchmarks/server_floods.py`` runs the same scenarios at the issue's scale.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import pytest

from greenroom.devserver.limits import CLOSE_POLICY_VIOLATION, Limits
from greenroom.devserver.server import DevServer
from tests.devserver import floods
from tests.devserver.conftest import run_with_server
from tests.waiting import recorded_logs

NO_RATE_LIMIT = {"signal_rate": 1e9, "signal_burst": 10**9}  # to reach a table's own bound


def _flood(case: str, scenario: Any, limits: Limits, **scale: Any) -> floods.Outcome:
    async def main(server: DevServer) -> floods.Outcome:
        return await floods.run_flood(case, server, functools.partial(scenario, **scale))

    outcome: floods.Outcome = run_with_server(main, limits=limits)
    assert outcome.pair["packets"] > 0
    assert outcome.memory["after_mb"] <= 0.5
    return outcome


@pytest.mark.timeout(90)
def test_a_ping_flood_is_cut_at_the_signal_rate_limit() -> None:
    limits = Limits(signal_rate=50, signal_burst=100)
    outcome = _flood("ping flood", floods.ping_flood, limits, pings=3000)
    assert outcome.observed["leave"] == "SIGNAL_CLOSE"
    code, reason = outcome.observed["close"]
    assert code == CLOSE_POLICY_VIOLATION
    assert reason.startswith("signal rate limit exceeded")
    assert outcome.stats["signal_rate_limited"] == 1


@pytest.mark.timeout(90)
def test_a_member_that_never_reads_is_disconnected_at_the_queue_bound() -> None:
    outcome = _flood("slow reader", floods.slow_reader, Limits(signal_queue_frames=30), updates=400)
    assert outcome.stats["slow_readers"] == 1
    assert outcome.observed["reason"] == "CONNECTION_TIMEOUT"
    assert outcome.observed["cut"]  # its connection was aborted: its next ping failed
    assert outcome.observed["updates"] < 400


@pytest.mark.timeout(90)
def test_trickles_before_an_offer_are_kept_up_to_the_bound() -> None:
    limits = Limits(trickles_per_pc=50, **NO_RATE_LIMIT)  # type: ignore[arg-type]
    outcome = _flood("trickles before an offer", floods.trickle_flood, limits, trickles=2000)
    assert outcome.observed == {"sent": 2000, "leave": None, "held": 50}
    assert outcome.stats["trickles_dropped"] == 1950


@pytest.mark.timeout(90)
def test_add_track_requests_past_twenty_pending_are_refused_with_limit_exceeded() -> None:
    limits = Limits(**NO_RATE_LIMIT)  # type: ignore[arg-type]
    outcome = _flood("add_track flood", floods.add_track_flood, limits, requests=300, name_size=16_000)
    assert outcome.observed == {
        "published": 20,
        "refused": 280,
        "reasons": ["LIMIT_EXCEEDED"],
        "last_cid": "c299",
    }
    assert outcome.stats["tracks_refused"] == 280


@pytest.mark.timeout(90)
def test_unknown_subscription_sids_are_answered_up_to_the_bound_and_never_kept() -> None:
    outcome = _flood("unknown sids", floods.unknown_sids, Limits(), sids=30_000)
    assert outcome.observed == {"answers": 100, "wishes_kept": 0}
    assert outcome.stats["unknown_sids_dropped"] == 29_900


@pytest.mark.timeout(240)
def test_data_for_a_member_whose_channel_never_opens_is_bounded_and_freed_on_leave() -> None:
    # the member never brings its peer connection up: under load the flood can outlast the default 60 s join
    # deadline, which ends that session and frees its queue mid-count (seen: "queued 0, dropped 41")
    limits = Limits(data_queue_bytes=1 << 20, join_deadline=600)
    outcome = _flood("undeliverable data", floods.undeliverable_data, limits, packets=60, size=60_000)
    assert outcome.observed["queued"] == 17  # 17 × 60,000 B ≤ 1 MiB < 18 × 60,000 B
    assert outcome.stats["data_dropped"] == 42  # the one more is held by the pump, waiting for the channel


@pytest.mark.timeout(90)
def test_connections_that_never_complete_the_join_end_at_the_join_deadline() -> None:
    outcome = _flood("held joins", floods.held_joins, Limits(join_deadline=0.5), joins=20)
    assert outcome.observed == {"joins": 20, "reasons": ["JOIN_FAILURE"]}
    assert outcome.stats["join_timeouts"] == 20


@pytest.mark.timeout(90)
def test_failed_handshakes_after_a_valid_token_leave_nothing_behind_and_log_no_errors() -> None:
    with recorded_logs("aiohttp") as logs:
        outcome = _flood("failed handshakes", floods.failed_handshakes, Limits(), upgrades=300)
    assert outcome.observed["statuses"] == {"400": 150}
    assert outcome.stats["handshakes_failed"] >= 150  # the bad keys; those gone early may not get that far
    assert [r.getMessage() for r in logs.records if r.levelno >= logging.ERROR] == []


@pytest.mark.timeout(90)
def test_connect_churn_from_one_address_is_paced_then_refused_with_429() -> None:
    # 20 at once, then 2/s with at most 0.5 s of waiting: of 200 cycles (about a second) ~20-25 pass
    limits = Limits(connect_rate=2, connect_burst=20, connect_wait=0.5)
    outcome = _flood("connect churn", floods.connect_churn, limits, cycles=200, concurrency=20)
    assert outcome.observed["refused 429"] >= 100
    assert outcome.observed["joined"] >= 20
    assert outcome.stats["connects_refused"] == outcome.observed["refused 429"]
    assert outcome.stats["connects_paced"] > 0
