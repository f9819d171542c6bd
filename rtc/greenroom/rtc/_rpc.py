"""How a ``LocalParticipant`` performs and answers RPCs: :class:`RpcEngine`, one per local participant.

The engine lives on the user's loop, like every view. Its packets travel like any data packet: out through
the connection's :class:`~greenroom.rtc._port.RoomPort` (``PublishPacket`` → RoomActor → data plane), in
through the mailboxes (RoomActor → the sender's ParticipantActor → the room's reducer →
:meth:`RpcEngine.receive`). Two things are not done here:

* **the ack**: the RoomActor acknowledges a request the moment it arrives
  (:func:`greenroom.codecs.rpc.ack_for`), so a busy or blocked user loop cannot make the caller give up
  with 1501;
* the wire rules (codes, limits, versions, timeouts): :mod:`greenroom.codecs.rpc`.

**Caller** (``perform_rpc``): v2 — the payload as a text stream on ``lk.rpc_request`` — when the callee
announces ``client_protocol >= 1`` and a stream sender is wired in, else one ``RpcRequest`` (v1, at most
15 360 bytes: 1402 otherwise). Then, as the Rust SDK behind ``livekit.rtc``: the ack within
``max_round_trip_latency`` (7 s) or 1501, then the answer within ``response_timeout`` (15 s) or 1502. A
response that overtakes its ack is accepted. Unlike the Rust SDK (which waits for its timer), a call whose
callee leaves the room fails at once with 1503, as in JS; so does every call when the room disconnects.

**Callee** (``register_rpc_method``): each request runs the interceptors and its handler (sync or async) in
a task on the user's loop, cancelled at the caller's ``response_timeout`` (→ 1502, ``cancel_reason`` set
first). A handler that raises ``RpcError`` answers with it; any other exception is logged and answers 1500;
an unknown method answers 1400, a v1 request of another version 1404, a v1 response over 15 360 bytes
1504. Nothing a handler does can stop the room or another call: a crash is contained in its task, like a
crash inside an actor is contained by its supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from greenroom.actors.messages import PublishPacket
from greenroom.codecs import packets
from greenroom.codecs import rpc as wire
from greenroom.codecs.errors import GreenroomError
from greenroom.rtc.data_stream import StreamError, TextStreamReader
from greenroom.rtc.rpc import (
    RpcCallInfo,
    RpcError,
    RpcHandler,
    RpcInterceptor,
    RpcInvocationData,
    chain_incoming,
    chain_outgoing,
)

if TYPE_CHECKING:
    from greenroom.rtc._port import RoomPort

__all__ = ["RpcEngine", "TextSender"]

_log = logging.getLogger("greenroom.rtc.rpc")

#: Sends ``text`` as a text stream: ``(text, topic, attributes, destinations, on_failure)``; v2 requests and
#: responses. A single-packet stream is posted (not waited for); a failure to hand it over comes to
#: ``on_failure`` later, on the user's loop.
TextSender = Callable[
    [str, str, packets.Attributes, tuple[str, ...], Callable[[ConnectionError], None]], Awaitable[None]
]


@dataclass(eq=False)
class _Call:
    """One outgoing call: its answer (a future of the user's loop) and the timer running for it — the ack's,
    then, once acked, the answer's. Timers, not ``wait_for``: an answer wakes the caller in one step."""

    destination: str
    answer: asyncio.Future[str]
    request_id: str
    response_timeout: float
    acked: bool = False
    timer: asyncio.TimerHandle | None = field(default=None)

    def fail(self, code: wire.ErrorCode, data: str = "") -> None:
        if not self.answer.done():
            self.answer.set_exception(RpcError._built_in(code, data))

    def ack(self) -> None:
        """The callee acknowledged: from now on the answer's own timer runs (Rust: after the ack)."""
        if self.acked:
            return
        self.acked = True
        if self.timer is not None:
            self.timer.cancel()
        loop = self.answer.get_loop()
        self.timer = loop.call_later(self.response_timeout, self.fail, wire.ErrorCode.RESPONSE_TIMEOUT)


class RpcEngine:
    """The RPC state of one local participant: handlers, interceptors, calls in flight, handlers running.

    Args:
        port: the connection's port (packets out).
        client_protocol: the ``client_protocol`` a remote identity announced (0 when unknown).
        server_version: the server's version (RPC needs ≥ 1.8.0: 1403 otherwise).
    """

    def __init__(
        self,
        port: RoomPort,
        client_protocol: Callable[[str], int],
        server_version: str = "",
    ) -> None:
        self._port = port
        self._client_protocol = client_protocol
        self._server_version = server_version
        self._text_sender: TextSender | None = None
        self.handlers: dict[str, RpcHandler] = {}
        self.interceptors: list[RpcInterceptor] = []
        self._calls: dict[str, _Call] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._invocations: dict[asyncio.Task[Any], RpcInvocationData] = {}  # handlers running, by task
        self._closed = False

    def use_streams(self, sender: TextSender) -> None:
        """Send v2 requests and responses with ``sender`` (text streams) to peers that take them."""
        self._text_sender = sender

    # -- caller ---------------------------------------------------------------------------------------------

    async def perform(self, call: RpcCallInfo) -> str:
        """Run ``call`` through the interceptors (first added outermost) and perform it."""
        return await chain_outgoing(list(self.interceptors), self._perform)(call)

    async def _perform(self, call: RpcCallInfo) -> str:
        if self._closed:
            raise RpcError._built_in(wire.ErrorCode.SEND_FAILED, "the room is not connected")
        if not wire.server_supports_rpc(self._server_version):
            raise RpcError._built_in(wire.ErrorCode.UNSUPPORTED_SERVER)
        destination = call.destination_identity
        v2 = self._text_sender is not None and wire.uses_v2(self._client_protocol(destination))
        if not v2 and wire.payload_bytes(call.payload) > wire.MAX_V1_PAYLOAD_BYTES:
            raise RpcError._built_in(wire.ErrorCode.REQUEST_PAYLOAD_TOO_LARGE)
        response_timeout = (
            wire.DEFAULT_RESPONSE_TIMEOUT if call.response_timeout is None else call.response_timeout
        )
        ack_timeout = (
            wire.DEFAULT_MAX_ROUND_TRIP_LATENCY
            if call.max_round_trip_latency is None
            else call.max_round_trip_latency
        )
        loop = asyncio.get_running_loop()
        request_id = str(uuid.uuid4())
        pending = _Call(destination, loop.create_future(), request_id, response_timeout)
        self._calls[request_id] = pending  # before sending: the answer may come back quickly
        try:
            await self._send_request(pending, call, wire.callee_timeout_ms(response_timeout, ack_timeout), v2)
            if not pending.acked:  # the ack's timer starts once the request is handed over (as Rust)
                pending.timer = loop.call_later(ack_timeout, pending.fail, wire.ErrorCode.CONNECTION_TIMEOUT)
            return await pending.answer
        finally:
            self._calls.pop(request_id, None)
            if pending.timer is not None:
                pending.timer.cancel()
            _settle(pending.answer)

    async def _send_request(self, pending: _Call, call: RpcCallInfo, timeout_ms: int, v2: bool) -> None:
        """Send the request; a single packet is posted and its failure fails the call later (1501 timer
        or 1505 SEND_FAILED, whichever comes first)."""
        destinations = (pending.destination,)

        def failed(exc: Exception) -> None:
            pending.fail(wire.ErrorCode.SEND_FAILED, str(exc))

        try:
            if v2:
                assert self._text_sender is not None
                attributes = wire.v2_request_attributes(pending.request_id, call.method, timeout_ms)
                await self._text_sender(call.payload, wire.REQUEST_TOPIC, attributes, destinations, failed)
            else:
                request = packets.RpcRequest(
                    id=pending.request_id,
                    method=call.method,
                    payload=call.payload,
                    response_timeout_ms=timeout_ms,
                    version=wire.VERSION_V1,
                )
                self._port.post(lambda r: PublishPacket(request, destinations, r), failed)
        except (GreenroomError, ConnectionError) as exc:  # ConnectionError: a stream's StreamError
            raise RpcError._built_in(wire.ErrorCode.SEND_FAILED, str(exc)) from exc

    def _acked(self, request_id: str) -> None:
        pending = self._calls.get(request_id)
        if pending is None:
            _log.debug("an ack for no call of ours: %s", request_id)
        else:
            pending.ack()

    def answered(self, request_id: str, payload: str | None, error: RpcError | None) -> None:
        """A call's answer arrived (a v1 response packet, a v2 response stream, or an error packet)."""
        pending = self._calls.get(request_id)
        if pending is None:
            _log.debug("an answer for no call of ours: %s", request_id)
            return
        pending.ack()  # an answer that overtook its ack is accepted (JS logs it)
        if not pending.answer.done():
            if error is not None:
                pending.answer.set_exception(error)
            else:
                pending.answer.set_result(payload or "")

    def departed(self, identity: str) -> None:
        """``identity`` left the room: its calls fail with 1503 now (not at their timeout)."""
        for pending in list(self._calls.values()):
            if pending.destination == identity:
                pending.fail(wire.ErrorCode.RECIPIENT_DISCONNECTED)

    # -- callee ---------------------------------------------------------------------------------------------

    def receive(self, identity: str, value: packets.RpcValue) -> None:
        """An RPC packet from ``identity``, in order with everything else from the room."""
        match value:
            case packets.RpcRequest():
                if value.version != wire.VERSION_V1:
                    self._spawn(self._refuse(identity, value.id, wire.ErrorCode.UNSUPPORTED_VERSION))
                    return
                invocation = RpcInvocationData(
                    value.id, identity, value.payload, value.response_timeout_ms / 1000, method=value.method
                )
                self._spawn(self._answer(invocation, v2=False))
            case packets.RpcAck(request_id=request_id):
                self._acked(request_id)
            case packets.RpcResponse(request_id=request_id, payload=payload, error=error):
                self.answered(request_id, payload, None if error is None else RpcError._from_wire(error))

    def stream(self, topic: str, reader: TextStreamReader, identity: str) -> None:
        """A text stream on an RPC topic: a v2 request (``lk.rpc_request``) or answer (``…_response``)."""
        if topic == wire.REQUEST_TOPIC:
            request = wire.parse_v2_request(reader.info.attributes or {})
            if request.version != wire.VERSION_V2:  # acked already (by the RoomActor); not read
                reader.close()
                self._spawn(self._refuse(identity, request.request_id, wire.ErrorCode.UNSUPPORTED_VERSION))
                return
            complete = reader._complete()  # a single-packet stream: no need for a task to read it
            if complete is None:
                self._spawn(self._read_request(identity, request, reader))
            else:
                self._spawn(self._answer(self._invocation(identity, request, "".join(complete)), v2=True))
            return
        request_id = (reader.info.attributes or {}).get(wire.ATTR_REQUEST_ID, "")
        pending = self._calls.get(request_id)
        if pending is None or pending.destination != identity:  # not ours, or not from the callee (as JS)
            _log.debug("an answer stream for no call of ours: %s from %s", request_id, identity)
            reader.close()
            return
        complete = reader._complete()
        if complete is None:
            self._spawn(self._read_answer(request_id, reader))
        else:
            self.answered(request_id, "".join(complete), None)

    @staticmethod
    def _invocation(identity: str, request: wire.V2Request, payload: str) -> RpcInvocationData:
        seconds = request.response_timeout_ms / 1000
        return RpcInvocationData(request.request_id, identity, payload, seconds, method=request.method)

    async def _read_request(self, identity: str, request: wire.V2Request, reader: TextStreamReader) -> None:
        try:
            payload = await reader.read_all()
        except StreamError as exc:  # as the Rust callee: 1500 saying why
            why = f"Failed to read request stream: {exc.description}"
            await self._refuse(identity, request.request_id, wire.ErrorCode.APPLICATION_ERROR, why)
            return
        await self._answer(self._invocation(identity, request, payload), v2=True)

    async def _read_answer(self, request_id: str, reader: TextStreamReader) -> None:
        try:
            payload = await reader.read_all()
        except StreamError as exc:
            error = RpcError._built_in(
                wire.ErrorCode.APPLICATION_ERROR, f"Failed to read response stream: {exc.description}"
            )
            self.answered(request_id, None, error)
            return
        self.answered(request_id, payload, None)

    def _spawn(self, work: Awaitable[None]) -> None:
        if self._closed:
            return
        task = asyncio.ensure_future(work)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _refuse(
        self, caller: str, request_id: str, code: wire.ErrorCode, data: str | None = None
    ) -> None:
        await self._respond(caller, packets.RpcResponse(request_id, error=wire.built_in(code, data)))

    async def _answer(self, invocation: RpcInvocationData, *, v2: bool) -> None:
        caller, request_id = invocation.caller_identity, invocation.request_id
        try:
            payload = await self._run_chain(invocation)
        except RpcError as error:
            response = packets.RpcResponse(request_id, error=error._to_wire())
        except Exception:
            _log.exception("RPC handler for %r failed: answering APPLICATION_ERROR", invocation.method)
            response = packets.RpcResponse(request_id, error=wire.built_in(wire.ErrorCode.APPLICATION_ERROR))
        else:
            payload = payload or ""
            if v2 and self._text_sender is not None:
                await self._respond_stream(caller, request_id, payload)
                return
            if wire.payload_bytes(payload) > wire.MAX_V1_PAYLOAD_BYTES:
                too_large = wire.built_in(wire.ErrorCode.RESPONSE_PAYLOAD_TOO_LARGE)
                response = packets.RpcResponse(request_id, error=too_large)
            else:
                response = packets.RpcResponse(request_id, payload=payload)
        await self._respond(caller, response)

    async def _run_chain(self, invocation: RpcInvocationData) -> str | None:
        """The interceptors and the handler, in this task, under the caller's deadline (→ 1502).

        The deadline is a timer that sets ``cancel_reason`` and then cancels this task (as ``asyncio.timeout``
        does, but naming the reason first, as ``livekit.rtc``); a cancellation from outside (the room
        disconnecting, :meth:`close`) propagates, and a ``CancelledError`` the handler raises on its own is
        its failure (1500). Run in the answering task itself — no task per call — a handler that ignores its
        cancellation delays its own answer, which the caller's timer has made moot by then.
        """
        chain = chain_incoming(list(self.interceptors), self._invoke_handler)
        task = asyncio.current_task()
        assert task is not None
        fired = False

        def deadline() -> None:
            nonlocal fired
            fired = True
            invocation.cancel_reason = wire.ErrorCode.RESPONSE_TIMEOUT
            task.cancel()

        timer = asyncio.get_running_loop().call_later(invocation.response_timeout, deadline)
        self._invocations[task] = invocation
        try:
            result = await chain(invocation)
        except asyncio.CancelledError:
            if fired and task.uncancel() == 0:
                raise RpcError._built_in(wire.ErrorCode.RESPONSE_TIMEOUT) from None
            if task.cancelling() == 0:  # nobody cancelled us: the handler raised it
                _log.warning("RPC handler for %r raised CancelledError", invocation.method)
                raise RpcError._built_in(wire.ErrorCode.APPLICATION_ERROR) from None
            raise
        finally:
            timer.cancel()
            del self._invocations[task]
        if fired:  # the handler swallowed its cancellation and returned: too late all the same
            task.uncancel()
            raise RpcError._built_in(wire.ErrorCode.RESPONSE_TIMEOUT)
        return result

    async def _invoke_handler(self, invocation: RpcInvocationData) -> str | None:
        handler = self.handlers.get(invocation.method)
        if handler is None:
            raise RpcError._built_in(wire.ErrorCode.UNSUPPORTED_METHOD)
        result = handler(invocation)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def _respond(self, caller: str, response: packets.RpcResponse) -> None:
        """Post the answer (not waited for: the caller's timer covers one that never leaves)."""

        def failed(exc: GreenroomError) -> None:
            _log.warning("could not answer RPC %s to %s: %s", response.request_id, caller, exc)

        self._port.post(lambda r: PublishPacket(response, (caller,), r), failed)

    async def _respond_stream(self, caller: str, request_id: str, payload: str) -> None:
        assert self._text_sender is not None
        attributes = packets.freeze_attributes({wire.ATTR_REQUEST_ID: request_id})

        def failed(exc: Exception) -> None:
            _log.warning("could not stream the answer of RPC %s to %s: %s", request_id, caller, exc)
            error = wire.built_in(wire.ErrorCode.SEND_FAILED, str(exc))
            self._spawn(self._respond(caller, packets.RpcResponse(request_id, error=error)))

        try:
            await self._text_sender(payload, wire.RESPONSE_TOPIC, attributes, (caller,), failed)
        except (GreenroomError, ConnectionError) as exc:
            failed(exc)

    # -- the end --------------------------------------------------------------------------------------------

    def close(self) -> None:
        """The room disconnected: calls in flight fail with 1503 and running handlers are cancelled."""
        self._closed = True
        for pending in list(self._calls.values()):
            pending.fail(wire.ErrorCode.RECIPIENT_DISCONNECTED)
        for task in self._running:
            invocation = self._invocations.get(task)
            if invocation is not None and invocation.cancel_reason is None:
                invocation.cancel_reason = wire.ErrorCode.RECIPIENT_DISCONNECTED  # named before the cancel
            task.cancel()

    async def drain(self) -> None:
        """Wait for the cancelled handlers to finish unwinding (``Room.disconnect`` does)."""
        running = list(self._running)
        with contextlib.suppress(Exception):
            await asyncio.gather(*running, return_exceptions=True)


def _settle(future: asyncio.Future[str]) -> None:
    """Cancel a call's future, or retrieve its outcome so the loop does not report it as never retrieved."""
    if not future.done():
        future.cancel()
    elif not future.cancelled():
        future.exception()
