"""``simulate`` (``Room.simulate_scenario``): the dev server stages each fault as livekit-server does."""

from __future__ import annotations

from greenroom.codecs.models import DisconnectReason, LeaveAction, ParticipantState
from greenroom.codecs.signalling import Leave, SimulateScenario, SpeakersChanged
from greenroom.devserver.server import DevServer
from tests.devserver.conftest import run_with_server
from tests.devserver.rawclient import RawClient


async def _pair(server: DevServer, room: str) -> tuple[RawClient, RawClient]:
    alice = await RawClient.join(server.url, server.mint_token("alice", room))
    bob = await RawClient.join(server.url, server.mint_token("bob", room))
    await alice.wait_update(lambda p: p.identity == "bob" and p.state is ParticipantState.ACTIVE)
    return alice, bob


def test_speaker_update_announces_the_participant_speaking_then_silent() -> None:
    async def scenario(server: DevServer) -> None:
        alice, bob = await _pair(server, "speaker")
        await bob.send(SimulateScenario("speaker_update", 1))
        speaking = await alice.wait_message(SpeakersChanged, lambda m: any(s.active for s in m.speakers))
        assert [(s.sid, s.active) for s in speaking.speakers] == [(bob.sid, True)]
        assert speaking.speakers[0].level > 0.8
        quiet = await alice.wait_message(SpeakersChanged, lambda m: not any(s.active for s in m.speakers))
        assert [s.sid for s in quiet.speakers] == [bob.sid]
        await alice.close()
        await bob.close()

    run_with_server(scenario)


def test_server_leave_and_full_reconnect_send_the_leave_livekit_sends() -> None:
    async def scenario(server: DevServer) -> None:
        alice, bob = await _pair(server, "leave")
        await bob.send(SimulateScenario("server_leave"))
        leave = await bob.wait_message(Leave)
        assert (leave.reason, leave.action) == (DisconnectReason.SERVER_SHUTDOWN, LeaveAction.DISCONNECT)
        await bob.closed.wait()
        gone = await alice.wait_update(
            lambda p: p.identity == "bob" and p.state is ParticipantState.DISCONNECTED
        )
        assert gone.disconnect_reason is DisconnectReason.SERVER_SHUTDOWN

        carol = await RawClient.join(server.url, server.mint_token("carol", "leave"))
        await carol.send(SimulateScenario("leave_request_full_reconnect"))
        again = await carol.wait_message(Leave)
        assert again.action is LeaveAction.RECONNECT
        await carol.closed.wait()
        await alice.close()

    run_with_server(scenario)


def test_node_failure_drops_the_link_without_a_leave_and_unknown_ones_are_ignored() -> None:
    async def scenario(server: DevServer) -> None:
        alice, bob = await _pair(server, "node")
        await bob.send(
            SimulateScenario("switch_candidate_protocol", 1)
        )  # not supported: logged, nothing else
        await bob.signal_barrier()
        await bob.send(SimulateScenario("node_failure"))
        await bob.closed.wait()
        assert not any(isinstance(m, Leave) for m in bob.messages)  # a dead link, not a leave
        gone = await alice.wait_update(
            lambda p: p.identity == "bob" and p.state is ParticipantState.DISCONNECTED
        )
        assert gone.disconnect_reason is DisconnectReason.SERVER_SHUTDOWN
        await alice.close()

    run_with_server(scenario)
