"""Movies read frame by frame as :class:`Plate` objects, decoded with PyAV.

Frame numbering: the n-th decoded picture (0-based, in presentation order) becomes frame
``start_frame + n``.  Timestamps never decide the number, because variable-frame-rate
movies have no integer frame grid; the picture's source time in seconds travels in the
``vfxmatte:sourceTime`` attribute instead.  Timecodes advance by one per decoded picture.
Drop-frame timecodes are not handled: they are counted as non-drop, so labels drift by
about 3.6 s an hour.  Display matrices (rotation and mirroring) are applied the way
FFmpeg's autorotate does, so plates come out upright; an input error surfaces on the
first ``next()`` of :func:`read_movie`, as it is a generator.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.sidedata.sidedata import SideDataContainer
from av.sidedata.sidedata import Type as SideDataType

from vfxmatte.errors import InputError, MovieDecodeError
from vfxmatte.io.exr import DEFAULT_MAX_PIXELS
from vfxmatte.io.frames import HeaderAttribute, Plate, Window

MOVIE_EXTENSIONS = (".mov", ".mp4", ".mkv", ".webm", ".m4v", ".mxf", ".avi")
SOURCE_TIME_ATTRIBUTE = "vfxmatte:sourceTime"
DEFAULT_COLORSPACE = "sRGB Encoded Rec.709 (sRGB)"

_TIMECODE = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})([:;.,])(\d{2,3})$")
_AVCOL_SPC_UNSPECIFIED = 2


def is_movie(path: str | os.PathLike[str]) -> bool:
    """True when the extension names a movie container (case-insensitive)."""
    return Path(path).suffix.lower() in MOVIE_EXTENSIONS


@dataclass(frozen=True)
class MovieInfo:
    """What a movie declares, with width/height as displayed (after rotation).

    ``rotation`` is the clockwise angle applied to decoded pictures to show them
    upright (after a horizontal mirror when ``mirrored``).
    """

    path: str
    codec: str
    width: int
    height: int
    coded_width: int
    coded_height: int
    fps: Fraction | None
    declared_frames: int | None
    rotation: int
    pixel_aspect: float
    timecode: str | None
    variable_frame_rate: bool
    duration_s: float | None
    mirrored: bool = False


@dataclass(frozen=True)
class _Orientation:
    """A display matrix reduced to numpy moves: transpose, then flip rows/columns."""

    swap: bool = False
    flip_rows: bool = False
    flip_cols: bool = False

    def apply(self, img: np.ndarray) -> np.ndarray:
        out = np.swapaxes(img, 0, 1) if self.swap else img
        if self.flip_rows:
            out = out[::-1]
        if self.flip_cols:
            out = out[:, ::-1]
        return out

    def describe(self) -> tuple[int, bool]:
        """(clockwise degrees, mirrored), found by matching a probe against np.rot90."""
        probe = np.arange(6).reshape(2, 3)
        target = self.apply(probe)
        for mirrored in (False, True):
            src = probe[:, ::-1] if mirrored else probe
            for turns in range(4):
                turned = np.rot90(src, -turns)
                if turned.shape == target.shape and np.array_equal(turned, target):
                    return 90 * turns, mirrored
        raise AssertionError("unreachable: every signed permutation is a rotation or mirror")


def _orientation(frame: av.VideoFrame) -> tuple[_Orientation, str | None]:
    """Read FFmpeg's display matrix (p' = a*p + c*q + x, q' = b*p + d*q + y, y down).

    Only multiples of 90 degrees (with or without a mirror) are honoured; anything else
    (an all-zero matrix, 45 degrees…) is ignored with a warning, as it cannot be undone
    without resampling.
    """
    # Not ``frame.side_data``: the frame caches that container, which points back at the frame, so
    # every frame (with its picture and its swscale threads) would wait for the cyclic GC.
    sides: Any = SideDataContainer(frame)  # type: ignore[call-arg]  # the stubs omit its frame argument
    for side in sides:
        if side.type == SideDataType.DISPLAYMATRIX:
            m = np.frombuffer(bytes(side), dtype=np.int32)
            break
    else:
        return _Orientation(), None
    a, b, c, d = (0 if abs(int(v)) < 655 else (1 if v > 0 else -1) for v in (m[0], m[1], m[3], m[4]))
    if a and d and not b and not c:
        return _Orientation(False, d < 0, a < 0), None
    if b and c and not a and not d:
        return _Orientation(True, b < 0, c < 0), None
    return (
        _Orientation(),
        f"ignored a display rotation that is not a multiple of 90 degrees ({frame.rotation})",
    )


def _reason(exc: BaseException) -> str:
    """One printable line from an exception whose text may hold odd bytes."""
    try:
        text = exc.strerror if isinstance(exc, av.FFmpegError) and exc.strerror else str(exc)
    except Exception:
        text = ""
    text = " ".join(str(text).split()).encode("utf-8", "replace").decode("utf-8")
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text or type(exc).__name__


def _fraction(value: Any) -> Fraction | None:
    try:
        frac = Fraction(value) if value is not None else None
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return frac if frac is not None and frac > 0 else None


def _start_timecode(container: Any, stream: Any) -> str | None:
    """The video stream's tag first, then the container's, then any (tmcd) stream's.

    Tag names are compared case-blind: Matroska stores ``TIMECODE``.
    """
    for tags in [stream.metadata, container.metadata, *(s.metadata for s in container.streams)]:
        for key, value in dict(tags or {}).items():
            if str(key).lower() == "timecode" and _TIMECODE.match(str(value).strip()):
                return str(value).strip()
    return None


def _variable_rate(stream: Any, fps: Fraction | None, declared: int | None) -> bool:
    """Irregular sample timestamps in the index, or else average and base rates disagreeing."""
    entries = [e.timestamp for e in (stream.index_entries or []) if not e.is_discard]
    if declared and len(entries) == declared and len(entries) >= 3:
        steps = np.diff(np.sort(np.asarray(entries, dtype=np.int64)))
        return bool(steps.max() - steps.min() > max(1.0, 0.02 * float(np.median(steps))))
    base = _fraction(stream.base_rate)
    return bool(fps and base and abs(float(fps / base) - 1.0) > 0.01)


def _sample_aspect(stream: Any) -> Fraction:
    """Container SAR first (what players honour), then the bitstream's, else square."""
    cc = stream.codec_context
    return _fraction(stream.sample_aspect_ratio) or _fraction(cc.sample_aspect_ratio) or Fraction(1)


def _info(path: str, container: Any, stream: Any, first: av.VideoFrame | None) -> MovieInfo:
    cc = stream.codec_context
    coded_w = first.width if first is not None else int(cc.width)
    coded_h = first.height if first is not None else int(cc.height)
    orient = _orientation(first)[0] if first is not None else _Orientation()
    rotation, mirrored = orient.describe()
    sar = _sample_aspect(stream)
    fps = _fraction(stream.average_rate)
    declared = int(stream.frames) or None
    if declared is not None and declared > os.path.getsize(path):
        # A frame takes at least a byte: this count is a damaged header (an MP4 stts entry says
        # 2**31 frames), and callers list every declared frame number.
        declared = None
    if stream.duration is not None and stream.time_base:
        duration: float | None = float(stream.duration * stream.time_base)
    else:
        duration = container.duration / av.time_base if container.duration else None
    return MovieInfo(
        path=path,
        codec=str(cc.name),
        width=coded_h if orient.swap else coded_w,
        height=coded_w if orient.swap else coded_h,
        coded_width=coded_w,
        coded_height=coded_h,
        fps=fps,
        declared_frames=declared,
        rotation=rotation,
        pixel_aspect=float(1 / sar if orient.swap else sar),
        timecode=_start_timecode(container, stream),
        variable_frame_rate=_variable_rate(stream, fps, declared),
        duration_s=duration,
        mirrored=mirrored,
    )


@contextmanager
def _open_video(path: str | os.PathLike[str], max_pixels: int) -> Iterator[tuple[str, Any, Any]]:
    """Open the container and its first video stream; always closes; InputError otherwise.

    FFmpeg's ``max_pixels`` makes its decoders refuse a picture over the budget before
    allocating it, both while probing the streams and while decoding: a damaged header can
    declare 16000x16000 pictures in a 1 kB file.  The refusal reads "Invalid argument".
    """
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise InputError(f"{name}: no such movie file")
    if os.path.getsize(name) == 0:
        raise InputError(f"{name}: empty file (0 bytes), not a movie")
    budget = {"max_pixels": str(max_pixels)}
    try:
        container = av.open(name, mode="r", options=budget)
    except Exception as exc:
        raise InputError(f"{name}: cannot open as a movie: {_reason(exc)}") from exc
    with container:
        if not container.streams.video:
            raise InputError(f"{name}: holds no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None or not stream.codec_context.name:
            raise InputError(f"{name}: unsupported video codec (no decoder available)")
        stream.codec_context.options = dict(budget)
        stream.thread_type = "AUTO"
        yield name, container, stream


def probe_movie(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> MovieInfo:
    """Describe a movie; decodes only its first picture, to learn its display matrix."""
    with _open_video(path, max_pixels) as (name, container, stream):
        try:
            first = next(iter(container.decode(stream)), None)
        except Exception:
            first = None  # damage is reported by read_movie, where it matters
        return _info(name, container, stream, first)


def movie_frame_count_hint(info: MovieInfo) -> int | None:
    """Declared frame count, else duration x average rate, else None (for progress bars)."""
    if info.declared_frames:
        return info.declared_frames
    if info.duration_s and info.fps:
        return max(1, round(info.duration_s * float(info.fps)))
    return None


def _expected(info: MovieInfo) -> str:
    if info.declared_frames:
        return f"{info.declared_frames} declared"
    hint = movie_frame_count_hint(info)
    return f"about {hint} expected" if hint else "an unknown number of"


def _timecode_at(start: str | None, index: int, fps: Fraction | None) -> str | None:
    """Start timecode advanced by ``index`` frames at the nominal (rounded) rate; 24 h wrap."""
    match = _TIMECODE.match(start) if start else None
    rate = round(fps) if fps else 0
    if match is None or rate <= 0:
        return start if index == 0 else None
    hh, mm, ss, sep, ff = match.groups()
    total = ((int(hh) * 60 + int(mm)) * 60 + int(ss)) * rate + int(ff) + index
    seconds, frame = divmod(total, rate)
    return f"{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}{sep}{frame:02d}"


def _to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """Float RGB in [0, 1]; swscale honours full/limited range from the frame's tags.

    Untagged YUV matrices follow the usual player rule (BT.709 for HD, BT.601 below),
    where swscale alone would always assume BT.601.
    """
    fmt = frame.format
    deep = any(c.bits > 8 for c in fmt.components)
    kwargs: dict[str, Any] = {}
    if not fmt.is_rgb and frame.colorspace == _AVCOL_SPC_UNSPECIFIED:
        if frame.width >= 1280 or frame.height > 576:
            kwargs["src_colorspace"] = "ITU709"
    arr = frame.to_ndarray(format="rgb48le" if deep else "rgb24", **kwargs)
    return arr.astype(np.float32) / np.float32(65535.0 if deep else 255.0)


def read_movie(
    path: str | os.PathLike[str],
    start_frame: int = 1001,
    frames: AbstractSet[int] | None = None,
    colorspace: str = DEFAULT_COLORSPACE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Iterator[Plate]:
    """Yield one plate per decoded picture, numbered ``start_frame + index``.

    ``frames`` restricts which numbers are yielded; decoding stays sequential and stops
    once past the highest (numbers past the end are simply not yielded).  Damage part
    way raises :class:`MovieDecodeError` after the good plates; a movie that decodes
    nothing raises :class:`InputError`.  A picture over ``max_pixels`` is refused by the
    decoder before it is allocated.
    """
    last_wanted = max(frames) if frames else None
    with _open_video(path, max_pixels) as (name, container, stream):
        if frames is not None and (last_wanted is None or last_wanted < start_frame):
            return
        info = _info(name, container, stream, None)
        sar = _sample_aspect(stream)
        decoder = container.decode(stream)
        index = 0
        failure: BaseException | None = None
        while True:
            number = start_frame + index
            if last_wanted is not None and number > last_wanted:
                return
            try:
                frame = next(decoder)
                plate = (
                    None
                    if frames is not None and number not in frames
                    else _plate(frame, info, sar, index, number, colorspace)
                )
            except StopIteration:
                break
            except Exception as exc:
                failure = exc
                break
            if plate is not None:
                yield plate
            index += 1
    expected = _expected(info)
    if index == 0:
        why = f": {_reason(failure)}" if failure is not None else " (no decodable pictures)"
        raise InputError(f"{name}: 0 of {expected} frames decoded{why}")
    if failure is not None:
        raise MovieDecodeError(
            f"{name}: decoding stopped after {index} of {expected} frames: {_reason(failure)}",
            frame=start_frame + index,
        )
    if info.declared_frames and index < info.declared_frames:
        raise MovieDecodeError(
            f"{name}: only {index} of {info.declared_frames} declared frames decoded",
            frame=start_frame + index,
        )


def _plate(
    frame: av.VideoFrame, info: MovieInfo, sar: Fraction, index: int, number: int, colorspace: str
) -> Plate:
    orient, warning = _orientation(frame)
    rgb = np.ascontiguousarray(orient.apply(_to_rgb(frame)))
    height, width = rgb.shape[:2]
    aspect = 1.0 / sar if orient.swap else float(sar)
    seconds = frame.time if frame.time is not None else (index / float(info.fps) if info.fps else None)
    attributes = (
        [HeaderAttribute(SOURCE_TIME_ATTRIBUTE, "float", float(seconds))] if seconds is not None else []
    )
    window = Window(0, 0, width, height)
    return Plate(
        rgb=rgb,
        data_window=window,
        display_window=window,
        path=info.path,
        frame=number,
        colorspace=colorspace,
        pixel_aspect=float(aspect),
        attributes=attributes,
        fps=info.fps,
        timecode=_timecode_at(info.timecode, index, info.fps),
        nonfinite=0,
        warnings=[warning] if warning else [],
    )
