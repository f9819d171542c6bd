"""LiveKit access tokens: HS256 JWTs carrying a participant's identity and grants.

A token's claims use LiveKit's JSON names (``sub``, ``iss``, ``nbf``, ``exp``, ``name``, ``metadata``,
``attributes``, ``kind``, ``video`` with camelCase grant keys such as ``roomJoin``/``canPublishData`` …),
so tokens minted by the official ``livekit-api`` verify here and ours verify there.

* :func:`mint_token` signs :class:`Claims` with an API key/secret pair (``iss`` = the key).
* :func:`verify_token` checks the token against a key → secret map and a caller-supplied clock, and
  returns :class:`Claims`; every failure is a :class:`~greenroom.codecs.errors.TokenError` subclass whose
  ``reason`` names the 401 cause.
* :func:`check_join` asks whether verified claims may join a room.

Trap: PyJWT (≥ 2.10) warns ``InsecureKeyLengthWarning`` for HMAC secrets shorter than 32 bytes, and the
LiveKit dev secret is ``"secret"``. That warning fires inside ``jwt.encode``/``jwt.decode`` only, so this
module signs and checks with PyJWT's HMAC algorithm object and parses with PyJWT's unverified decoder:
no warning, no process-global warning filter to touch.
"""

from __future__ import annotations

import datetime
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import jwt
from jwt.algorithms import HMACAlgorithm
from jwt.utils import base64url_encode

from greenroom.codecs.errors import (
    MalformedTokenError,
    MissingGrantError,
    TokenExpiredError,
    TokenNotYetValidError,
    TokenSignatureError,
    UnknownKeyError,
)
from greenroom.codecs.packets import Attributes, freeze_attributes

__all__ = [
    "DEFAULT_LEEWAY",
    "DEFAULT_TTL",
    "MAX_TOKEN_LENGTH",
    "Claims",
    "VideoGrants",
    "check_join",
    "mint_token",
    "verify_token",
]

DEFAULT_TTL: Final = datetime.timedelta(hours=6)
"""Validity of a minted token when the caller gives no ``exp`` (same as LiveKit's SDKs)."""

DEFAULT_LEEWAY: Final = 60.0
"""Clock-skew tolerance, in seconds, applied to ``exp`` and ``nbf`` (LiveKit's Go verifier uses 1 min)."""

MAX_TOKEN_LENGTH: Final = 1 << 20
"""Longer strings are refused before any parsing. 1 MiB: livekit-server reads tokens from HTTP headers or the
query, which Go's ``net/http`` caps at 1 MB (``DefaultMaxHeaderBytes``), so a token carrying LiveKit's largest
metadata (512 KiB) and attributes (64 KiB) is valid there (a 60 KB token was refused at 64 KiB, issue 17)."""

_HS256: Final = HMACAlgorithm(HMACAlgorithm.SHA256)


@dataclass(frozen=True, slots=True)
class VideoGrants:
    """The ``video`` claim (LiveKit ``VideoGrant``): what the holder may do in rooms.

    ``None`` on a tri-state field means "absent from the token"; the ``*_allowed`` properties apply
    LiveKit's defaults (publish and subscribe default to allowed, data publishing follows publishing,
    metadata updates default to forbidden). Plain booleans are omitted from the JSON when false.
    """

    room_create: bool = False
    room_list: bool = False
    room_record: bool = False
    room_admin: bool = False
    room_join: bool = False
    room: str = ""
    can_publish: bool | None = None
    can_subscribe: bool | None = None
    can_publish_data: bool | None = None
    can_publish_sources: tuple[str, ...] = ()
    can_update_own_metadata: bool | None = None
    ingress_admin: bool = False
    hidden: bool = False
    recorder: bool = False
    agent: bool = False
    can_subscribe_metrics: bool | None = None
    can_manage_agent_session: bool | None = None
    destination_room: str = ""

    @property
    def publish_allowed(self) -> bool:
        """``canPublish``, allowed when absent."""
        return self.can_publish is not False

    @property
    def subscribe_allowed(self) -> bool:
        """``canSubscribe``, allowed when absent."""
        return self.can_subscribe is not False

    @property
    def publish_data_allowed(self) -> bool:
        """``canPublishData``; when absent it follows ``canPublish``."""
        return self.publish_allowed if self.can_publish_data is None else self.can_publish_data

    @property
    def update_own_metadata_allowed(self) -> bool:
        """``canUpdateOwnMetadata``, forbidden when absent (the server answers NOT_ALLOWED)."""
        return self.can_update_own_metadata is True

    def source_allowed(self, source: str) -> bool:
        """Whether a track from ``source`` (``"camera"``, ``"microphone"`` …) may be published.

        Args:
            source: the lower-case ``TrackSource`` name.
        """
        return self.publish_allowed and (not self.can_publish_sources or source in self.can_publish_sources)


@dataclass(frozen=True, slots=True)
class Claims:
    """The claims of a LiveKit access token.

    Attributes:
        identity: ``sub`` (the participant identity; a verified token without ``sub`` falls back to ``jti``).
        name: display name.
        metadata: participant metadata.
        attributes: participant attributes.
        kind: participant kind, a lower-case name (``standard``, ``agent``, ``sip``, ``egress`` …).
        kind_details: ``kindDetails``, lower-case names.
        video: the room grants, or None when the token has none.
        sha256: ``sha256`` of the request body (webhooks).
        room_preset: ``roomPreset``.
        room_config: ``roomConfig`` as canonical JSON text (a ``livekit.RoomConfiguration`` in proto JSON).
        issuer: ``iss``, the API key (set by :func:`mint_token`).
        not_before: ``nbf`` (whole Unix seconds, fractions dropped); :func:`mint_token` uses "now" if None.
        expires_at: ``exp`` (Unix seconds); :func:`mint_token` uses "now + ttl" when None.
    """

    identity: str = ""
    name: str = ""
    metadata: str = ""
    attributes: Attributes = ()
    kind: str = ""
    kind_details: tuple[str, ...] = ()
    video: VideoGrants | None = None
    sha256: str = ""
    room_preset: str = ""
    room_config: str | None = None
    issuer: str = ""
    not_before: int | None = None
    expires_at: int | None = None


# -- JSON shapes ------------------------------------------------------------------------------------
# (JSON key, attribute, shape). Shapes: "flag" = bool omitted when false; "tri" = bool | None omitted when
# None; "str" omitted when empty; "strs" = list of strings omitted when empty.

_VIDEO_KEYS: Final = (
    ("roomCreate", "room_create", "flag"),
    ("roomList", "room_list", "flag"),
    ("roomRecord", "room_record", "flag"),
    ("roomAdmin", "room_admin", "flag"),
    ("roomJoin", "room_join", "flag"),
    ("room", "room", "str"),
    ("canPublish", "can_publish", "tri"),
    ("canSubscribe", "can_subscribe", "tri"),
    ("canPublishData", "can_publish_data", "tri"),
    ("canPublishSources", "can_publish_sources", "strs"),
    ("canUpdateOwnMetadata", "can_update_own_metadata", "tri"),
    ("ingressAdmin", "ingress_admin", "flag"),
    ("hidden", "hidden", "flag"),
    ("recorder", "recorder", "flag"),
    ("agent", "agent", "flag"),
    ("canSubscribeMetrics", "can_subscribe_metrics", "tri"),
    ("canManageAgentSession", "can_manage_agent_session", "tri"),
    ("destinationRoom", "destination_room", "str"),
)

_CLAIM_KEYS: Final = (
    ("sub", "identity", "str"),
    ("name", "name", "str"),
    ("metadata", "metadata", "str"),
    ("attributes", "attributes", "map"),
    ("kind", "kind", "str"),
    ("kindDetails", "kind_details", "strs"),
    ("video", "video", "video"),
    ("sha256", "sha256", "str"),
    ("roomPreset", "room_preset", "str"),
    ("roomConfig", "room_config", "json"),
    ("iss", "issuer", "str"),
    ("nbf", "not_before", "time"),
    ("exp", "expires_at", "time"),
)


def _is_str(v: object) -> bool:
    return isinstance(v, str)


def _is_strs(v: object) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _is_map(v: object) -> bool:
    return isinstance(v, dict) and all(isinstance(x, str) for x in v.values())


def _is_time(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _to_json(obj: object, keys: tuple[tuple[str, str, str], ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, attr, shape in keys:
        value = getattr(obj, attr)
        if value is not None and (encoded := _SHAPES[shape][2](value)) is not None:
            out[key] = encoded
    return out


def _from_json(data: Mapping[str, Any], keys: tuple[tuple[str, str, str], ...], where: str) -> dict[str, Any]:
    """Pick the known keys of a JSON object, type-checked; ``null`` counts as absent (as in Go)."""
    fields: dict[str, Any] = {}
    for key, attr, shape in keys:
        value = data.get(key)
        if value is None:
            continue
        accepts, convert, _ = _SHAPES[shape]
        if not accepts(value):
            raise MalformedTokenError(f"token claim {where}{key} has the wrong type")
        fields[attr] = convert(value)
    return fields


def _video_from_json(data: Mapping[str, Any]) -> VideoGrants:
    return VideoGrants(**_from_json(data, _VIDEO_KEYS, "video."))


# shape -> (accepts a JSON value, JSON value -> attribute value, attribute value -> JSON value or None)
_SHAPES: Final[dict[str, tuple[Callable[[object], bool], Callable[[Any], Any], Callable[[Any], Any]]]] = {
    "flag": (lambda v: isinstance(v, bool), bool, lambda a: True if a else None),
    "tri": (lambda v: isinstance(v, bool), bool, lambda a: a),
    "str": (_is_str, str, lambda a: a or None),
    "strs": (_is_strs, tuple, lambda a: list(a) or None),
    "map": (_is_map, freeze_attributes, lambda a: dict(a) or None),
    "json": (lambda v: isinstance(v, dict), lambda v: json.dumps(v, sort_keys=True), json.loads),
    "time": (_is_time, int, lambda a: a),
    "video": (
        lambda v: isinstance(v, dict),
        _video_from_json,
        lambda a: _to_json(a, _VIDEO_KEYS),
    ),
}


def _claims_from_json(payload: Mapping[str, Any]) -> Claims:
    fields = _from_json(payload, _CLAIM_KEYS, "")
    if not fields.get("identity") and isinstance(payload.get("jti"), str):
        fields["identity"] = payload["jti"]  # LiveKit's verifier falls back to jti when sub is empty
    return Claims(**fields)


# -- minting ----------------------------------------------------------------------------------------


def _segment(obj: Mapping[str, Any]) -> bytes:
    return base64url_encode(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode())


def mint_token(
    api_key: str,
    api_secret: str,
    claims: Claims,
    *,
    ttl: datetime.timedelta = DEFAULT_TTL,
    now: float | None = None,
) -> str:
    """Sign ``claims`` into an HS256 LiveKit access token.

    Args:
        api_key: the API key; becomes ``iss`` (``claims.issuer`` is ignored).
        api_secret: the API secret the server holds for ``api_key``.
        claims: identity, grants and metadata; explicit ``not_before``/``expires_at`` beat ``now``/``ttl``.
        ttl: validity when ``claims.expires_at`` is None.
        now: Unix seconds (default: the system clock).

    Returns:
        The compact JWT.
    """
    issued = int(time.time() if now is None else now)
    payload = _to_json(claims, _CLAIM_KEYS)
    payload["iss"] = api_key
    payload.setdefault("nbf", issued)
    payload.setdefault("exp", issued + int(ttl.total_seconds()))
    signing_input = _segment({"alg": "HS256", "typ": "JWT"}) + b"." + _segment(payload)
    signature = _HS256.sign(signing_input, api_secret.encode())
    return (signing_input + b"." + base64url_encode(signature)).decode("ascii")


# -- verifying --------------------------------------------------------------------------------------


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """Split and parse a compact JWT without checking it: (header, payload, signature)."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise MalformedTokenError("token is not a string of reasonable length")
    try:
        parts = jwt.api_jwt.decode_complete(token, options={"verify_signature": False})
    except (jwt.PyJWTError, ValueError, TypeError, RecursionError) as exc:
        raise MalformedTokenError(f"token is not a JWT: {exc}") from exc
    return parts["header"], parts["payload"], parts["signature"]


def _check_signature(token: str, header: Mapping[str, Any], signature: bytes, secret: str) -> None:
    if header.get("alg") != "HS256":
        raise TokenSignatureError(f"token algorithm {header.get('alg')!r} is not HS256")
    signing_input = token.rsplit(".", 1)[0].encode("ascii")
    if not _HS256.verify(signing_input, secret.encode(), signature):
        raise TokenSignatureError("token signature does not match the API secret")


def _check_times(claims: Claims, now: float, leeway: float) -> None:
    if claims.expires_at is None:
        raise MalformedTokenError("token has no exp claim")
    if now > claims.expires_at + leeway:
        raise TokenExpiredError(f"token expired at {claims.expires_at} (now {int(now)})")
    if claims.not_before is not None and now < claims.not_before - leeway:
        raise TokenNotYetValidError(f"token is not valid before {claims.not_before} (now {int(now)})")


def verify_token(
    token: str,
    keys: Mapping[str, str],
    *,
    now: float | None = None,
    leeway: float = DEFAULT_LEEWAY,
) -> Claims:
    """Verify a LiveKit access token and return its claims.

    Checks, in order: JWT shape; ``iss`` names a known key; HS256 signature with that key's secret; claim
    types; ``exp`` present and not past; ``nbf`` not in the future (both with ``leeway``).

    Args:
        token: the compact JWT (from ``Authorization: Bearer`` or the ``access_token`` query parameter).
        keys: API key → API secret.
        now: Unix seconds (default: the system clock).
        leeway: clock-skew tolerance in seconds.

    Returns:
        The verified claims.

    Raises:
        MalformedTokenError: not a JWT, a claim of the wrong type, or no ``exp``.
        UnknownKeyError: ``iss`` is missing or not in ``keys``.
        TokenSignatureError: not HS256, or the signature does not match.
        TokenExpiredError: ``exp`` is past.
        TokenNotYetValidError: ``nbf`` is in the future.
    """
    header, payload, signature = _unverified(token)
    issuer = payload.get("iss")
    secret = keys.get(issuer) if isinstance(issuer, str) else None
    if secret is None:
        raise UnknownKeyError(f"token issuer {issuer!r} is not a known API key")
    _check_signature(token, header, signature, secret)
    claims = _claims_from_json(payload)
    _check_times(claims, time.time() if now is None else now, leeway)
    return claims


def check_join(claims: Claims, room: str | None = None) -> VideoGrants:
    """Require that verified ``claims`` may join ``room`` (or the room they name, when ``room`` is None).

    Args:
        claims: claims returned by :func:`verify_token`.
        room: the room asked for, if the request names one.

    Returns:
        The token's video grants.

    Raises:
        MissingGrantError: no ``roomJoin`` grant, no room, another room, or no identity.
    """
    video = claims.video
    if video is None or not video.room_join:
        raise MissingGrantError("token does not grant roomJoin")
    if not video.room:
        raise MissingGrantError("token grants roomJoin but names no room")
    if room is not None and room != video.room:
        raise MissingGrantError(f"token is for room {video.room!r}, not {room!r}")
    if not claims.identity:
        raise MissingGrantError("token has no identity (sub)")
    return video
