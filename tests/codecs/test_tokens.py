"""Tests for LiveKit access tokens, including both-way interop with the official ``livekit-api``."""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from livekit import api

from greenroom.codecs.errors import (
    GreenroomError,
    MalformedTokenError,
    MissingGrantError,
    TokenError,
    TokenExpiredError,
    TokenNotYetValidError,
    TokenSignatureError,
    UnknownKeyError,
)
from greenroom.codecs.tokens import (
    DEFAULT_TTL,
    MAX_TOKEN_LENGTH,
    Claims,
    VideoGrants,
    check_join,
    mint_token,
    verify_token,
)

GOLDEN = Path(__file__).parent / "golden" / "tokens.json"
KEYS = {"devkey": "secret", "other": "another-secret-that-is-long-enough!"}
NOW = 1_800_000_000
# livekit-api signs through jwt.encode, which warns about the 6-byte dev secret; our codec never does
lk_short_secret = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


def _b64(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _unsigned(payload: Any, header: Any = None) -> str:
    return f"{_b64(header or {'alg': 'HS256', 'typ': 'JWT'})}.{_b64(payload)}.c2ln"


def _payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    loaded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return loaded


FULL = Claims(
    identity="alice",
    name="Alice",
    metadata='{"x":1}',
    attributes=(("a", "1"), ("b", "2")),
    kind="agent",
    kind_details=("cloud_agent",),
    video=VideoGrants(
        room_join=True,
        room="r1",
        can_publish=True,
        can_subscribe=False,
        can_publish_data=True,
        can_publish_sources=("camera", "microphone"),
        can_update_own_metadata=True,
        hidden=True,
        agent=True,
        can_subscribe_metrics=True,
    ),
    sha256="abc",
    room_preset="preset",
    room_config='{"emptyTimeout": 30, "name": "r1"}',
)


# -- golden ---------------------------------------------------------------------------------------


def test_golden_token_is_reproducible_and_verifies() -> None:
    golden: dict[str, str] = json.loads(GOLDEN.read_text())
    token = mint_token("devkey", "secret", FULL, now=NOW)
    assert token == golden["full"]
    claims = verify_token(golden["full"], KEYS, now=NOW)
    assert claims == FULL.__class__(
        **{**_fields(FULL), "issuer": "devkey", "not_before": NOW, "expires_at": NOW + 21600}
    )


def _fields(claims: Claims) -> dict[str, Any]:
    return {name: getattr(claims, name) for name in claims.__dataclass_fields__}


def test_claim_names_match_livekit() -> None:
    payload = _payload(mint_token("devkey", "secret", FULL, now=NOW))
    assert payload == {
        "sub": "alice",
        "name": "Alice",
        "metadata": '{"x":1}',
        "attributes": {"a": "1", "b": "2"},
        "kind": "agent",
        "kindDetails": ["cloud_agent"],
        "video": {
            "roomJoin": True,
            "room": "r1",
            "canPublish": True,
            "canSubscribe": False,
            "canPublishData": True,
            "canPublishSources": ["camera", "microphone"],
            "canUpdateOwnMetadata": True,
            "hidden": True,
            "agent": True,
            "canSubscribeMetrics": True,
        },
        "sha256": "abc",
        "roomPreset": "preset",
        "roomConfig": {"emptyTimeout": 30, "name": "r1"},
        "iss": "devkey",
        "nbf": NOW,
        "exp": NOW + int(DEFAULT_TTL.total_seconds()),
    }
    minimal = _payload(mint_token("k", "s", Claims(), now=NOW, ttl=datetime.timedelta(seconds=10)))
    assert minimal == {"iss": "k", "nbf": NOW, "exp": NOW + 10}


# -- interop with livekit-api ---------------------------------------------------------------------


@lk_short_secret
def test_livekit_api_token_verifies_here() -> None:
    token = (
        api.AccessToken("devkey", "secret")
        .with_identity("bob")
        .with_name("Bob")
        .with_metadata("meta")
        .with_attributes({"k": "v"})
        .with_kind("agent")
        .with_sha256("digest")
        .with_grants(
            api.VideoGrants(
                room_join=True,
                room="r1",
                can_publish=False,
                can_publish_data=False,
                can_update_own_metadata=True,
                can_publish_sources=["microphone"],
                hidden=True,
                room_admin=True,
            )
        )
        .to_jwt()
    )
    claims = verify_token(token, KEYS)
    assert (claims.identity, claims.name, claims.metadata, claims.kind) == ("bob", "Bob", "meta", "agent")
    assert (claims.attributes, claims.sha256, claims.issuer) == ((("k", "v"),), "digest", "devkey")
    assert claims.expires_at is not None
    assert claims.not_before is not None
    assert claims.expires_at - claims.not_before == int(datetime.timedelta(hours=6).total_seconds())
    assert claims.video == VideoGrants(
        room_join=True,
        room="r1",
        room_admin=True,
        can_publish=False,
        can_subscribe=True,
        can_publish_data=False,
        can_update_own_metadata=True,
        can_publish_sources=("microphone",),
        hidden=True,
    )
    assert check_join(claims, "r1") is claims.video


@lk_short_secret
def test_our_token_verifies_with_livekit_api() -> None:
    token = mint_token("devkey", "secret", FULL)
    theirs = api.TokenVerifier("devkey", "secret").verify(token)
    assert (theirs.identity, theirs.name, theirs.metadata, theirs.kind) == (
        "alice",
        "Alice",
        '{"x":1}',
        "agent",
    )
    assert theirs.attributes == {"a": "1", "b": "2"}
    assert (theirs.sha256, theirs.room_preset) == ("abc", "preset")
    assert theirs.room_config is not None
    assert theirs.room_config.empty_timeout == 30
    assert theirs.video == api.VideoGrants(
        room_join=True,
        room="r1",
        can_publish=True,
        can_subscribe=False,
        can_publish_data=True,
        can_publish_sources=["camera", "microphone"],
        can_update_own_metadata=True,
        hidden=True,
        agent=True,
        can_subscribe_metrics=True,
    )


@lk_short_secret
def test_livekit_api_rejects_our_token_with_the_wrong_secret() -> None:
    token = mint_token("devkey", "secret", Claims(identity="a"))
    with pytest.raises(Exception, match="Signature"):
        api.TokenVerifier("devkey", "not-the-secret").verify(token)


# -- verification failures ------------------------------------------------------------------------


def test_expiry_and_not_before_honour_the_leeway() -> None:
    token = mint_token("devkey", "secret", Claims(identity="a", not_before=NOW, expires_at=NOW + 100))
    assert verify_token(token, KEYS, now=NOW - 60).identity == "a"
    assert verify_token(token, KEYS, now=NOW + 160).identity == "a"
    with pytest.raises(TokenNotYetValidError, match="not valid before"):
        verify_token(token, KEYS, now=NOW - 61)
    with pytest.raises(TokenExpiredError, match="expired"):
        verify_token(token, KEYS, now=NOW + 161)
    with pytest.raises(TokenExpiredError):
        verify_token(token, KEYS, now=NOW + 101, leeway=0)


def test_signature_key_and_algorithm_failures() -> None:
    token = mint_token("devkey", "secret", Claims(identity="a"))
    with pytest.raises(TokenSignatureError, match="signature"):
        verify_token(token, {"devkey": "wrong"})
    with pytest.raises(UnknownKeyError, match="'devkey'"):
        verify_token(token, {"other": "secret"})
    with pytest.raises(UnknownKeyError, match="None"):
        verify_token(_unsigned({"sub": "a", "exp": NOW}), KEYS)
    with pytest.raises(UnknownKeyError):
        verify_token(_unsigned({"iss": 5, "exp": NOW}), KEYS)
    for alg in ("none", "HS512", "RS256", None):
        with pytest.raises(TokenSignatureError, match="not HS256"):
            verify_token(_unsigned({"iss": "devkey", "exp": NOW}, {"alg": alg}), KEYS)
    tampered = token.split(".")
    tampered[1] = _b64({**_payload(token), "sub": "mallory"})
    with pytest.raises(TokenSignatureError):
        verify_token(".".join(tampered), KEYS)


def _signed(payload: dict[str, Any]) -> str:
    """A token carrying ``payload`` verbatim, correctly signed with devkey's secret."""
    import hashlib
    import hmac

    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(payload)}"
    sig = hmac.new(b"secret", signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"exp": None}, "no exp"),
        ({"exp": "soon"}, "exp has the wrong type"),
        ({"exp": True}, "exp has the wrong type"),
        ({"nbf": []}, "nbf has the wrong type"),
        ({"sub": 5}, "sub has the wrong type"),
        ({"attributes": {"a": 1}}, "attributes"),
        ({"attributes": ["a"]}, "attributes"),
        ({"kindDetails": "agent"}, "kindDetails"),
        ({"video": []}, "video"),
        ({"video": {"roomJoin": "yes"}}, "video.roomJoin"),
        ({"video": {"canPublish": 1}}, "video.canPublish"),
        ({"video": {"room": 5}}, "video.room"),
        ({"video": {"canPublishSources": ["camera", 3]}}, "video.canPublishSources"),
        ({"roomConfig": "x"}, "roomConfig"),
    ],
)
def test_malformed_claims(extra: dict[str, Any], why: str) -> None:
    with pytest.raises(MalformedTokenError, match=why):
        verify_token(_signed({"iss": "devkey", "exp": NOW + 10, **extra}), KEYS, now=NOW)


def test_lenient_where_livekit_is() -> None:
    payload = {
        "iss": "devkey",
        "exp": NOW + 10.5,
        "nbf": None,
        "jti": "from-jti",
        "video": {"roomJoin": True, "room": "r", "canPublish": None, "unknownGrant": 1},
        "sip": {"admin": True},  # grants greenroom does not model are ignored
    }
    claims = verify_token(_signed(payload), KEYS, now=NOW)
    assert claims.identity == "from-jti"
    assert claims.expires_at == NOW + 10
    assert claims.video == VideoGrants(room_join=True, room="r")
    with_sub = verify_token(_signed({**payload, "sub": "s"}), KEYS, now=NOW)
    assert with_sub.identity == "s"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "é.é.é",
        _unsigned([1]),
        "x" * (MAX_TOKEN_LENGTH + 1),
        5,
        None,
        b"a.b.c",
    ],
)
def test_not_a_jwt(token: Any) -> None:
    with pytest.raises(MalformedTokenError):
        verify_token(token, KEYS)


def test_errors_name_their_reason() -> None:
    classes = (
        MalformedTokenError,
        TokenSignatureError,
        UnknownKeyError,
        TokenExpiredError,
        TokenNotYetValidError,
        MissingGrantError,
    )
    reasons = {cls.reason for cls in classes}
    assert len(reasons) == len(classes)
    assert all(issubclass(cls, TokenError) for cls in classes)
    assert TokenError.reason == "invalid_token"


# -- grants ---------------------------------------------------------------------------------------


def test_grant_defaults_follow_livekit() -> None:
    empty = VideoGrants()
    assert empty.publish_allowed
    assert empty.subscribe_allowed
    assert empty.publish_data_allowed
    assert not empty.update_own_metadata_allowed
    no_publish = VideoGrants(can_publish=False)
    assert not no_publish.publish_data_allowed  # canPublishData follows canPublish when absent
    assert not no_publish.source_allowed("camera")
    assert VideoGrants(can_publish=False, can_publish_data=True).publish_data_allowed
    assert not VideoGrants(can_subscribe=False).subscribe_allowed
    assert VideoGrants(can_update_own_metadata=True).update_own_metadata_allowed
    mic_only = VideoGrants(can_publish_sources=("microphone",))
    assert mic_only.source_allowed("microphone")
    assert not mic_only.source_allowed("camera")
    assert empty.source_allowed("screen_share")


def test_check_join() -> None:
    ok = Claims(identity="a", video=VideoGrants(room_join=True, room="r"))
    assert check_join(ok) == ok.video
    assert check_join(ok, "r") == ok.video
    cases = [
        (Claims(identity="a"), None, "roomJoin"),
        (Claims(identity="a", video=VideoGrants(room="r")), None, "roomJoin"),
        (Claims(identity="a", video=VideoGrants(room_join=True)), None, "names no room"),
        (ok, "other", "not 'other'"),
        (Claims(video=VideoGrants(room_join=True, room="r")), None, "identity"),
    ]
    for claims, room, why in cases:
        with pytest.raises(MissingGrantError, match=why):
            check_join(claims, room)


# -- round trips and hostile input ----------------------------------------------------------------

text = st.text(max_size=12)
opt_bool = st.none() | st.booleans()
grants = st.builds(
    VideoGrants,
    room_create=st.booleans(),
    room_join=st.booleans(),
    room=text,
    can_publish=opt_bool,
    can_subscribe=opt_bool,
    can_publish_data=opt_bool,
    can_publish_sources=st.lists(st.sampled_from(["camera", "microphone", "screen_share"]), max_size=3).map(
        tuple
    ),
    can_update_own_metadata=opt_bool,
    hidden=st.booleans(),
    recorder=st.booleans(),
    agent=st.booleans(),
    can_manage_agent_session=opt_bool,
    destination_room=text,
)
claims_strategy = st.builds(
    Claims,
    identity=text,
    name=text,
    metadata=text,
    attributes=st.dictionaries(text, text, max_size=3).map(lambda d: tuple(sorted(d.items()))),
    kind=st.sampled_from(["", "standard", "agent", "sip"]),
    video=st.none() | grants,
    sha256=text,
    not_before=st.none() | st.integers(NOW - 1000, NOW),
    expires_at=st.none() | st.integers(NOW + 1, NOW + 1000),
)


@settings(max_examples=200, deadline=None)
@given(claims_strategy)
def test_round_trip(claims: Claims) -> None:
    verified = verify_token(mint_token("other", KEYS["other"], claims, now=NOW), KEYS, now=NOW)
    expected = {
        **_fields(claims),
        "issuer": "other",
        "not_before": NOW if claims.not_before is None else claims.not_before,
        "expires_at": NOW + 21600 if claims.expires_at is None else claims.expires_at,
    }
    if not claims.identity:
        expected["identity"] = ""
    assert verified == Claims(**expected)


def _verify_or_greenroom_error(token: Any) -> None:
    with contextlib.suppress(GreenroomError):
        verify_token(token, KEYS, now=NOW)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=64))
def test_random_input_raises_only_greenroom_errors(token: Any) -> None:
    _verify_or_greenroom_error(token)


def test_seeded_mutations_raise_only_greenroom_errors() -> None:
    rng = random.Random(99)
    corpus = [mint_token("devkey", "secret", FULL, now=NOW), _signed({"iss": "devkey", "exp": NOW + 1})]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/é{}\"'"
    for _ in range(2000):
        chars = list(rng.choice(corpus))
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(chars) + 1)
            if rng.random() < 0.5 and chars:
                chars[min(pos, len(chars) - 1)] = rng.choice(alphabet)
            else:
                chars.insert(pos, rng.choice(alphabet))
        _verify_or_greenroom_error("".join(chars))
    # JSON-level mutations that keep a valid signature reach the claim parser
    for _ in range(500):
        payload: dict[str, Any] = {"iss": "devkey", "exp": NOW + 5}
        key = rng.choice(["sub", "name", "video", "attributes", "nbf", "exp", "kindDetails", "roomConfig"])
        payload[key] = rng.choice([None, 1, 1.5, "s", [], ["a"], {}, {"roomJoin": 1}, {"a": "b"}, True])
        _verify_or_greenroom_error(_signed(payload))
