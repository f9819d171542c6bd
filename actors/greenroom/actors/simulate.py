"""``Room.simulate_scenario``: stage a fault on a live room (the RoomActor's side).

The facade turns an official ``SimulateScenarioKind`` into a :class:`Simulate` message: what to ask the
server (a ``SimulateScenario`` signal request, e.g. ``node_failure`` — the server then drops the link, or
``speaker_update``) and what to do locally, as the official SDK does it (rust-sdks ``rtc_session.rs``
``simulate_scenario``): ``"lost"`` treats the signal link as lost (the official closes its signal client:
a signal reconnect), ``"leave"`` acts as if the server had sent ``LeaveRequest{RECONNECT}`` (a full
reconnect; the official injects that leave into its own signal handler). Both go through the connection
machine like the real faults, so what the room then does is exactly its reconnect path.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Literal

from greenroom.actors.connection import ConnEvent, ConnState, LeaveReceived, Lost
from greenroom.actors.link import Link, NotConnectedError
from greenroom.actors.messages import Reply
from greenroom.codecs.models import DisconnectReason
from greenroom.codecs.signalling import SimulateScenario

__all__ = ["NotConnectedForSimulationError", "Simulate", "Simulations"]

_log = logging.getLogger("greenroom.actors.room")


class NotConnectedForSimulationError(NotConnectedError):
    """``simulate_scenario`` on a room that is not connected (the official raises ``RuntimeError``)."""


@dataclass(frozen=True, slots=True)
class Simulate:
    """facade → RoomActor: ask the server for ``request`` (if any), then act ``locally`` (if anything)."""

    reply: Reply[None]
    request: SimulateScenario | None
    locally: Literal["lost", "leave"] | None = None


class Simulations:
    """The RoomActor's handler for :class:`Simulate` (a mixin: same actor, same state)."""

    @property
    def _state(self) -> ConnState:
        raise NotImplementedError

    _link: Link | None

    async def _feed(self, event: ConnEvent) -> None:
        raise NotImplementedError

    async def _on_simulate(self, message: Simulate) -> None:
        link_ = self._link
        if self._state is not ConnState.CONNECTED or link_ is None:
            message.reply.fail(NotConnectedForSimulationError("simulate_scenario requires a connected room"))
            return
        if message.request is not None:
            with contextlib.suppress(NotConnectedError):  # the link is going anyway: nothing else to do
                link_.post(message.request)
        _log.info("simulating: %s, then %s", message.request, message.locally or "nothing locally")
        message.reply.ok(None)
        match message.locally:
            case "lost":
                await self._feed(
                    Lost(link_.generation, DisconnectReason.SIGNAL_CLOSE, "simulated signal loss")
                )
            case "leave":
                await self._feed(
                    LeaveReceived(
                        link_.generation, DisconnectReason.CLIENT_INITIATED, True, "simulated full reconnect"
                    )
                )
            case None:
                pass
