"""A small checker for the private names of dependencies that greenroom relies on.

greenroom patches or reads a few private parts of aiortc, aioice and pykka. Each dependency gets one seams
module (:mod:`greenroom.runtime.aiortc_seams`, :mod:`greenroom.runtime.aioice_seams`,
:mod:`greenroom.actors.pykka_seams`) that lists them as :class:`Seam` values and calls :func:`check` when it
is imported. A version outside the pinned range, a missing name or a name of the wrong shape raises
:class:`DependencyMismatchError` at once, naming the installed version and the expected range, instead of
failing later and obscurely in the middle of a call.

The checker only uses :mod:`inspect` and :mod:`dis` on the objects it is given, so it works on fake modules
and classes too (that is how its own tests make it fail).
"""

from __future__ import annotations

import dis
import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Literal, TypeAlias

from greenroom.codecs.errors import GreenroomError

__all__ = [
    "DependencyMismatchError",
    "Missing",
    "Seam",
    "Shape",
    "check",
    "installed_version",
    "member",
    "problems",
    "version_in",
]

#: What a seam must look like:
#:
#: * ``"function"`` — a plain (not ``async``) callable; ``params`` lists its parameter names when given;
#: * ``"coroutine"`` — an ``async def`` function; ``params`` as above;
#: * ``"class"`` — a class;
#: * ``"value"`` — any attribute (an instance of ``value_type`` when given; the very object ``value`` when
#:   that is given);
#: * ``"stored"`` — ``holder`` is a function that assigns the attribute ``name`` (``self.name = ...``): the
#:   way to check an instance attribute without building an instance;
#: * ``"uses"`` — ``holder`` is a function whose code names ``name`` (a global, attribute or method it
#:   looks up when it runs);
#: * ``"constant"`` — ``holder`` is a function whose code holds the literal ``value``.
Shape: TypeAlias = Literal["function", "coroutine", "class", "value", "stored", "uses", "constant"]


class DependencyMismatchError(GreenroomError):
    """An installed dependency is not the version whose private names greenroom was written against.

    Attributes:
        dependency: the distribution name, e.g. ``"aiortc"``.
        installed: its installed version.
        expected: the pinned range, e.g. ``"1.16.*"``.
        problems: one sentence per seam that failed.
    """

    def __init__(self, dependency: str, installed: str, expected: str, problems: list[str]) -> None:
        self.dependency = dependency
        self.installed = installed
        self.expected = expected
        self.problems = list(problems)
        super().__init__(
            f"{dependency} {installed} is installed but greenroom relies on private parts of "
            f"{dependency}=={expected}: {'; '.join(self.problems)}. Install {dependency}=={expected} "
            "(the pin in greenroom's pyproject.toml)."
        )


@dataclass(frozen=True, slots=True)
class Seam:
    """One private name of a dependency and the shape greenroom needs it to have.

    Attributes:
        holder: the module, class or (for ``stored``/``uses``/``constant``) function that holds the name.
        name: the attribute name (the mangled form for ``__name`` attributes); for ``constant``, a label.
        shape: see :data:`Shape`.
        params: the exact parameter names of a ``function``/``coroutine`` (``self`` included), if checked.
        value_type: for ``value``, the type the attribute must be an instance of.
        value: for ``constant``, the literal the code must hold; for ``value``, the very object expected.
    """

    holder: Any
    name: str
    shape: Shape = "function"
    params: tuple[str, ...] | None = None
    value_type: type | None = None
    value: Any = None

    @property
    def label(self) -> str:
        """``Holder.name`` as the error message shows it."""
        owner = getattr(self.holder, "__qualname__", None) or getattr(self.holder, "__name__", None)
        return f"{owner or type(self.holder).__name__}.{self.name}"


class Missing:
    """Stands for a holder that is itself missing (so building a seam list never raises)."""

    def __init__(self, qualname: str) -> None:
        self.__qualname__ = qualname

    def __repr__(self) -> str:
        return f"<missing {self.__qualname__}>"


def member(owner: Any, name: str) -> Any:
    """``owner.name``, or a :class:`Missing` marker naming it (so a seam list never fails to build)."""
    found = getattr(owner, name, None)
    if found is None:
        owner_name = getattr(owner, "__qualname__", None) or getattr(owner, "__name__", repr(owner))
        return Missing(f"{owner_name}.{name}")
    return found


#: The attribute greenroom sets on each replacement it installs, naming the dependency's object it replaced.
REPLACED = "__greenroom_replaced__"


def mark_replacement(replacement: Any, original: Any) -> None:
    """Record on ``replacement`` what it replaced, so a later check inspects the dependency's own object."""
    setattr(replacement, REPLACED, original)


def problems(seam: Seam) -> list[str]:
    """What is wrong with one seam (empty when it has the expected shape). Pure: it only inspects objects."""
    if isinstance(seam.holder, Missing):
        return [f"{seam.holder.__qualname__} is missing (needed for {seam.name})"]
    if seam.shape in ("stored", "uses", "constant"):
        return _code_problems(seam)
    missing = object()
    target = getattr(seam.holder, seam.name, missing)
    if target is missing:
        return [f"{seam.label} is missing"]
    # Once greenroom has patched a seam (the SCTP layer, the ICE pacing), what is checked is what it replaced.
    while hasattr(target, REPLACED):
        target = getattr(target, REPLACED)
    if seam.shape == "class":
        return [] if inspect.isclass(target) else [f"{seam.label} is not a class"]
    if seam.shape == "value":
        return _value_problems(seam, target)
    return _callable_problems(seam, target)


def _value_problems(seam: Seam, target: Any) -> list[str]:
    if seam.value_type is not None and not isinstance(target, seam.value_type):
        return [f"{seam.label} is not a {seam.value_type.__name__}"]
    if seam.value is not None and target is not seam.value:
        return [f"{seam.label} is no longer {seam.value!r}"]
    return []


def _callable_problems(seam: Seam, target: Any) -> list[str]:
    if not callable(target):
        return [f"{seam.label} is not callable"]
    is_coroutine = inspect.iscoroutinefunction(target)
    if seam.shape == "coroutine" and not is_coroutine:
        return [f"{seam.label} is not a coroutine function"]
    if seam.shape == "function" and is_coroutine:
        return [f"{seam.label} became a coroutine function"]
    return [] if seam.params is None else _signature_problems(seam, target)


def _signature_problems(seam: Seam, target: Any) -> list[str]:
    assert seam.params is not None
    try:
        found = tuple(inspect.signature(target).parameters)
    except (TypeError, ValueError):
        return [f"{seam.label} has no readable signature"]
    if found != seam.params:
        return [f"{seam.label} takes ({', '.join(found)}), not ({', '.join(seam.params)})"]
    return []


def _code_problems(seam: Seam) -> list[str]:
    function = getattr(seam.holder, "__func__", seam.holder)  # a classmethod bound to its class
    code = getattr(inspect.unwrap(function), "__code__", None) if callable(function) else None
    where = getattr(seam.holder, "__qualname__", repr(seam.holder))
    if code is None:
        return [f"{where} is not a Python function"]
    if seam.shape == "constant":
        return (
            [] if seam.value in code.co_consts else [f"{where} no longer holds the constant {seam.value!r}"]
        )
    if seam.shape == "uses":
        return [] if seam.name in code.co_names else [f"{where} no longer refers to {seam.name}"]
    stores = {ins.argval for ins in dis.get_instructions(code) if ins.opname == "STORE_ATTR"}
    return [] if seam.name in stores else [f"{where} no longer sets the attribute {seam.name}"]


def installed_version(distribution: str) -> str:
    """The installed version of ``distribution`` (``"not installed"`` when metadata is missing)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def version_in(version: str, expected: str) -> bool:
    """Whether ``version`` lies in ``expected``, written ``X.Y.*`` (the pin form) or as one exact version."""
    if expected.endswith(".*"):
        prefix = expected[:-2].split(".")
        return version.split(".")[: len(prefix)] == prefix
    return version == expected


def check(dependency: str, expected: str, seams: Iterable[Seam], *, installed: str | None = None) -> None:
    """Check the installed version and every seam; raise one error listing everything that is off.

    Args:
        dependency: the distribution name.
        expected: the pinned range (``"1.16.*"``).
        seams: what greenroom relies on.
        installed: the version to report; default: the installed distribution's.

    Raises:
        DependencyMismatchError: the version is outside ``expected`` or a seam is missing or misshapen.
    """
    version = installed_version(dependency) if installed is None else installed
    found = [] if version_in(version, expected) else [f"version {version} is outside {expected}"]
    for seam in seams:
        found.extend(problems(seam))
    if found:
        raise DependencyMismatchError(dependency, version, expected, found)
