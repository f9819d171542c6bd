"""Feed 100,000 random or mutated inputs to each signalling decoder; every failure must be a GreenroomError.

Run: ``.venv/bin/python benchmarks/fuzz_decoders.py [N] [SEED]``. Prints, per decoder, how many inputs
decoded, how many raised a GreenroomError and how many raised anything else (must be 0), and the rate.
Inputs: one third uniformly random bytes/text, two thirds mutations (byte flips, truncation, insertion,
splicing, nested length-prefixed garbage) of valid seeds (the golden fixtures and a few hand-made ones).
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from greenroom.codecs.errors import GreenroomError
from greenroom.codecs.models import IceCandidate
from greenroom.codecs.signalling import JoinParams, decode_request, decode_response

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "codecs" / "golden" / "signalling.json"

TEXT_SEEDS = [
    '{"candidate":"candidate:1 1 udp 2122260223 198.18.0.1 51234 typ host","sdpMid":"0","sdpMLineIndex":0}',
    '{"candidate":"","sdpMid":null,"sdpMLineIndex":null,"usernameFragment":"ab"}',
    "sdk=python&protocol=18&client_protocol=2&auto_subscribe=1&adaptive_stream=0&version=1.2.1",
    "access_token=x.y.z&reconnect=1&sid=PA_abc&reconnect_reason=1&sdk=js",
]


def _mutate_bytes(rng: random.Random, seed: bytes, seeds: list[bytes]) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(6)
        if op == 0 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif op == 1:
            del data[rng.randrange(len(data) + 1) :]
        elif op == 2:
            data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
        elif op == 3:
            other = rng.choice(seeds)
            data[rng.randrange(len(data) + 1) :] = other[rng.randrange(len(other) + 1) :]
        elif op == 4:  # a length-delimited field with random tag wrapping random bytes
            body = rng.randbytes(rng.randrange(12))
            data += bytes([(rng.randrange(1, 32) << 3) | 2, len(body)]) + body
        else:  # a varint field with a huge value (enums, ints)
            data += bytes([rng.randrange(1, 32) << 3]) + b"\xff" * rng.randrange(1, 11) + b"\x01"
    return bytes(data)


def _mutate_text(rng: random.Random, seed: str) -> str:
    chars = list(seed)
    alphabet = '{}[]":,=&%0123456789-.aZ\\ \x00\ud800é'
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(3)
        if op == 0 and chars:
            chars[rng.randrange(len(chars))] = rng.choice(alphabet)
        elif op == 1:
            del chars[rng.randrange(len(chars) + 1) :]
        else:
            chars.insert(rng.randrange(len(chars) + 1), rng.choice(alphabet))
    return "".join(chars)


def _run(
    name: str, decode: Callable[[Any], object], inputs: Callable[[random.Random], Any], n: int, seed: int
) -> bool:
    rng = random.Random(seed)
    ok = expected = 0
    unexpected: dict[str, int] = {}
    start = time.perf_counter()
    for _ in range(n):
        item = inputs(rng)
        try:
            decode(item)
            ok += 1
        except GreenroomError:
            expected += 1
        except Exception as exc:  # the thing this script looks for
            key = f"{type(exc).__name__}: {str(exc)[:80]}"
            unexpected[key] = unexpected.get(key, 0) + 1
    elapsed = time.perf_counter() - start
    bad = sum(unexpected.values())
    print(
        f"{name:24} {n:>7} inputs  decoded {ok:>6}  GreenroomError {expected:>6}  other {bad}"
        f"  ({n / elapsed:,.0f}/s)"
    )
    for key, count in sorted(unexpected.items(), key=lambda kv: -kv[1]):
        print(f"    {count:>6} x {key}")
    return bad == 0


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    golden = json.loads(GOLDEN.read_text())

    def binary_for(direction: str) -> Callable[[random.Random], bytes]:
        seeds = [bytes.fromhex(v) for k, v in golden.items() if k.startswith(direction)]

        def binary(rng: random.Random) -> bytes:
            if rng.random() < 1 / 3:
                return rng.randbytes(rng.randrange(64))
            return _mutate_bytes(rng, rng.choice(seeds), seeds)

        return binary

    def text(rng: random.Random) -> str:
        if rng.random() < 1 / 3:
            return "".join(chr(rng.randrange(0x20, 0x2FF)) for _ in range(rng.randrange(40)))
        return _mutate_text(rng, rng.choice(TEXT_SEEDS))

    results = [
        _run("decode_request", decode_request, binary_for("request"), n, seed),
        _run("decode_response", decode_response, binary_for("response"), n, seed),
        _run("IceCandidate.from_json", IceCandidate.from_json, text, n, seed),
        _run("JoinParams.from_query", JoinParams.from_query, text, n, seed),
    ]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
