"""Tests for the msgpack application-payload codec."""

from __future__ import annotations

import contextlib
import json
import math
import random
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenroom.codecs.errors import CodecError, GreenroomError, LocalProtocolError, PayloadTooLargeError
from greenroom.codecs.payload import MAX_DEPTH, MAX_PAYLOAD_SIZE, Value, pack, unpack

GOLDEN = Path(__file__).parent / "golden" / "payload.json"

# name -> value; the golden file holds msgpack bytes produced by the reference msgpack library
GOLDEN_VALUES: dict[str, Value] = {
    "nil": None,
    "map": {"method": "greet", "args": [1, -1, 2**63, 1.5, True, False, None], "blob": b"\x00\x01"},
    "unicode": "grüße 👋",
    "nested": [[[]], {}],
}


def test_golden_bytes() -> None:
    golden: dict[str, str] = json.loads(GOLDEN.read_text())
    assert set(golden) == set(GOLDEN_VALUES)
    for name, value in GOLDEN_VALUES.items():
        data = bytes.fromhex(golden[name])
        assert pack(value) == data
        assert unpack(data) == value
        assert msgpack.unpackb(data, raw=False) == value


def test_tuples_come_back_as_lists() -> None:
    assert unpack(pack((1, (2, 3)))) == [1, [2, 3]]


@pytest.mark.parametrize(
    "value",
    [{1: "a"}, {b"k": 1}, {"a": {2: 3}}, object(), {1, 2}, float, 2**64, -(2**63) - 1, bytearray(b"x")],
)
def test_pack_refuses_what_is_not_allowed(value: Any) -> None:
    with pytest.raises(LocalProtocolError) as info:
        pack(value)
    assert not isinstance(info.value, PayloadTooLargeError)


def test_depth_is_bounded_both_ways() -> None:
    deep: Value = None
    for _ in range(MAX_DEPTH):
        deep = [deep]
    assert unpack(pack(deep)) == deep
    with pytest.raises(LocalProtocolError, match="nesting"):
        pack([deep])
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(LocalProtocolError, match="nesting"):
        pack(cycle)
    with pytest.raises(CodecError, match="nesting"):
        unpack(b"\x91" * (MAX_DEPTH + 1) + b"\xc0")
    with pytest.raises(CodecError):
        unpack(b"\x91" * 5000 + b"\xc0", max_size=10_000)


def test_size_limits() -> None:
    big = "x" * MAX_PAYLOAD_SIZE
    with pytest.raises(PayloadTooLargeError) as info:
        pack(big)
    assert info.value.limit == MAX_PAYLOAD_SIZE
    assert info.value.size > MAX_PAYLOAD_SIZE
    data = pack(big, max_size=2 * MAX_PAYLOAD_SIZE)
    with pytest.raises(CodecError, match="exceeds"):
        unpack(data)
    assert unpack(data, max_size=len(data)) == big


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\xd6\xff\x00\x00\x00\x00", "Timestamp"),  # ext -1: msgpack's timestamp
        (b"\xc7\x01\x05a", "extension type 5"),
        (b"\xd4\x00\x00", "extension type 0"),
        (b"\x81\x01\x02", "map key"),  # int key
        (b"\x81\xc4\x01a\x02", "map keys must be str"),  # bin key
        (b"\xdd\xff\xff\xff\xff", "max_array_len"),  # declared length far beyond the input
        (b"\xa2\xff\xfe", "utf-8"),
        (b"\xc0\xc0", "extra data"),
        (b"", "incomplete"),
        (b"\xc1", "not a valid payload"),  # never-used byte
    ],
)
def test_unpack_refuses_bad_input(data: bytes, why: str) -> None:
    with pytest.raises(CodecError, match=why):
        unpack(data)


scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text() | st.binary()
trees = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, list):
        return (
            isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


@settings(max_examples=300, deadline=None)
@given(trees)
def test_round_trip(value: Value) -> None:
    assert _same(unpack(pack(value)), value)


def _unpack_or_greenroom_error(data: bytes) -> None:
    with contextlib.suppress(GreenroomError):
        unpack(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=128))
def test_random_bytes_raise_only_greenroom_errors(data: bytes) -> None:
    _unpack_or_greenroom_error(data)


def test_seeded_mutations_raise_only_greenroom_errors() -> None:
    rng = random.Random(7)
    corpus = [pack(v) for v in GOLDEN_VALUES.values()]
    for _ in range(3000):
        data = bytearray(rng.choice(corpus))
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(len(data) + 1)
            if rng.random() < 0.5 and data:
                data[min(pos, len(data) - 1)] = rng.randrange(256)
            else:
                data.insert(pos, rng.randrange(256))
        _unpack_or_greenroom_error(bytes(data))
