"""Helpers shared by the tests of the seams modules (aiortc, aioice, pykka)."""

from __future__ import annotations

import dataclasses
import io
import itertools
import re
import tokenize
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from greenroom.runtime.seams_check import DependencyMismatchError, Seam, check, installed_version, problems

__all__ = ["ROOT", "knocked_out", "private_uses", "pyproject_pin"]

ROOT = Path(__file__).resolve().parents[2]
_SOURCE_ROOTS = ("codecs", "runtime", "actors", "rtc", "devserver")


def pyproject_pin(distribution: str) -> str:
    """The version range ``pyproject.toml`` pins ``distribution`` to, from ``name==range``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name, sep, version = requirement.partition("==")
        if sep and name.strip() == distribution:
            return str(version.strip())
    raise LookupError(f"{distribution} is not pinned with == in pyproject.toml")


def knocked_out(seam: Seam) -> Seam:
    """The same seam against a holder that lacks it: a bare class, or a function that does nothing."""

    def empty(self: object) -> None:
        """Neither stores, names nor holds anything a seam could look for."""

    holder: object = empty if seam.shape in ("stored", "uses", "constant") else type("Bare", (), {})
    return dataclasses.replace(seam, holder=holder)


def private_uses(names: set[str], *, allowed: set[str], literals: bool = True) -> list[str]:
    """``file:line name`` for each code use of ``names`` (an attribute access, or with ``literals`` the exact
    string literal as ``getattr`` takes it) in greenroom's sources outside the ``allowed`` file names.
    Docstrings and comments do not count."""
    found = []
    for root in _SOURCE_ROOTS:
        for path in sorted((ROOT / root).rglob("*.py")):
            if path.name in allowed:
                continue
            tokens = list(tokenize.generate_tokens(io.StringIO(path.read_text()).readline))
            for previous, token in itertools.pairwise(tokens):
                attribute = token.type == tokenize.NAME and previous.string == "."
                literal = literals and token.type == tokenize.STRING and token.string.strip("'\"") in names
                if (attribute and token.string in names) or literal:
                    found.append(f"{path.relative_to(ROOT)}:{token.start[0]} {token.string}")
    return found


def assert_installed_matches(distribution: str, seams: ModuleType) -> None:
    """The installed ``distribution`` has every seam of its seams module, and the pin, the module's expected
    range and the installed version agree."""
    assert [p for seam in seams.SEAMS for p in problems(seam)] == []
    check(distribution, seams.EXPECTED, seams.SEAMS)
    assert pyproject_pin(distribution) == seams.EXPECTED
    assert installed_version(distribution).startswith(seams.EXPECTED.removesuffix("*"))


def assert_refused_when_gone(distribution: str, seams: ModuleType, seam: Seam, installed: str) -> None:
    """The check refuses ``seam`` with its name knocked out, naming the version and the expected range."""
    match = rf"{distribution} {re.escape(installed)} .* {re.escape(distribution + '==' + seams.EXPECTED)}"
    with pytest.raises(DependencyMismatchError, match=match):
        check(distribution, seams.EXPECTED, [knocked_out(seam)], installed=installed)
