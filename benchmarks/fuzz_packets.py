"""Feed every pure decoder 100,000 random or mutated inputs; only GreenroomError subclasses may escape.

Run: ``.venv/bin/python benchmarks/fuzz_packets.py [--count N] [--seed S]``. Prints, per decoder, how many
inputs decoded, how many were refused (by error class) and how many raised anything else (must be 0);
exits 1 if any input raised a non-greenroom exception.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from greenroom.codecs.errors import GreenroomError
from greenroom.codecs.packets import (
    DataPacket,
    RpcAck,
    StreamChunk,
    StreamHeader,
    TextHeader,
    UserPacket,
    decode_encrypted_payload,
    decode_packet,
    encode_packet,
)
from greenroom.codecs.payload import pack, unpack
from greenroom.codecs.tokens import Claims, VideoGrants, mint_token, verify_token

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "codecs" / "golden"
NOW = 1_800_000_000
KEYS = {"devkey": "secret"}


def _mutate(rng: random.Random, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(5)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif op == 2:
            del data[pos : pos + rng.randint(1, 8)]
        elif op == 3:
            data = data[:pos]
        elif data:
            data[min(pos, len(data) - 1)] = rng.choice((0x00, 0x7F, 0x80, 0xFF))
    return bytes(data)


def _inputs(rng: random.Random, corpus: Sequence[bytes], count: int) -> list[bytes]:
    """Half purely random bytes, half mutations of valid messages."""
    out: list[bytes] = []
    for i in range(count):
        if i % 2:
            out.append(_mutate(rng, rng.choice(corpus)))
        else:
            out.append(rng.randbytes(rng.randrange(64)))
    return out


def _run(name: str, decode: Callable[[bytes], object], inputs: Sequence[bytes]) -> int:
    outcomes: collections.Counter[str] = collections.Counter()
    foreign: list[str] = []
    started = time.perf_counter()
    for data in inputs:
        try:
            decode(data)
        except GreenroomError as exc:
            outcomes[type(exc).__name__] += 1
        except Exception as exc:  # the point is to catch and count anything else
            outcomes["FOREIGN:" + type(exc).__name__] += 1
            foreign.append(f"{type(exc).__name__}: {exc} for {data!r:.80}")
        else:
            outcomes["decoded"] += 1
    elapsed = time.perf_counter() - started
    print(f"{name:<28} {len(inputs):>7} inputs  {elapsed:6.2f} s  non-greenroom: {len(foreign)}")
    for outcome, n in sorted(outcomes.items(), key=lambda kv: -kv[1]):
        print(f"    {outcome:<26} {n:>7}")
    for line in foreign[:5]:
        print("    !", line)
    return len(foreign)


def _packet_corpus() -> list[bytes]:
    golden: dict[str, str] = json.loads((GOLDEN / "packets.json").read_text())
    extra = [
        DataPacket(UserPacket(b"hello", topic="t"), participant_identity="a", sequence=9),
        DataPacket(StreamHeader("s", 1, "x", "text/plain", 3, (("k", "v"),), TextHeader(), b"abc")),
        DataPacket(StreamChunk("s", 2, b"abc"), destination_identities=("b",)),
        DataPacket(RpcAck("r")),
    ]
    return [bytes.fromhex(h) for h in golden.values()] + [encode_packet(p) for p in extra]


def _token_corpus() -> list[bytes]:
    claims = Claims(
        identity="alice",
        name="A",
        attributes=(("k", "v"),),
        video=VideoGrants(room_join=True, room="r", can_publish=False, can_publish_sources=("camera",)),
        room_config='{"name": "r"}',
    )
    return [
        mint_token("devkey", "secret", claims, now=NOW).encode(),
        mint_token("devkey", "secret", Claims()).encode(),
    ]


def _verify(data: bytes) -> object:
    return verify_token(data.decode("latin-1"), KEYS, now=NOW)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fuzz loop; return the number of non-greenroom exceptions seen."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20260907)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    payload_corpus = [
        pack({"m": "greet", "a": [1, 2.5, None, True, b"\x00", "ü"], "n": {"x": [[]]}}),
        pack(None),
    ]
    packets = _packet_corpus()
    foreign = 0
    foreign += _run("decode_packet", decode_packet, _inputs(rng, packets, args.count))
    foreign += _run("decode_encrypted_payload", decode_encrypted_payload, _inputs(rng, packets, args.count))
    foreign += _run("payload.unpack", unpack, _inputs(rng, payload_corpus, args.count))
    foreign += _run("verify_token", _verify, _inputs(rng, _token_corpus(), args.count))
    print("TOTAL non-greenroom exceptions:", foreign)
    return foreign


if __name__ == "__main__":
    sys.exit(1 if main() else 0)
