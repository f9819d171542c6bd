"""``ProtoEnum``: an ``IntEnum`` that also answers like a protobuf enum wrapper.

The official SDK's enums (``rtc.DisconnectReason``, ``rtc.TrackKind`` …) are protobuf enum types, so user
code calls ``DisconnectReason.Name(reason)``, ``TrackKind.Value("KIND_AUDIO")``, ``.keys()``, ``.values()``
and ``.items()`` on them. greenroom's enums are real ``IntEnum`` classes (members compare equal to the
official ints) with those five class methods added, raising ``ValueError`` as protobuf's wrapper does.
"""

from __future__ import annotations

import enum
from typing import Self

__all__ = ["ProtoEnum"]


class ProtoEnum(enum.IntEnum):
    """Base of the enums users reach through ``greenroom.rtc`` (no members of its own)."""

    @classmethod
    def Name(cls, number: int) -> str:  # noqa: N802 - protobuf's spelling
        """The member name of ``number``.

        Raises:
            ValueError: no member has that number.
        """
        try:
            return cls(number).name
        except ValueError:
            raise ValueError(f"Enum {cls.__name__} has no name defined for value {number!r}") from None

    @classmethod
    def Value(cls, name: str) -> Self:  # noqa: N802 - protobuf's spelling
        """The member called ``name``.

        Raises:
            ValueError: no member has that name.
        """
        try:
            return cls[name]
        except KeyError:
            raise ValueError(f"Enum {cls.__name__} has no value defined for name {name!r}") from None

    @classmethod
    def keys(cls) -> list[str]:
        """The member names, in number order of definition."""
        return [member.name for member in cls]

    @classmethod
    def values(cls) -> list[Self]:
        """The members (ints), in order of definition."""
        return list(cls)

    @classmethod
    def items(cls) -> list[tuple[str, Self]]:
        """(name, member) pairs, in order of definition."""
        return [(member.name, member) for member in cls]
