"""RPC between greenroom rooms through the real dev server: success, errors, limits, timeouts, departures,
interceptors, and containment (a failing handler kills nothing; a crashed actor loses no request)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from greenroom import rtc, testing
from greenroom.devserver.server import DevServer
from greenroom.rtc._port import RoomPort
from greenroom.rtc._rpc import RpcEngine
from tests.rtc.support import connect, run_with_server
from tests.waiting import wait_until

Code = rtc.RpcError.ErrorCode


async def _call(room: rtc.Room, method: str, payload: str = "p", to: str = "b", **kw: Any) -> str:
    return await room.local_participant.perform_rpc(
        destination_identity=to, method=method, payload=payload, **kw
    )


async def _error(room: rtc.Room, method: str, payload: str = "p", to: str = "b", **kw: Any) -> rtc.RpcError:
    with pytest.raises(rtc.RpcError) as info:
        await _call(room, method, payload, to, **kw)
    return info.value


def test_calls_answer_with_the_handler_result_and_the_official_errors() -> None:
    async def scenario(server: DevServer) -> None:
        a, b = await connect(server, "a"), await connect(server, "b")
        seen: list[rtc.RpcInvocationData] = []

        @b.local_participant.register_rpc_method("echo")
        async def echo(data: rtc.RpcInvocationData) -> str:
            seen.append(data)
            return data.payload[::-1]

        def sync_upper(data: rtc.RpcInvocationData) -> str:
            return data.payload.upper()

        def custom(data: rtc.RpcInvocationData) -> str:
            raise rtc.RpcError(4001, "nope", '{"why": "custom"}')

        def crashing(data: rtc.RpcInvocationData) -> str:
            raise ValueError("a bug in the handler")

        b.local_participant.register_rpc_method("upper", sync_upper)
        b.local_participant.register_rpc_method("custom", custom)
        b.local_participant.register_rpc_method("crash", crashing)

        assert await _call(a, "echo", "hello") == "olleh"
        assert await _call(a, "upper", "hello") == "HELLO"
        [data] = seen
        assert (data.caller_identity, data.method, data.payload) == ("a", "echo", "hello")
        assert data.response_timeout == 8.0  # what the caller's defaults leave the callee: 15 s − 7 s
        assert len(data.request_id) == 36

        error = await _error(a, "custom")
        assert (error.code, error.message, error.data) == (4001, "nope", '{"why": "custom"}')
        error = await _error(a, "crash")
        assert (error.code, error.message) == (Code.APPLICATION_ERROR, "Application error in method handler")
        error = await _error(a, "missing")
        assert (error.code, error.message) == (1400, "Method not supported at destination")
        b.local_participant.unregister_rpc_method("echo")
        assert (await _error(a, "echo")).code == Code.UNSUPPORTED_METHOD
        # the failing handler killed nothing: the room and its actors are as before
        assert await _call(a, "upper", "still here") == "STILL HERE"
        assert b.isconnected()
        assert await testing.restart_history(b) == []
        for room in (a, b):
            await room.disconnect()

    run_with_server(scenario)


def test_v1_payload_limits() -> None:
    """Towards a callee announcing no data-stream RPC (``client_protocol`` 0: the Go SDK, older clients),
    calls are v1 packets, limited to 15 360 bytes each way (over it, RPC v2 carries any size:
    ``tests/rtc/test_streams.py``)."""

    async def scenario(server: DevServer) -> None:
        a, b = await connect(server, "a"), await connect(server, "b")
        a.local_participant._rpc._client_protocol = lambda identity: 0  # b as a v1 callee
        b.local_participant.register_rpc_method("size", lambda d: "r" * int(d.payload.split(":")[0]))
        limit = 15_360
        at_limit = f"{limit}:".ljust(limit, "x")
        assert len(await _call(a, "size", at_limit)) == limit  # request and response exactly at the limit
        assert (await _error(a, "size", at_limit + "x")).code == Code.REQUEST_PAYLOAD_TOO_LARGE
        assert (await _error(a, "size", "é" * (limit // 2 + 1))).code == Code.REQUEST_PAYLOAD_TOO_LARGE
        error = await _error(a, "size", f"{limit + 1}:")
        assert (error.code, error.message) == (Code.RESPONSE_PAYLOAD_TOO_LARGE, "Response payload too large")
        for room in (a, b):
            await room.disconnect()

    run_with_server(scenario)


def test_timeouts_departures_and_disconnects() -> None:
    async def scenario(server: DevServer) -> None:
        a, b = await connect(server, "a"), await connect(server, "b")
        cancelled: list[Any] = []
        entered = asyncio.Event()

        async def slow(data: rtc.RpcInvocationData) -> str:
            entered.set()
            try:
                await asyncio.Event().wait()  # never answers by itself
            except asyncio.CancelledError:
                cancelled.append(data.cancel_reason)
                raise
            return "never"

        b.local_participant.register_rpc_method("slow", slow)

        # no answer within response_timeout (after the ack) → 1502; the callee's handler is cancelled at the
        # deadline it was given (at least 1 s)
        started = time.monotonic()
        error = await _error(a, "slow", response_timeout=0.3)
        assert (error.code, error.message) == (Code.RESPONSE_TIMEOUT, "Response timeout")
        assert time.monotonic() - started < 2
        await wait_until(lambda: cancelled == [Code.RESPONSE_TIMEOUT], what="the handler's cancellation")

        # nobody to acknowledge → 1501 after max_round_trip_latency
        error = await _error(a, "slow", to="nobody", max_round_trip_latency=0.3)
        assert (error.code, error.message) == (Code.CONNECTION_TIMEOUT, "Connection timeout")

        # the callee leaves mid-call → 1503 at once (not at the 15 s timeout)
        entered.clear()
        call = asyncio.ensure_future(_call(a, "slow"))
        await entered.wait()
        started = time.monotonic()
        await b.disconnect()
        with pytest.raises(rtc.RpcError) as info:
            await call
        assert info.value.code == Code.RECIPIENT_DISCONNECTED
        assert time.monotonic() - started < 5
        assert cancelled[-1] == Code.RECIPIENT_DISCONNECTED  # b's disconnect cancelled its running handler

        # the caller's own room disconnects mid-call → 1503 too
        c = await connect(server, "c")
        c.local_participant.register_rpc_method("slow", slow)
        entered.clear()
        call = asyncio.ensure_future(_call(a, "slow", to="c"))
        await entered.wait()
        await a.disconnect()
        with pytest.raises(rtc.RpcError) as info:
            await call
        assert info.value.code == Code.RECIPIENT_DISCONNECTED
        await c.disconnect()

    run_with_server(scenario)


def test_the_ack_does_not_wait_for_a_blocked_user_loop() -> None:
    """The RoomActor acknowledges a request when it arrives: a callee whose loop is blocked longer than the
    caller's ack timeout still answers, later, instead of the caller giving up with 1501."""

    async def scenario(server: DevServer) -> None:
        a = await connect(server, "a")
        ready, go, done = threading.Event(), threading.Event(), threading.Event()

        async def callee() -> None:
            b = await connect(server, "b")
            b.local_participant.register_rpc_method("echo", lambda d: d.payload)
            ready.set()
            await asyncio.to_thread(go.wait, 10)
            threading.Event().wait(1.0)  # the callee's whole loop is blocked (a badly written handler)
            await asyncio.to_thread(done.wait, 10)
            await b.disconnect()

        thread = threading.Thread(target=asyncio.run, args=(callee(),))
        thread.start()
        try:
            await asyncio.to_thread(ready.wait, 10)
            await wait_until(lambda: "b" in a.remote_participants, what="b in a's room")
            go.set()
            answer = await _call(a, "echo", "late but acked", max_round_trip_latency=0.5)
            assert answer == "late but acked"
        finally:
            done.set()
            await asyncio.to_thread(thread.join, 10)
        await a.disconnect()

    run_with_server(scenario)


def test_a_crashed_participant_actor_loses_no_request() -> None:
    """The request waits in the restarting ParticipantActor's stash and is answered once."""

    async def scenario(server: DevServer) -> None:
        a, b = await connect(server, "a"), await connect(server, "b")
        calls: list[str] = []

        def handler(data: rtc.RpcInvocationData) -> str:
            calls.append(data.payload)
            return "ok"

        b.local_participant.register_rpc_method("m", handler)
        pending = a.local_participant._rpc._calls
        async with testing.stall(b, testing.participant("a")):
            call = asyncio.ensure_future(_call(a, "m", "during the stall"))
            # acked by b's RoomActor on arrival, while the actor that routes it to b's handler is stuck
            await wait_until(lambda: any(c.acked for c in pending.values()), what="the ack")
            assert calls == []
        assert await call == "ok"
        old = await testing.crash(b, testing.participant("a"))
        await testing.serving(b, testing.participant("a"), since=old)
        assert await _call(a, "m", "after the crash") == "ok"
        assert calls == ["during the stall", "after the crash"]
        assert [r.name for r in await testing.restart_history(b)] == ["a"]
        for room in (a, b):
            await room.disconnect()

    run_with_server(scenario)


class _Tag(rtc.RpcInterceptor):
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    async def intercept_outgoing(self, call: rtc.RpcCallInfo, next: Any) -> str:
        self.log.append(f"out {self.name}")
        call.payload += f"+{self.name}"
        return str(await next(call))

    async def intercept_incoming(self, invocation: rtc.RpcInvocationData, next: Any) -> str | None:
        self.log.append(f"in {self.name}")
        result = await next(invocation)
        return f"{result}<{self.name}"


def test_interceptors_wrap_both_directions_first_added_outermost() -> None:
    async def scenario(server: DevServer) -> None:
        a, b = await connect(server, "a"), await connect(server, "b")
        log: list[str] = []
        b.local_participant.register_rpc_method("echo", lambda d: d.payload)
        outer, inner = _Tag("1", log), _Tag("2", log)
        for tag in (outer, inner, outer):  # adding the same one twice is a no-op
            a.local_participant.add_rpc_interceptor(tag)
        b.local_participant.add_rpc_interceptor(_Tag("b", log))
        assert await _call(a, "echo", "x") == "x+1+2<b"
        assert log == ["out 1", "out 2", "in b"]
        a.local_participant.remove_rpc_interceptor(outer)
        assert await _call(a, "echo", "y") == "y+2<b"
        for room in (a, b):
            await room.disconnect()

    run_with_server(scenario)


def test_an_old_server_is_refused_before_anything_is_sent() -> None:
    async def scenario() -> None:
        engine = RpcEngine(RoomPort.detached(), lambda identity: 0, server_version="1.7.2")
        with pytest.raises(rtc.RpcError) as info:
            await engine.perform(rtc.RpcCallInfo("b", "m", "p"))
        assert (info.value.code, info.value.message) == (1403, "RPC not supported by server")

    asyncio.run(scenario())


def test_handlers_that_misuse_cancellation() -> None:
    """A handler raising CancelledError of its own is its failure (1500); one that swallows its deadline's
    cancellation still ends with 1502, and the callee carries on."""

    async def scenario(server: DevServer) -> None:
        a, b = await connect(server, "a"), await connect(server, "b")
        swallowed: list[Any] = []

        async def self_cancelled(data: rtc.RpcInvocationData) -> str:
            raise asyncio.CancelledError

        async def stubborn(data: rtc.RpcInvocationData) -> str:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                swallowed.append(data.cancel_reason)  # and carries on regardless
            return "too late"

        b.local_participant.register_rpc_method("self_cancelled", self_cancelled)
        b.local_participant.register_rpc_method("stubborn", stubborn)
        b.local_participant.register_rpc_method("echo", lambda d: d.payload)
        assert (await _error(a, "self_cancelled")).code == Code.APPLICATION_ERROR
        assert (await _error(a, "stubborn", response_timeout=0.2)).code == Code.RESPONSE_TIMEOUT
        await wait_until(lambda: swallowed == [Code.RESPONSE_TIMEOUT], what="the swallowed deadline")
        assert await _call(a, "echo", "fine") == "fine"
        for room in (a, b):
            await room.disconnect()

    run_with_server(scenario)
