"""Twirp over the dev server's HTTP front: routing, bodies, auth and errors as LiveKit's Twirp servers do.

The generated Go servers of livekit/protocol (``livekit/*.twirp.go``) and livekit-server's middleware
(``pkg/service/auth.go``, ``utils.go``) fix what a client sees; each rule below is theirs:

* only ``POST /twirp/<package>.<Service>/<Method>``: anything else is ``bad_route`` (HTTP 404) with the
  meta ``twirp_invalid_route: "<METHOD> <path>"``;
* the body is protobuf (``Content-Type: application/protobuf``) or JSON (``application/json``, parameters
  after ``;`` ignored, unknown fields ignored); any other content type is ``bad_route``; a body that does not
  decode is ``malformed`` (400) "the protobuf request could not be decoded" / "the json request could not
  be decoded"; the answer uses the request's encoding (JSON with the proto field names and every field);
* errors are JSON ``{"code": …, "msg": …, "meta": {…}}`` with Twirp's HTTP status per code;
* the token comes from ``Authorization: Bearer`` (else the ``access_token`` query parameter); a missing
  token leaves the call without grants (the method then answers ``unauthenticated`` "permissions denied").

One deliberate difference: livekit-server answers a token that does not verify with a plain-text 401
before Twirp sees the request; here it is a Twirp ``unauthenticated`` error (still 401) whose ``msg`` names
the reason, because the official clients parse only Twirp JSON (``livekit-api`` reports a plain body as
code ``unknown`` with no message).

A method is a synchronous function ``(claims, request message) -> response message`` that runs on the
server's loop; it raises :class:`TwirpError` to answer an error.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from greenroom.codecs.errors import GreenroomError, TokenError
from greenroom.codecs.tokens import Claims, verify_token

__all__ = [
    "HTTP_STATUS",
    "PREFIX",
    "Method",
    "Service",
    "TwirpError",
    "serve",
]

_log = logging.getLogger("greenroom.devserver.twirp")

PREFIX: Final = "/twirp/"

HTTP_STATUS: Final[Mapping[str, int]] = {
    "canceled": 408,
    "unknown": 500,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 408,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "dataloss": 500,
}
"""Twirp error code → HTTP status (``twirp.ServerHTTPStatusFromErrorCode``)."""

_JSON = "application/json"
_PROTOBUF = "application/protobuf"


class TwirpError(GreenroomError):
    """A Twirp error answer: ``code`` (a key of :data:`HTTP_STATUS`), ``msg`` and optional ``meta``."""

    def __init__(self, code: str, msg: str, meta: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{code}: {msg}")
        assert code in HTTP_STATUS, code
        self.code = code
        self.msg = msg
        self.meta = dict(meta or {})

    @property
    def status(self) -> int:
        """The HTTP status Twirp uses for this code."""
        return HTTP_STATUS[self.code]

    def body(self) -> bytes:
        """The JSON body (``meta`` only when there is some, as twirp-go writes it)."""
        document: dict[str, Any] = {"code": self.code, "msg": self.msg}
        if self.meta:
            document["meta"] = self.meta
        return json.dumps(document).encode()


@dataclass(frozen=True, slots=True)
class Method:
    """One Twirp method: its request message class and the function that answers it."""

    request: type[Message]
    call: Callable[[Claims | None, Any], Message]


@dataclass(frozen=True, slots=True)
class Service:
    """A Twirp service: ``livekit.RoomService`` and its methods by name."""

    name: str
    methods: Mapping[str, Method] = field(default_factory=dict)


def _bad_route(msg: str, request: web.Request) -> TwirpError:
    return TwirpError("bad_route", msg, {"twirp_invalid_route": f"{request.method} {request.path}"})


def _claims(request: web.Request, keys: Mapping[str, str]) -> Claims | None:
    header = request.headers.get("Authorization")
    if header is not None:
        if not header.startswith("Bearer "):
            raise TwirpError("unauthenticated", "invalid authorization header. Must start with Bearer ")
        token = header.removeprefix("Bearer ").strip()
    else:
        token = request.query.get("access_token", "")
    if not token:
        return None
    try:
        return verify_token(token, keys)
    except TokenError as exc:
        raise TwirpError("unauthenticated", f"invalid authorization token ({exc.reason}): {exc}") from exc


def _route(request: web.Request, services: Mapping[str, Service]) -> Method:
    if request.method != "POST":
        raise _bad_route(f'unsupported method "{request.method}" (only POST is allowed)', request)
    service_name, _, method_name = request.path.removeprefix(PREFIX).partition("/")
    service = services.get(service_name)
    method = None if service is None else service.methods.get(method_name)
    if method is None:
        raise _bad_route(f'no handler for path "{request.path}"', request)
    return method


def _content_type(request: web.Request) -> str:
    header = request.headers.get("Content-Type", "")
    kind = header.partition(";")[0].strip().lower()
    if kind not in (_JSON, _PROTOBUF):
        raise _bad_route(f'unexpected Content-Type: "{header}"', request)
    return kind


async def _decode(request: web.Request, method: Method, kind: str) -> Message:
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise TwirpError(
            "malformed", f"request body too large (max {request.client_max_size} bytes)"
        ) from exc
    message = method.request()
    if kind == _PROTOBUF:
        try:
            message.ParseFromString(body)
        except (DecodeError, RuntimeWarning, ValueError) as exc:
            raise TwirpError("malformed", "the protobuf request could not be decoded") from exc
        return message
    try:
        json_format.Parse(body.decode() or "{}", message, ignore_unknown_fields=True)
    except (json_format.ParseError, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise TwirpError("malformed", f"the json request could not be decoded: {exc}") from exc
    return message


def _encode(message: Message, kind: str) -> web.Response:
    if kind == _PROTOBUF:
        return web.Response(body=message.SerializeToString(), content_type=_PROTOBUF)
    text = json_format.MessageToJson(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True, indent=None
    )
    return web.Response(text=text, content_type=_JSON)


def _error(exc: TwirpError) -> web.Response:
    return web.Response(status=exc.status, body=exc.body(), content_type=_JSON)


async def serve(
    request: web.Request, services: Mapping[str, Service], keys: Mapping[str, str]
) -> web.Response:
    """Answer one Twirp request (the path starts with :data:`PREFIX`); never raises.

    Args:
        request: the HTTP request.
        services: the services served, by ``<package>.<Service>`` name.
        keys: API key → secret, to verify the caller's token.
    """
    started = time.monotonic()
    name = request.path.removeprefix(PREFIX)
    try:
        claims = _claims(request, keys)
        method = _route(request, services)
        kind = _content_type(request)
        message = await _decode(request, method, kind)
        response = _encode(method.call(claims, message), kind)
    except TwirpError as exc:
        _log.info("API %s: %s %s (%.1f ms)", name, exc.code, exc.msg, 1000 * (time.monotonic() - started))
        return _error(exc)
    except Exception:
        # A bug in a method: a Twirp ``internal`` answer (twirp-go's "Internal service panic"), logged.
        _log.exception("API %s: internal error", name)
        return _error(TwirpError("internal", "Internal service panic"))
    _log.info("API %s: ok (%.1f ms)", name, 1000 * (time.monotonic() - started))
    return response
