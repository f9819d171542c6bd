"""``VideoFrame`` and ``VideoBufferType``, as in ``livekit.rtc``; conversions with PyAV (libswscale).

Planes are tightly packed and back to back (no row padding), in the official buffer types' plane order.
Supported types: RGBA, ABGR, ARGB, BGRA, RGB24, I420, I422, I444 and NV12 (not I420A, I010).
"""

from __future__ import annotations

import enum

from greenroom.runtime.media import video_frame_from_bytes, video_frame_to_bytes

__all__ = ["VideoBufferType", "VideoFrame", "VideoRotation", "av_format"]


class VideoBufferType(enum.IntEnum):
    """Pixel layouts (``livekit.rtc.VideoBufferType`` names and numbers)."""

    RGBA = 0
    ABGR = 1
    ARGB = 2
    BGRA = 3
    RGB24 = 4
    I420 = 5
    I420A = 6
    I422 = 7
    I444 = 8
    I010 = 9
    NV12 = 10


class VideoRotation(enum.IntEnum):
    """Frame rotation (``livekit.rtc.VideoRotation`` numbers)."""

    VIDEO_ROTATION_0 = 0
    VIDEO_ROTATION_90 = 1
    VIDEO_ROTATION_180 = 2
    VIDEO_ROTATION_270 = 3


_AV_FORMATS = {
    VideoBufferType.RGBA: "rgba",
    VideoBufferType.ABGR: "abgr",
    VideoBufferType.ARGB: "argb",
    VideoBufferType.BGRA: "bgra",
    VideoBufferType.RGB24: "rgb24",
    VideoBufferType.I420: "yuv420p",
    VideoBufferType.I422: "yuv422p",
    VideoBufferType.I444: "yuv444p",
    VideoBufferType.NV12: "nv12",
}


def av_format(type: int) -> str:
    """The PyAV pixel format of a buffer type.

    Raises:
        ValueError: the type is not supported (I420A, I010).
    """
    try:
        return _AV_FORMATS[VideoBufferType(type)]
    except (KeyError, ValueError):
        raise ValueError(f"unsupported video buffer type {type!r}") from None


def _planes(type: int, width: int, height: int) -> list[tuple[int, int]]:
    """``(row bytes, rows)`` of each plane."""
    half_w, half_h = (width + 1) // 2, (height + 1) // 2
    match VideoBufferType(type):
        case VideoBufferType.RGB24:
            return [(3 * width, height)]
        case VideoBufferType.I420:
            return [(width, height), (half_w, half_h), (half_w, half_h)]
        case VideoBufferType.I422:
            return [(width, height), (half_w, height), (half_w, height)]
        case VideoBufferType.I444:
            return [(width, height)] * 3
        case VideoBufferType.NV12:
            return [(width, height), (2 * half_w, half_h)]
        case VideoBufferType.RGBA | VideoBufferType.ABGR | VideoBufferType.ARGB | VideoBufferType.BGRA:
            return [(4 * width, height)]
        case _:
            raise ValueError(f"unsupported video buffer type {type!r}")


class VideoFrame:
    """A raw video frame.

    Args:
        width: pixels.
        height: pixels.
        type: a :class:`VideoBufferType`.
        data: the planes, tightly packed, back to back.
    """

    def __init__(self, width: int, height: int, type: int, data: bytes | bytearray | memoryview) -> None:
        self._width = width
        self._height = height
        self._type = VideoBufferType(type)
        raw = memoryview(data).cast("B")
        self._data = bytearray(raw) if raw.readonly else raw

    @property
    def width(self) -> int:
        """Pixels."""
        return self._width

    @property
    def height(self) -> int:
        """Pixels."""
        return self._height

    @property
    def type(self) -> VideoBufferType:
        """The pixel layout."""
        return self._type

    @property
    def data(self) -> memoryview:
        """The pixel bytes (writable)."""
        return memoryview(self._data).cast("B")

    def get_plane(self, plane_nth: int) -> memoryview | None:
        """The bytes of plane ``plane_nth`` (``None`` past the last plane)."""
        planes = _planes(self._type, self._width, self._height)
        if not 0 <= plane_nth < len(planes):
            return None
        offset = sum(row * rows for row, rows in planes[:plane_nth])
        row, rows = planes[plane_nth]
        return self.data[offset : offset + row * rows]

    def convert(self, type: int, *, flip_y: bool = False) -> VideoFrame:
        """A copy in another layout (PyAV's swscale), optionally flipped vertically.

        Raises:
            ValueError: a type is not supported.
        """
        if type == self._type:
            data = bytes(self.data)
        else:
            frame = video_frame_from_bytes(self.data, self._width, self._height, av_format(self._type))
            data = video_frame_to_bytes(frame.reformat(format=av_format(type)))
        if flip_y:
            data = _flip(data, _planes(type, self._width, self._height))
        return VideoFrame(self._width, self._height, type, data)

    def __repr__(self) -> str:
        return f"rtc.VideoFrame(width={self._width}, height={self._height}, type={self._type.name})"


def _flip(data: bytes, planes: list[tuple[int, int]]) -> bytes:
    out = bytearray()
    offset = 0
    for row, rows in planes:
        plane = data[offset : offset + row * rows]
        out += b"".join(plane[y * row : (y + 1) * row] for y in reversed(range(rows)))
        offset += row * rows
    return bytes(out)
