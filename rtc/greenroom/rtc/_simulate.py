"""What each ``SimulateScenarioKind`` does, as the official SDK does it (rust-sdks ``rtc_session.rs``
``simulate_scenario``): the request for the server, and the local action (see
:mod:`greenroom.actors.simulate`)."""

from __future__ import annotations

from typing import Literal

from greenroom.codecs.signalling import SimulateScenario
from greenroom.rtc._enums import SimulateScenarioKind as Kind

__all__ = ["simulation"]

_TCP, _TLS = 1, 2  # livekit.CandidateProtocol

_TABLE: dict[Kind, tuple[SimulateScenario | None, Literal["lost", "leave"] | None]] = {
    Kind.SIMULATE_SIGNAL_RECONNECT: (None, "lost"),
    Kind.SIMULATE_SPEAKER: (SimulateScenario("speaker_update", 3), None),
    Kind.SIMULATE_NODE_FAILURE: (SimulateScenario("node_failure"), None),
    Kind.SIMULATE_SERVER_LEAVE: (SimulateScenario("server_leave"), None),
    Kind.SIMULATE_MIGRATION: (SimulateScenario("migration"), None),
    Kind.SIMULATE_FORCE_TCP: (SimulateScenario("switch_candidate_protocol", _TCP), "leave"),
    Kind.SIMULATE_FORCE_TLS: (SimulateScenario("switch_candidate_protocol", _TLS), "leave"),
    Kind.SIMULATE_FULL_RECONNECT: (None, "leave"),
    Kind.SIMULATE_DISCONNECT_SIGNAL_ON_RESUME: (SimulateScenario("disconnect_signal_on_resume"), "lost"),
}


def simulation(kind: Kind) -> tuple[SimulateScenario | None, Literal["lost", "leave"] | None]:
    """The server request and the local action for ``kind``."""
    return _TABLE[kind]
