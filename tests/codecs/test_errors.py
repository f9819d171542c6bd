from __future__ import annotations

import pytest

from greenroom.codecs import errors


def test_every_error_derives_from_the_root() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.GreenroomError)


def test_remote_error_carries_a_leave_reason() -> None:
    err = errors.CodecError("bad frame", leave_reason="JOIN_FAILURE")
    assert isinstance(err, errors.RemoteProtocolError)
    assert err.leave_reason == "JOIN_FAILURE"
    assert errors.RemoteProtocolError("x").leave_reason == "SIGNAL_CLOSE"


def test_payload_too_large_is_local_and_reports_sizes() -> None:
    with pytest.raises(errors.LocalProtocolError) as info:
        raise errors.PayloadTooLargeError("too big", size=20000, limit=15000)
    assert isinstance(info.value, errors.PayloadTooLargeError)
    assert (info.value.size, info.value.limit) == (20000, 15000)
