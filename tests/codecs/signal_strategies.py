"""Hypothesis strategies for the signalling value types, derived from their dataclass annotations.

Every field gets a strategy from its annotation (str, bool, int, float, bytes, IntEnum, tuples, optionals,
nested dataclasses). Integers stay in ``0 .. 2**31 - 1``, valid for every uint32/int32/int64 field the
types carry; floats are float32 (``SpeakerInfo.level`` and ``ConnectionQualityInfo.score`` travel as
float32). A few fields have narrower rules and get an override.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any

from hypothesis import strategies as st
from livekit.protocol import rtc as pr

from greenroom.codecs import models, signalling

__all__ = ["TEXT", "for_type", "requests", "responses"]

TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
_INT = st.integers(min_value=0, max_value=2**31 - 1)
_FLOAT32 = st.floats(width=32, allow_nan=False)
_PAIRS = st.dictionaries(TEXT, TEXT, max_size=3).map(lambda d: tuple(sorted(d.items())))

_OVERRIDES: dict[tuple[type, str], st.SearchStrategy[Any]] = {
    (models.IceCandidate, "sdp_mline_index"): st.none() | st.integers(0, 0xFFFF),
    (signalling.PingReq, "timestamp"): st.integers(-(2**63), 2**63 - 1),
    (signalling.PingReq, "rtt"): st.integers(-(2**63), 2**63 - 1),
    (signalling.LegacyPing, "timestamp"): st.integers(-(2**63), 2**63 - 1),
    (signalling.LegacyPong, "timestamp"): st.integers(-(2**63), 2**63 - 1),
    (signalling.PongResp, "timestamp"): st.integers(-(2**63), 2**63 - 1),
    (signalling.SimulateScenario, "scenario"): st.sampled_from(
        sorted(pr.SimulateScenario.DESCRIPTOR.fields_by_name)
    ),
    (signalling.SimulateScenario, "value"): st.integers(0, 1),  # valid for every field's type
}


def _for_annotation(tp: Any) -> st.SearchStrategy[Any]:
    simple: dict[Any, st.SearchStrategy[Any]] = {
        str: TEXT,
        bool: st.booleans(),
        int: _INT,
        float: _FLOAT32,
        bytes: st.binary(max_size=8),
        models.StringPairs: _PAIRS,
    }
    if tp in simple:
        return simple[tp]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple:
        return st.lists(_for_annotation(args[0]), max_size=2).map(tuple)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return st.none() | _for_annotation(inner[0])
    if isinstance(tp, type) and issubclass(tp, enum.IntEnum):
        return st.sampled_from(tp)
    assert isinstance(tp, type), tp
    assert dataclasses.is_dataclass(tp), tp
    return for_type(tp)


def _deferred(tp: Any) -> st.SearchStrategy[Any]:
    return st.deferred(lambda: _for_annotation(tp))


def for_type(cls: type) -> st.SearchStrategy[Any]:
    """A strategy building ``cls`` with every field drawn (not only the required ones)."""
    hints = typing.get_type_hints(cls)
    kwargs = {
        f.name: _OVERRIDES[(cls, f.name)] if (cls, f.name) in _OVERRIDES else _deferred(hints[f.name])
        for f in dataclasses.fields(cls)
    }
    return st.builds(cls, **kwargs)


def _union(alias: Any) -> st.SearchStrategy[Any]:
    return st.one_of([for_type(c) for c in typing.get_args(alias) if c is not signalling.Unhandled])


def requests() -> st.SearchStrategy[Any]:
    """Any encodable SignalRequest message."""
    return _union(signalling.SignalRequestMessage)


def responses() -> st.SearchStrategy[Any]:
    """Any encodable SignalResponse message (server trickles carry sdp_mid and sdp_mline_index)."""
    return _union(signalling.SignalResponseMessage).filter(
        lambda m: (
            not isinstance(m, signalling.Trickle)
            or None not in (m.candidate.sdp_mid, m.candidate.sdp_mline_index)
        )
    )
