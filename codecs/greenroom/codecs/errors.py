"""The exception tree shared by every greenroom layer.

Everything greenroom raises on purpose derives from :class:`GreenroomError`. Protocol errors are split the
way h11 splits them: a :class:`LocalProtocolError` means *our* side tried to do something the protocol does
not allow (a caller bug, or an oversize packet we refused to send); a :class:`RemoteProtocolError` means the
peer sent something we cannot accept (malformed bytes, an unknown message, a message out of order). A
remote error carries ``leave_reason``: the ``DisconnectReason`` name a server should put in the
``LeaveRequest`` it sends before closing that session.

Third-party errors are wrapped where they are met (``raise ... from exc``) so that callers catch one tree.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "CodecError",
    "GreenroomError",
    "LocalProtocolError",
    "MalformedTokenError",
    "MissingGrantError",
    "PayloadTooLargeError",
    "ProtocolError",
    "RemoteProtocolError",
    "TokenError",
    "TokenExpiredError",
    "TokenNotYetValidError",
    "TokenSignatureError",
    "UnknownKeyError",
]


class GreenroomError(Exception):
    """Root of every error greenroom raises on purpose."""


class ProtocolError(GreenroomError):
    """A LiveKit protocol rule was broken (by one side or the other)."""


class LocalProtocolError(ProtocolError):
    """Our side asked for something the protocol forbids; nothing was sent."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something we cannot accept.

    Attributes:
        leave_reason: the ``livekit.DisconnectReason`` name (e.g. ``"SIGNAL_CLOSE"``) a server should send in
            its ``LeaveRequest`` before closing the session that sent it.
    """

    def __init__(self, message: str, *, leave_reason: str = "SIGNAL_CLOSE") -> None:
        super().__init__(message)
        self.leave_reason = leave_reason


class CodecError(RemoteProtocolError):
    """Bytes could not be decoded into a well-formed message."""


class PayloadTooLargeError(LocalProtocolError):
    """A payload exceeds a LiveKit size limit; it was refused before anything was sent."""

    def __init__(self, message: str, *, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class TokenError(GreenroomError):
    """An access token is malformed, badly signed, expired, not yet valid or lacks a grant.

    Every subclass names its 401 cause in ``reason`` (a short, stable, lower-case word a server may log or
    put in its HTTP answer).
    """

    reason: ClassVar[str] = "invalid_token"


class MalformedTokenError(TokenError):
    """The token is not a well-formed LiveKit JWT (bad segments, JSON, claim types, or no ``exp``)."""

    reason: ClassVar[str] = "malformed"


class TokenSignatureError(TokenError):
    """The signature does not match the API secret, or the algorithm is not HS256."""

    reason: ClassVar[str] = "bad_signature"


class UnknownKeyError(TokenError):
    """The token's issuer (``iss``, the API key) is missing or not a key this verifier knows."""

    reason: ClassVar[str] = "unknown_key"


class TokenExpiredError(TokenError):
    """The token's ``exp`` lies in the past (beyond the leeway)."""

    reason: ClassVar[str] = "expired"


class TokenNotYetValidError(TokenError):
    """The token's ``nbf`` lies in the future (beyond the leeway)."""

    reason: ClassVar[str] = "not_yet_valid"


class MissingGrantError(TokenError):
    """The token is valid but does not grant what was asked (e.g. ``roomJoin`` for this room)."""

    reason: ClassVar[str] = "missing_grant"
