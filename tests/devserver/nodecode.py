"""Make constructing any aiortc decoder fail loudly in this process (the dev server must never decode).

``forbid_decoders()`` patches ``aiortc.codecs.get_decoder`` (and the name ``aiortc.rtcrtpreceiver`` imported
from it, which the receiver's decoder thread calls) and ``Decoder.__new__`` (every decoder class — Opus, VP8,
H264, G.711, G.722 — inherits it), so a decoder constructed by any path is recorded and raises. Use it only
in a process that runs nothing but the server: clients decode legitimately.

``python -m tests.devserver.nodecode serve --port 0`` runs ``greenroom serve`` with the patch and prints
``DECODER CONSTRUCTED: <codec>`` on stderr if one was attempted.
"""

from __future__ import annotations

import sys
from typing import Any

import aiortc.codecs
import aiortc.rtcrtpreceiver
from aiortc.codecs.base import Decoder

__all__ = ["MARK", "forbid_decoders"]

MARK = "DECODER CONSTRUCTED"


def forbid_decoders() -> list[str]:
    """Install the patch; returns the list the attempts are recorded in (codec or class names)."""
    attempts: list[str] = []

    def refuse(what: str) -> RuntimeError:
        attempts.append(what)
        print(f"{MARK}: {what}", file=sys.stderr, flush=True)
        return RuntimeError(f"the dev server constructed a decoder ({what})")

    def get_decoder(codec: Any) -> Any:
        raise refuse(str(getattr(codec, "mimeType", codec)))

    def new(cls: type, *args: Any, **kwargs: Any) -> Any:
        raise refuse(cls.__name__)

    aiortc.codecs.get_decoder = get_decoder
    aiortc.rtcrtpreceiver.get_decoder = get_decoder  # type: ignore[attr-defined]
    Decoder.__new__ = new  # type: ignore[method-assign]
    return attempts


if __name__ == "__main__":
    forbid_decoders()
    from greenroom.devserver.cli import main

    raise SystemExit(main(sys.argv[1:]))
