"""Every private part of pykka that greenroom's actors use, checked when this module is imported.

:mod:`greenroom.actors.core` builds asyncio actors on pykka's ``Actor`` base class by overriding the
extension points pykka keeps for new actor types, and it reads two private attributes. Those names, and the
internal message classes, are imported from here and nowhere else. Importing this module runs
:func:`greenroom.runtime.seams_check.check` over :data:`SEAMS`: a pykka outside :data:`EXPECTED` (the pin in
``pyproject.toml``), or one in which a seam is missing or changed shape, raises
:class:`~greenroom.runtime.seams_check.DependencyMismatchError` at import time.

The seams, with the place in pykka 4.5.0 each relies on (paths under ``pykka/``):

* ``_envelope.Envelope(message, reply_to=None)`` (``_envelope.py``:12) — what an inbox holds; core's
  :class:`~greenroom.actors.core.Mailbox` stores and builds them (re-exported as :data:`Envelope`).
* ``messages._ActorStop`` (``messages.py``:35) — the stop request, recognised by core's actor loop
  (re-exported as :data:`ActorStop`); ``messages.ProxyCall`` (:39) — a proxied method call.
* ``Actor._create_actor_inbox()`` (``_actor.py``:125-127, called by ``Actor.__init__`` :212) — overridden to
  return a bounded :class:`~greenroom.actors.core.Mailbox`.
* ``Actor._create_future()`` (:135, called by ``ActorRef.ask``, ``_ref.py``:159) — overridden to return an
  :class:`~greenroom.actors.core.AsyncioFuture`.
* ``Actor._start_actor_loop(self)`` (:145, called by ``Actor.start`` :122) — overridden to start a task on
  the runtime loop instead of a thread.
* ``Actor._handle_receive(self, message)`` (:368) — called by core's loop for every ordinary message.
* ``ActorRef._actor_weakref`` (set in ``ActorRef.__init__``, ``_ref.py``:55) — read by :func:`actor_of`.
* ``Future._get_hook`` (set in ``Future.__init__``, ``_future.py``:39, read by ``Future.get``) — read by
  :func:`has_get_hook`: a future made by ``map``/``join``/… computes its value through it.
* ``ActorRegistry._actor_refs_lock`` (``_registry.py``:33, an ``RLock`` every registry method takes) —
  replaced in a forked child by :func:`renew_registry_lock`: a thread of the parent (the runtime loop starting
  or stopping an actor) may hold it at the moment of ``fork()``, and the child — where that thread does not
  exist — would wait for it forever when it unregisters the parent's actors.
"""

from __future__ import annotations

import threading
from typing import Any

import pykka
from pykka import messages
from pykka._envelope import Envelope

from greenroom.runtime.seams_check import Seam, check, member

__all__ = [
    "EXPECTED",
    "SEAMS",
    "ActorStop",
    "Envelope",
    "ProxyCall",
    "actor_of",
    "has_get_hook",
    "renew_registry_lock",
]

#: The pykka versions these seams were read in; ``pyproject.toml`` pins the same range.
EXPECTED = "4.5.*"

SEAMS: tuple[Seam, ...] = (
    Seam(Envelope, "__init__", "function", ("self", "message", "reply_to")),
    Seam(member(Envelope, "__init__"), "message", "stored"),
    Seam(member(Envelope, "__init__"), "reply_to", "stored"),
    Seam(messages, "_ActorStop", "class"),
    Seam(messages, "ProxyCall", "class"),
    Seam(pykka.Actor, "_create_actor_inbox", "function", ()),
    Seam(member(pykka.Actor, "__init__"), "_create_actor_inbox", "uses"),
    Seam(pykka.Actor, "_create_future", "function", ()),
    Seam(member(pykka.ActorRef, "ask"), "_create_future", "uses"),
    Seam(pykka.Actor, "_start_actor_loop", "function", ("self",)),
    Seam(member(pykka.Actor, "start"), "_start_actor_loop", "uses"),
    Seam(pykka.Actor, "_handle_receive", "function", ("self", "message")),
    Seam(member(pykka.ActorRef, "__init__"), "_actor_weakref", "stored"),
    Seam(member(pykka.Future, "__init__"), "_get_hook", "stored"),
    Seam(member(pykka.Future, "get"), "_get_hook", "uses"),
    Seam(pykka.ActorRegistry, "_actor_refs_lock", "value", value_type=type(threading.RLock())),
    Seam(member(pykka.ActorRegistry, "unregister"), "_actor_refs_lock", "uses"),
)

check("pykka", EXPECTED, SEAMS)

#: pykka's internal stop request.
ActorStop: type[Any] = messages._ActorStop
#: pykka's message for a method called through a proxy.
ProxyCall = messages.ProxyCall


def actor_of(ref: pykka.ActorRef[Any]) -> Any | None:
    """The actor object behind ``ref`` (``None`` once it has been garbage-collected)."""
    return ref._actor_weakref()


def has_get_hook(future: pykka.Future[Any]) -> bool:
    """Whether ``future`` computes its value with a get hook (``map``, ``join``, ``filter``, ``reduce``)."""
    return future._get_hook is not None


def renew_registry_lock() -> None:
    """In a forked child only: give pykka's registry a fresh lock (the parent's may be held by a thread that
    does not exist in the child)."""
    pykka.ActorRegistry._actor_refs_lock = threading.RLock()
