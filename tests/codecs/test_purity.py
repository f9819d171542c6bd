from __future__ import annotations

import subprocess
import sys


def test_importing_codecs_loads_no_asyncio_library() -> None:
    code = (
        "import sys, greenroom.codecs, pkgutil, importlib\n"
        "import greenroom.codecs as c\n"
        "for m in pkgutil.iter_modules(c.__path__): importlib.import_module('greenroom.codecs.' + m.name)\n"
        "bad = [m for m in ('aiortc', 'aioice', 'websockets', 'pykka', 'av') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == ""
