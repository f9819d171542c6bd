"""Layer rules import-linter cannot express: no library layer may import the official SDK.

``livekit.protocol`` (the protobufs) and ``livekit.rtc`` / ``livekit.api`` (the official SDK) share the
``livekit`` namespace, and import-linter only forbids whole external distributions, so this checks the
sources directly.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIBRARY_ROOTS = ["codecs", "runtime", "actors", "rtc", "testing", "agents", "fleet", "devserver", "cli"]
BANNED = ("livekit.rtc", "livekit.api")


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("root", LIBRARY_ROOTS)
def test_library_never_imports_the_official_sdk(root: str) -> None:
    files = sorted((ROOT / root).rglob("*.py"))
    assert files, f"no sources under {root}/"
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in files
        for name in _imported_modules(path)
        if any(name == banned or name.startswith(banned + ".") for banned in BANNED)
    ]
    assert offenders == []
