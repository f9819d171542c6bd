"""ProtoEnum: IntEnum members that answer Name/Value/keys/values/items like protobuf enum wrappers."""

from __future__ import annotations

import pytest

from greenroom.codecs.proto_enum import ProtoEnum


class Colour(ProtoEnum):
    RED = 0
    GREEN = 2


def test_lookups_both_ways() -> None:
    assert Colour.Name(2) == "GREEN"
    assert Colour.Value("RED") is Colour.RED
    assert Colour.keys() == ["RED", "GREEN"]
    assert Colour.values() == [0, 2]
    assert Colour.items() == [("RED", 0), ("GREEN", 2)]


def test_unknown_names_and_numbers_raise_value_error() -> None:
    with pytest.raises(ValueError, match="Colour has no name defined for value 1"):
        Colour.Name(1)
    with pytest.raises(ValueError, match="Colour has no value defined for name 'BLUE'"):
        Colour.Value("BLUE")
