"""A blocking facade over :class:`~greenroom.rtc.Room` for synchronous hosts (Celery, RQ, multiprocessing).

:class:`SyncRoom` offers the operations of ``Room`` as plain blocking calls, each with a timeout, usable from
any thread that has no event loop — a worker process's main thread, a thread pool, a ``multiprocessing``
child (spawned or forked, also after the parent used greenroom itself)::

    from greenroom.rtc.sync import SyncRoom

    with SyncRoom() as room:                       # the with-block disconnects on the way out
        room.connect(url, token, timeout=10)
        room.local_participant.publish_data(b"hello", topic="chat")
        for event in room.events(timeout=5):       # the primary style: pull events
            if event.name == "data_received":
                packet = event.args[0]             # an rtc.DataPacket, as with Room
                room.local_participant.publish_data(packet.data, destination_identities=[...])

How it works: each connected ``SyncRoom`` runs a private asyncio loop on its own daemon thread (the room's
**event thread**, named ``greenroom-sync-<n>``) and an ordinary async ``Room`` on it. A blocking call
submits the matching coroutine to that loop and waits for it (``concurrent.futures.Future.result``); the
Room itself talks to the actors on greenroom's runtime loop as usual. ``disconnect()`` stops the actor tree,
then the event loop, and joins the event thread: nothing of the room is left afterwards.

**Events — pull is the primary style.** Every event the async ``Room`` emits (same names, same arguments)
is queued as a :class:`SyncEvent` ``(name, args)``; take them with :meth:`SyncRoom.next_event`,
:meth:`SyncRoom.events` (an iterator) or :meth:`SyncRoom.wait_for`. The queue is bounded
(``max_queued_events``, default 10 000); when full the oldest event is dropped and counted in
:attr:`SyncRoom.dropped_events`; ``max_queued_events=0`` turns queueing off. Callbacks work too:
:meth:`~greenroom.rtc.EventEmitter.on`/``once``/``off`` as on ``Room``; they run on the event thread
(never on the runtime loop, never on the caller's thread), one at a time in event order. A callback must
not call the blocking methods of its own room — that would wait on the thread it runs on — so they raise
:class:`SyncRoomError` there instead of deadlocking; use the pull style to react to events.

**Processes.** A ``SyncRoom`` belongs to the process that created it: greenroom starts its threads lazily in
each process (never at import), so a forked child builds its own rooms; using a room inherited through
``fork()`` raises :class:`SyncRoomError`. Create the room inside the worker (Celery ``worker_process_init``
or the task itself, RQ's job, a ``multiprocessing`` target). Call
:func:`greenroom.runtime.loop.shutdown` in the worker's shutdown hook if it must release the runtime thread
before exit (it is a daemon thread and is also stopped at exit).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from types import TracebackType
from typing import Any, Protocol, TypeVar

from greenroom.codecs.errors import GreenroomError
from greenroom.rtc._enums import ConnectionState, DisconnectReason
from greenroom.rtc.event_emitter import EventEmitter
from greenroom.rtc.participant import LocalParticipant, RemoteParticipant
from greenroom.rtc.room import DEFAULT_CONNECT_TIMEOUT, ConnectError, EventTypes, Room, RoomOptions
from greenroom.rtc.transcription import Transcription

__all__ = [
    "DEFAULT_TIMEOUT",
    "SyncEvent",
    "SyncLocalParticipant",
    "SyncRoom",
    "SyncRoomError",
]

_log = logging.getLogger("greenroom.rtc.sync")

T = TypeVar("T")

#: Seconds a blocking call (other than ``connect``) waits unless given ``timeout``.
DEFAULT_TIMEOUT = 10.0
#: Extra seconds ``connect`` waits beyond the room's own deadline for the teardown to report back.
_CONNECT_MARGIN = 5.0
_counter = itertools.count(1)


class SyncRoomError(GreenroomError):
    """The sync facade was misused: not connected, called from its own event thread, or used in a process
    other than the one that created it."""


@dataclasses.dataclass(frozen=True, slots=True)
class SyncEvent:
    """One room event, as ``Room`` emits it.

    Attributes:
        name: the ``livekit.rtc`` event name (``"data_received"``, ``"participant_connected"`` …).
        args: the event's arguments, in the official order (``data_received`` → ``(DataPacket,)``).
    """

    name: str
    args: tuple[Any, ...]


class _TappedRoom(Room):
    """A ``Room`` whose events go to the sync facade instead of its own listeners."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, tap: Callable[[EventTypes, tuple[Any, ...]], None]
    ) -> None:
        super().__init__(loop)
        self._tap = tap

    def _emit_contained(self, event: EventTypes, *args: Any) -> None:
        self._tap(event, args)  # the room's own delivery path (EventEmitter._emit_contained)

    @property
    def current_sid(self) -> str:
        """The room's sid if it joined, else ``""`` (``Room.sid`` waits for it instead)."""
        return self._view.info.sid


class _EventThread:
    """A private asyncio loop on a daemon thread: where the async Room lives and callbacks run."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=f"greenroom-sync-{next(_counter)}", daemon=True)
        started = threading.Event()
        self.loop.call_soon(started.set)
        self.thread.start()
        started.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            tasks = asyncio.all_tasks(self.loop)
            for task in tasks:
                task.cancel()
            if tasks:
                self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self.loop.close()

    def here(self) -> bool:
        return threading.current_thread() is self.thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self, timeout: float) -> None:
        with contextlib.suppress(RuntimeError):  # already closed
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)
        if self.thread.is_alive():
            _log.warning("event thread %s did not stop within %.1f s", self.thread.name, timeout)


async def _connect(room: Room, url: str, token: str, options: RoomOptions, deadline: float) -> None:
    # A safety net over Room's own deadline; wait_for waits for the cancelled connect to tear down.
    try:
        await asyncio.wait_for(room.connect(url, token, options), deadline)
    except TimeoutError:
        raise ConnectError(f"timed out after {options.connect_timeout} s") from None


def _result(future: concurrent.futures.Future[T], timeout: float, what: str) -> T:
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise TimeoutError(f"{what} did not finish within {timeout} s") from None
    except concurrent.futures.CancelledError:
        raise SyncRoomError(f"{what} was cancelled: the room was disconnected") from None


class _Runner(Protocol):
    def __call__(self, coro: Coroutine[Any, Any, None], timeout: float, what: str) -> None: ...


class SyncLocalParticipant:
    """The blocking view of the local participant (``SyncRoom.local_participant``).

    Properties read the latest state without blocking; each method blocks until the server-bound message has
    been handed to the transport (``publish_*``) or the server confirmed it (``set_*``), or ``timeout``
    seconds passed (:class:`TimeoutError`). Errors are those of :class:`~greenroom.rtc.LocalParticipant`
    (``PublishDataError`` …).
    """

    def __init__(self, run: _Runner, participant: LocalParticipant) -> None:
        """Wrap ``participant``; ``run(coro, timeout, what)`` runs a coroutine on the room's event thread."""
        self._run = run
        self._participant = participant

    @property
    def identity(self) -> str:
        """The identity from the token."""
        return self._participant.identity

    @property
    def sid(self) -> str:
        """The participant's server id (``PA_…``)."""
        return self._participant.sid

    @property
    def name(self) -> str:
        """The display name."""
        return self._participant.name

    @property
    def metadata(self) -> str:
        """Application metadata."""
        return self._participant.metadata

    @property
    def attributes(self) -> dict[str, str]:
        """A copy of the attributes."""
        return self._participant.attributes

    def publish_data(
        self,
        payload: bytes | str,
        *,
        reliable: bool = True,
        destination_identities: list[str] | None = None,
        topic: str = "",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Send ``payload`` to the room (or to ``destination_identities``); see ``LocalParticipant``.

        Raises:
            PublishDataError: too large, not connected, or sending failed.
            TimeoutError: not sent within ``timeout`` seconds.
        """
        coro = self._participant.publish_data(
            payload, reliable=reliable, destination_identities=destination_identities, topic=topic
        )
        self._run(coro, timeout, "publish_data")

    def publish_dtmf(self, *, code: int, digit: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Send a SIP DTMF tone.

        Raises:
            PublishDTMFError: not connected or sending failed.
            TimeoutError: not sent within ``timeout`` seconds.
        """
        self._run(self._participant.publish_dtmf(code=code, digit=digit), timeout, "publish_dtmf")

    def publish_transcription(
        self, transcription: Transcription, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        """Send transcription segments: the packet (forwarded by the server only from agents) and
        ``lk.transcription`` text streams (see the async ``publish_transcription``).

        Raises:
            PublishTranscriptionError: not connected or sending failed.
            TimeoutError: not sent within ``timeout`` seconds.
        """
        coro = self._participant.publish_transcription(transcription)
        self._run(coro, timeout, "publish_transcription")

    def set_metadata(self, metadata: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Set the metadata (needs ``canUpdateOwnMetadata``); returns once the server confirmed it."""
        self._run(self._participant.set_metadata(metadata), timeout, "set_metadata")

    def set_name(self, name: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Set the display name (needs ``canUpdateOwnMetadata``)."""
        self._run(self._participant.set_name(name), timeout, "set_name")

    def set_attributes(self, attributes: dict[str, str], *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Merge ``attributes`` into the participant's (an empty value deletes a key)."""
        self._run(self._participant.set_attributes(attributes), timeout, "set_attributes")

    def __repr__(self) -> str:
        return f"rtc.sync.SyncLocalParticipant(sid={self.sid}, identity={self.identity})"


class SyncRoom(EventEmitter[EventTypes]):
    """A room client with blocking calls, for threads and processes without an event loop.

    See the module docstring for the threading model. Events are queued for :meth:`next_event` /
    :meth:`events` / :meth:`wait_for` (the primary style) and also passed to callbacks registered with
    ``on``/``once`` (run on the room's event thread, in order).

    Args:
        max_queued_events: how many events wait for :meth:`next_event` before the oldest is dropped;
            ``0`` queues none (callbacks only).
    """

    def __init__(self, *, max_queued_events: int = 10_000) -> None:
        super().__init__()
        if max_queued_events < 0:
            raise ValueError("max_queued_events must be >= 0")
        self._pid = os.getpid()
        self._capacity = max_queued_events
        self._queue: collections.deque[SyncEvent] = collections.deque()
        self._ready = threading.Condition()
        self._dropped = 0
        self._lock = threading.Lock()  # serialises connect/disconnect
        self._thread: _EventThread | None = None
        self._room: _TappedRoom | None = None
        self._local: SyncLocalParticipant | None = None

    # -- lifecycle ----------------------------------------------------------------------------------------

    def connect(
        self, url: str, token: str, options: RoomOptions | None = None, *, timeout: float | None = None
    ) -> None:
        """Join the room at ``url`` with ``token``; returns once connected.

        Args:
            url: the server's ``ws(s)://`` URL.
            token: a join token.
            options: as for ``Room.connect``.
            timeout: the whole connect deadline in seconds (default: ``options.connect_timeout``, else 15).

        Raises:
            ConnectError: refused, unreachable, server gone, or the deadline passed (nothing is left
                running then).
            SyncRoomError: already connected, or called from the room's event thread.
        """
        self._check_process()
        self._check_not_event_thread("connect")
        options = options or RoomOptions()
        deadline = timeout if timeout is not None else options.connect_timeout or DEFAULT_CONNECT_TIMEOUT
        options = dataclasses.replace(options, connect_timeout=deadline)
        with self._lock:
            if self._thread is not None:
                raise SyncRoomError("the room is already connected; disconnect() first")
            self._thread = thread = _EventThread()
            try:
                room = _result(
                    thread.submit(self._make_room(thread.loop)), DEFAULT_TIMEOUT, "creating the room"
                )
                self._room = room
                coro = _connect(room, url, token, options, deadline + _CONNECT_MARGIN)
                _result(thread.submit(coro), deadline + 2 * _CONNECT_MARGIN, "connect")
            except TimeoutError:
                self._close_locked(DEFAULT_TIMEOUT)
                raise ConnectError(f"timed out after {deadline} s") from None
            except BaseException:
                self._close_locked(DEFAULT_TIMEOUT)
                raise
            self._local = SyncLocalParticipant(self._run, room.local_participant)

    async def _make_room(self, loop: asyncio.AbstractEventLoop) -> _TappedRoom:
        return _TappedRoom(loop, self._on_room_event)

    def disconnect(
        self,
        reason: DisconnectReason = DisconnectReason.CLIENT_INITIATED,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Leave the room and stop its actors, tasks and event thread (a no-op when not connected).

        Events already queued stay available to :meth:`next_event` (the last is ``disconnected``).

        Raises:
            SyncRoomError: called from the room's event thread (a callback).
        """
        self._check_process()
        self._check_not_event_thread("disconnect")
        with self._lock:
            self._close_locked(timeout, reason)

    def _close_locked(
        self, timeout: float, reason: DisconnectReason = DisconnectReason.CLIENT_INITIATED
    ) -> None:
        thread, room = self._thread, self._room
        self._thread, self._room, self._local = None, None, None
        if thread is None:
            return
        if room is not None and thread.thread.is_alive():
            try:
                _result(thread.submit(room.disconnect(reason)), timeout, "disconnect")
            except Exception:
                _log.exception("disconnect failed; stopping the event thread anyway")
        thread.stop(timeout)

    def close(self) -> None:
        """Same as :meth:`disconnect` (for ``contextlib.closing``)."""
        self.disconnect()

    def __enter__(self) -> SyncRoom:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.disconnect()

    # -- state ----------------------------------------------------------------------------------------------

    def isconnected(self) -> bool:
        """Whether the room is connected (or reconnecting)."""
        room = self._room
        return room is not None and room.isconnected()

    @property
    def connection_state(self) -> ConnectionState:
        """Connected, reconnecting or disconnected."""
        room = self._room
        return ConnectionState.CONN_DISCONNECTED if room is None else room.connection_state

    @property
    def sid(self) -> str:
        """The room's server id (``RM_…``); empty when not connected."""
        room = self._room
        return "" if room is None else room.current_sid

    @property
    def name(self) -> str:
        """The room's name; empty when not connected."""
        room = self._room
        return "" if room is None else room.name

    @property
    def metadata(self) -> str:
        """The room's metadata."""
        room = self._room
        return "" if room is None else room.metadata

    @property
    def local_participant(self) -> SyncLocalParticipant:
        """The local participant (its blocking view).

        Raises:
            SyncRoomError: not connected.
        """
        local = self._local
        if local is None:
            raise SyncRoomError("cannot access the local participant before connecting")
        return local

    @property
    def remote_participants(self) -> Mapping[str, RemoteParticipant]:
        """A snapshot of the other participants, by identity (taken on the event thread, so consistent)."""
        thread, room = self._thread, self._room
        if thread is None or room is None:
            return {}
        if thread.here():
            return dict(room.remote_participants)

        async def snapshot() -> dict[str, RemoteParticipant]:
            return dict(room.remote_participants)

        return self._run(snapshot(), DEFAULT_TIMEOUT, "remote_participants")

    @property
    def dropped_events(self) -> int:
        """Events dropped because the queue was full."""
        return self._dropped

    # -- events ---------------------------------------------------------------------------------------------

    def next_event(self, timeout: float | None = None) -> SyncEvent | None:
        """Take the oldest queued event, waiting up to ``timeout`` seconds (``None``: forever).

        Returns:
            The event, or ``None`` when none arrived in time.
        """
        with self._ready:
            if not self._ready.wait_for(lambda: bool(self._queue), timeout):
                return None
            return self._queue.popleft()

    def events(self, timeout: float | None = None) -> Iterator[SyncEvent]:
        """Iterate over events as they arrive; stops after ``disconnected`` or ``timeout`` idle seconds.

        Args:
            timeout: the longest wait for the next event (``None``: forever, until ``disconnected``).
        """
        while (event := self.next_event(timeout)) is not None:
            yield event
            if event.name == "disconnected":
                return

    def wait_for(
        self, name: str, predicate: Callable[..., bool] | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> SyncEvent:
        """Take events until one named ``name`` whose args satisfy ``predicate`` arrives (others are dropped).

        Raises:
            TimeoutError: none arrived within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            event = self.next_event(left)
            if event is not None and event.name == name and (predicate is None or predicate(*event.args)):
                return event
        raise TimeoutError(f"no {name!r} event within {timeout} s")

    def _on_room_event(self, name: EventTypes, args: tuple[Any, ...]) -> None:
        # On the event thread: the queue first, then the callbacks (in registration order).
        if self._capacity > 0:
            self._enqueue(SyncEvent(name, args))
        self._emit_contained(name, *args)

    def _enqueue(self, event: SyncEvent) -> None:
        with self._ready:
            if len(self._queue) >= self._capacity:
                self._queue.popleft()
                self._dropped += 1
                if self._dropped == 1:
                    _log.warning("event queue full (%d): dropping the oldest events", self._capacity)
            self._queue.append(event)
            self._ready.notify()

    # -- plumbing -------------------------------------------------------------------------------------------

    def _check_process(self) -> None:
        if os.getpid() != self._pid:
            raise SyncRoomError(
                f"this SyncRoom was created in process {self._pid}; create a new one in this process"
            )

    def _check_not_event_thread(self, what: str) -> None:
        thread = self._thread
        if thread is not None and thread.here():
            raise SyncRoomError(
                f"{what}() would block the room's event thread on itself; "
                "react to events with next_event()/events() from another thread instead"
            )

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float, what: str) -> T:
        try:
            self._check_process()
            self._check_not_event_thread(what)
            thread = self._thread
            if thread is None:
                raise SyncRoomError(f"{what}(): the room is not connected")
        except BaseException:
            coro.close()
            raise
        return _result(thread.submit(coro), timeout, what)

    def __repr__(self) -> str:
        return (
            f"rtc.sync.SyncRoom(sid={self.sid or 'unknown'}, connection_state={self.connection_state.name})"
        )
