"""Webhooks: the dev server POSTs room and participant events to the URLs it is given, as livekit-server does.

What a receiver gets (livekit/protocol ``webhook/url_notifier.go``, ``consts.go``; livekit-server
``pkg/telemetry/events.go``):

* ``POST <url>`` with ``Content-Type: application/webhook+json`` and a ``livekit.WebhookEvent`` in proto JSON
  (``event``, ``id`` = ``EV_…``, ``created_at``, ``room``, ``participant``, ``track``, ``num_dropped``);
* ``Authorization: <JWT>`` — the bare token, no ``Bearer`` — signed with the webhook API key, whose
  ``sha256`` claim is the base64 SHA-256 of the body, so ``livekit-api``'s ``WebhookReceiver`` verifies it;
* events: ``room_started``, ``room_finished``, ``participant_joined`` (when the participant becomes active),
  ``participant_left`` (``participant_connection_aborted`` if it never became active), ``track_published``,
  ``track_unpublished`` (``participant`` carries only sid and identity, as livekit-server's).

A slow or dead receiver never slows a room: :meth:`WebhookNotifier.notify` is synchronous and never waits —
each URL has a bounded queue (``queue_size``, 100 like livekit-server's) drained by one sender task, in order;
when the queue is full the event is dropped and counted (``dropped``), and the next event delivered to that
URL reports the count in ``num_dropped``. A failed POST (no connection, timeout, 5xx or 429) is retried with
exponential back-off and jitter up to ``max_attempts`` in all (livekit-server: go-retryablehttp, 4
retries); another 4xx is not retried; an event that still fails is counted in ``failed``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import hashlib
import logging
import random
import time
from dataclasses import dataclass
from typing import Final

import aiohttp
from google.protobuf import json_format
from livekit.protocol import webhook as webhook_pb

from greenroom.codecs.models import ParticipantInfo, RoomInfo, TrackInfo
from greenroom.codecs.tokens import Claims, mint_token
from greenroom.devserver.room import new_sid

__all__ = ["CONTENT_TYPE", "EVENTS", "WebhookNotifier", "WebhookPolicy", "WebhookStats"]

_log = logging.getLogger("greenroom.devserver.webhooks")

CONTENT_TYPE: Final = "application/webhook+json"
EVENTS: Final = (
    "room_started",
    "room_finished",
    "participant_joined",
    "participant_left",
    "participant_connection_aborted",
    "track_published",
    "track_unpublished",
)
_TOKEN_TTL: Final = datetime.timedelta(minutes=5)  # livekit-server signs webhooks for 5 minutes


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    """Queue bound, retries and timeouts of webhook delivery (per URL)."""

    queue_size: int = 100
    max_attempts: int = 5
    backoff_min: float = 0.5
    backoff_max: float = 8.0
    timeout: float = 5.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based): doubling from ``backoff_min`` up to
        ``backoff_max``, ±20 % jitter so receivers that come back are not hit in lockstep."""
        base: float = min(self.backoff_max, self.backoff_min * 2 ** (attempt - 1))
        return base * float(rng.uniform(0.8, 1.2))


@dataclass(slots=True)
class WebhookStats:
    """Counters of one notifier (all URLs together)."""

    queued: int = 0
    sent: int = 0
    retries: int = 0
    failed: int = 0
    dropped: int = 0


class _Sender:
    """One URL: its bounded queue and the task that drains it in order."""

    def __init__(self, url: str, notifier: WebhookNotifier) -> None:
        self.url = url
        self.queue: asyncio.Queue[webhook_pb.WebhookEvent] = asyncio.Queue(notifier.policy.queue_size)
        self.dropped_since_sent = 0
        self._notifier = notifier
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        while True:
            event = await self.queue.get()
            reported = event.num_dropped = self.dropped_since_sent
            if await self._notifier.deliver(self.url, event):
                self.dropped_since_sent -= reported  # drops during this delivery go with the next event
            self.queue.task_done()


class WebhookNotifier:
    """Signs and posts :data:`EVENTS` to every URL, never blocking the caller.

    Args:
        urls: the receivers.
        api_key: the key whose name goes in the token's ``iss``.
        api_secret: its secret (signs the token).
        policy: queue bound, retries, time-outs.
    """

    def __init__(
        self, urls: tuple[str, ...], api_key: str, api_secret: str, policy: WebhookPolicy | None = None
    ) -> None:
        self.policy = policy or WebhookPolicy()
        self.stats = WebhookStats()
        self._key = api_key
        self._secret = api_secret
        self._senders = [_Sender(url, self) for url in urls]
        self._session: aiohttp.ClientSession | None = None
        self._rng = random.Random()

    def start(self) -> None:
        """Start one sender task per URL (on the running loop)."""
        # The receivers are the user's own URLs: no proxy from the environment, no cookies kept.
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.policy.timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )
        for sender in self._senders:
            sender.task = asyncio.create_task(sender.run(), name=f"webhooks {sender.url}")

    async def close(self, drain_timeout: float = 2.0) -> None:
        """Give queued events ``drain_timeout`` seconds to go out, then stop."""
        pending = [s.queue.join() for s in self._senders if s.task is not None]
        if pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*pending), drain_timeout)
        for sender in self._senders:
            if sender.task is not None:
                sender.task.cancel()
        await asyncio.gather(*(s.task for s in self._senders if s.task is not None), return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def notify(
        self,
        event: str,
        room: RoomInfo,
        *,
        participant: ParticipantInfo | None = None,
        track: TrackInfo | None = None,
    ) -> None:
        """Queue ``event`` for every URL; drop it (counted) for a URL whose queue is full. Never waits."""
        assert event in EVENTS, event
        message = webhook_pb.WebhookEvent(
            event=event, id=new_sid("EV_"), created_at=int(time.time()), room=room.to_proto()
        )
        if participant is not None:
            message.participant.CopyFrom(participant.to_proto())
        if track is not None:
            message.track.CopyFrom(track.to_proto())
        for sender in self._senders:
            copy = webhook_pb.WebhookEvent()
            copy.CopyFrom(message)
            try:
                sender.queue.put_nowait(copy)
            except asyncio.QueueFull:
                sender.dropped_since_sent += 1
                self.stats.dropped += 1
                _log.warning("webhook queue for %s is full: dropped %s (%s)", sender.url, event, message.id)
            else:
                self.stats.queued += 1

    def sign(self, body: bytes) -> str:
        """The ``Authorization`` value for ``body``: a JWT whose ``sha256`` claim is the body's digest."""
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        return mint_token(self._key, self._secret, Claims(sha256=digest), ttl=_TOKEN_TTL)

    async def deliver(self, url: str, event: webhook_pb.WebhookEvent) -> bool:
        """POST one event with retries; returns whether the receiver accepted it."""
        assert self._session is not None
        body = json_format.MessageToJson(event, indent=None).encode()
        headers = {"Content-Type": CONTENT_TYPE, "Authorization": self.sign(body), "User-Agent": "greenroom"}
        for attempt in range(1, self.policy.max_attempts + 1):
            retry, reason = await self._post(url, body, headers)
            if reason is None:
                self.stats.sent += 1
                return True
            if not retry or attempt == self.policy.max_attempts:
                self.stats.failed += 1
                _log.warning("webhook %s %s to %s failed: %s", event.event, event.id, url, reason)
                return False
            self.stats.retries += 1
            await asyncio.sleep(self.policy.delay(attempt, self._rng))
        raise AssertionError("unreachable")

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[bool, str | None]:
        """(retry?, failure reason or None)."""
        assert self._session is not None
        try:
            async with self._session.post(url, data=body, headers=headers) as response:
                if response.status < 300:
                    return False, None
                return response.status >= 500 or response.status == 429, f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return True, f"{type(exc).__name__}: {exc}"
