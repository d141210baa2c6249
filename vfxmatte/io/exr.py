"""EXR and still images through OpenImageIO: guarded reads, atomic multichannel writes.

Untrusted files are opened with OIIO's resolution limits in force and the declared data
window is checked against a pixel budget *before* any pixel is read, so a damaged header
that declares a gigantic image costs nothing.  Every failure becomes a one-line
:class:`~vfxmatte.errors.FrameError` naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import OpenImageIO as oiio

from vfxmatte.errors import FrameError, OutputError
from vfxmatte.io.frames import HeaderAttribute, Plate, Window
from vfxmatte.io.locks import free_lock

#: Default pixel budget for one frame's data window: 8K DCI (8192×4320) plus overscan.
DEFAULT_MAX_PIXELS = 48_000_000
HALF_MAX = 65504.0

# Attributes that describe the input file's encoding, not the picture: never carried over.
_NOT_CARRIED = {
    "compression",
    "multiView",
    "name",
    "chunkCount",
    "type",
    "version",
    "tiles",
    "dwaCompressionLevel",
    "oiio:subimages",
    "oiio:subimagename",
    "oiio:RowsPerChunk",
    "oiio:ColorSpace",
    "oiio:BitsPerSample",
    "oiio:UnassociatedAlpha",
    "openexr:chunkCount",
    "openexr:lineOrder",
    "openexr:levelmode",
    "openexr:roundingmode",
    "openexr:dwaCompressionLevel",
    "PixelAspectRatio",
    # Read into Plate.fps / Plate.timecode and written from there.
    "FramesPerSecond",
    "smpte:TimeCode",
}

_LINEAR_REC709 = "Linear Rec.709 (sRGB)"
_SRGB = "sRGB Encoded Rec.709 (sRGB)"
# CIE xy of red, green, blue and white: how an EXR header says which primaries it uses.
_CHROMATICITIES = {
    _LINEAR_REC709: (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290),
    "ACES2065-1": (0.7347, 0.2653, 0.0, 1.0, 0.0001, -0.077, 0.32168, 0.33767),
    "ACEScg": (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767),
    "Linear Rec.2020": (0.708, 0.292, 0.170, 0.797, 0.131, 0.046, 0.3127, 0.3290),
    "Linear P3-D65": (0.680, 0.320, 0.265, 0.690, 0.150, 0.060, 0.3127, 0.3290),
}


def configure_limits() -> None:
    """Tighten OIIO's global guards against damaged headers (idempotent)."""
    oiio.attribute("limits:resolution", 65536)
    oiio.attribute("limits:imagesize_MB", 8192)


def oiio_error(source: oiio.ImageInput | oiio.ImageOutput | None = None) -> str:
    """OIIO's pending error text as one line, surviving non-UTF-8 bytes in it.

    ``geterror()`` raises ``UnicodeDecodeError`` when a damaged header's bytes end up in
    the message; the undecodable bytes are on the exception, so decode them by hand.
    """
    texts = []
    for getter in ([source.geterror] if source is not None else []) + [oiio.geterror]:
        try:
            texts.append(getter())
        except UnicodeDecodeError as exc:
            raw = exc.object if isinstance(exc.object, bytes | bytearray) else b""
            texts.append(bytes(raw).decode("utf-8", "replace"))
    return one_line("; ".join(t for t in texts if t) or "unknown OpenImageIO error")


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one printable line (a damaged header's bytes could be terminal escapes), shortened."""
    flat = "".join(ch if ch.isprintable() else "?" for ch in " ".join(text.split()))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(frozen=True)
class ImageLayout:
    """What ``vfxmatte info`` reports about one image file."""

    path: str
    format: str
    parts: list[dict[str, object]]


@contextlib.contextmanager
def _open(path: str, frame: int | None) -> Iterator[oiio.ImageInput]:
    configure_limits()
    if not os.path.exists(path):
        raise FrameError(f"{path}: file does not exist", frame)
    if os.path.isdir(path):
        raise FrameError(f"{path}: is a directory, not an image file", frame)
    if os.path.getsize(path) == 0:
        raise FrameError(f"{path}: file is empty (0 bytes)", frame)
    inp = oiio.ImageInput.open(path)
    if inp is None:
        reason = oiio_error().replace(f"EXR Error ({path}): ", "")
        if "Subsampled channels" in reason:
            reason = (
                "subsampled channels (e.g. luminance/chroma RY/BY) are not supported by OpenImageIO; "
                "convert the file to RGB first"
            )
        raise FrameError(f"{path}: cannot open: {reason}", frame)
    try:
        yield inp
    finally:
        inp.close()


def _parts(inp: oiio.ImageInput) -> list[oiio.ImageSpec]:
    specs = []
    index = 0
    while inp.seek_subimage(index, 0):
        specs.append(inp.spec().copy())
        index += 1
    return specs


def describe(path: str) -> ImageLayout:
    """Parts, channels and windows of an image file, without reading pixels."""
    with _open(path, None) as inp:
        parts = []
        for i, spec in enumerate(_parts(inp)):
            parts.append(
                {
                    "part": i,
                    "name": spec.getattribute("oiio:subimagename") or spec.getattribute("name"),
                    "view": spec.getattribute("view"),
                    "channels": list(spec.channelnames),
                    "format": str(spec.format),
                    "data_window": [spec.x, spec.y, spec.width, spec.height],
                    "display_window": [spec.full_x, spec.full_y, spec.full_width, spec.full_height],
                    "pixel_aspect": float(spec.get_float_attribute("PixelAspectRatio", 1.0)),
                    "tiled": spec.tile_width > 0,
                    "deep": bool(spec.deep),
                }
            )
        return ImageLayout(path=path, format=inp.format_name(), parts=parts)


def _select_channels(
    path: str, specs: list[oiio.ImageSpec], layer: str | None, view: str | None, frame: int | None
) -> tuple[int, list[int]]:
    """Choose the part and the three channel indices the plate's colour comes from.

    Default: the first part holding unprefixed R, G, B (in a stereo file that is the
    hero view — the first view of ``multiView``, whose channels carry no prefix); else a
    luminance ``Y``; else a lone channel read as grey.  ``layer`` names a layer prefix
    (``left`` for ``left.R``) or a part name; ``view`` names a stereo view.
    """
    wanted_prefixes = [""] if layer is None else [layer + "."]
    candidates: list[tuple[int, list[int]]] = []
    for index, spec in enumerate(specs):
        names = list(spec.channelnames)
        part_name = spec.getattribute("oiio:subimagename") or spec.getattribute("name")
        part_view = spec.getattribute("view")
        views = _multiview(spec)
        prefixes = list(wanted_prefixes)
        if layer is not None and part_name == layer:
            prefixes.append("")
        if view is not None:
            if part_view is not None and part_view != view:
                continue
            if part_view is None and views and view in views and view != views[0]:
                # OpenEXR multi-view naming: "left.R" for the main layer, "layer.left.R" for others.
                prefixes = [p + view + "." for p in prefixes]
            elif part_view is None and views and view not in views:
                continue
            elif part_view is None and not views:
                continue
        for prefix in prefixes:
            if all(prefix + c in names for c in "RGB"):
                candidates.append((index, [names.index(prefix + c) for c in "RGB"]))
            elif prefix + "Y" in names:
                y = names.index(prefix + "Y")
                candidates.append((index, [y, y, y]))
        if layer is None and view is None and len(names) == 1 and not candidates:
            candidates.append((index, [0, 0, 0]))
    if not candidates:
        what = f"layer {layer!r}" if layer else "RGB or Y layer"
        if view:
            what += f" in view {view!r}"
        available = sorted({n.rsplit(".", 1)[0] for s in specs for n in s.channelnames if "." in n})
        parts = [str(n) for s in specs if (n := s.getattribute("oiio:subimagename") or s.getattribute("name"))]
        hint = f" (layers: {', '.join(available)})" if available else ""
        if len(parts) > 1:
            hint += f" (parts: {', '.join(parts)})"
        raise FrameError(one_line(f"{path}: no {what}{hint}", 2000), frame)  # names come from the header
    return candidates[0]


def _multiview(spec: oiio.ImageSpec) -> list[str]:
    value = spec.getattribute("multiView")
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def colorspace_of(spec: oiio.ImageSpec, file_format: str) -> str | None:
    """The OCIO colour space a file's pixels are in, from its header and format.

    EXR (and float TIFF) is scene-linear; its primaries come from the ``chromaticities``
    attribute (Rec.709 when absent).  Integer stills (PNG, JPEG, 8/16-bit TIFF) are
    sRGB-encoded Rec.709.  Anything else falls back to these and ``--colorspace`` decides.
    """
    if file_format == "openexr" or str(spec.format) in ("half", "float", "double"):
        chroma = spec.getattribute("chromaticities")
        if chroma is None:
            return _LINEAR_REC709
        for name, ref in _CHROMATICITIES.items():
            if np.allclose(np.asarray(chroma, dtype=float), ref, atol=2e-3):
                return name
        return None
    return _SRGB


def read_windows(
    path: str, frame: int, *, layer: str | None = None, view: str | None = None
) -> tuple[Window, Window]:
    """The data and display windows :func:`read_plate` would return, from the header alone."""
    with _open(path, frame) as inp:
        specs = [s if not s.deep else oiio.ImageSpec() for s in _parts(inp)]  # deep parts: no channels
        spec = specs[_select_channels(path, specs, layer, view, frame)[0]]
        return (
            Window(spec.x, spec.y, spec.width, spec.height),
            Window(spec.full_x, spec.full_y, spec.full_width, spec.full_height),
        )


def read_plate(
    path: str,
    frame: int,
    *,
    layer: str | None = None,
    view: str | None = None,
    colorspace: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Plate:
    """Read one frame's colour into a :class:`Plate`, keeping windows and header attributes."""
    with _open(path, frame) as inp:
        specs = _parts(inp)
        if not specs:
            raise FrameError(f"{path}: file holds no image", frame)
        if all(s.deep for s in specs):
            raise FrameError(f"{path}: deep EXR is not supported; flatten it first (e.g. Nuke's DeepToImage)", frame)
        specs_flat = [s if not s.deep else oiio.ImageSpec() for s in specs]  # deep parts: no channels
        part, channels = _select_channels(path, specs_flat, layer, view, frame)
        spec = specs[part]
        if spec.width <= 0 or spec.height <= 0:
            raise FrameError(f"{path}: empty data window {spec.width}x{spec.height}", frame)
        if spec.width * spec.height > max_pixels:
            raise FrameError(
                f"{path}: data window {spec.width}x{spec.height} ({spec.width * spec.height / 1e6:.1f} MP) "
                f"exceeds the pixel budget of {max_pixels / 1e6:.1f} MP (raise --max-pixels if it is real)",
                frame,
            )
        chbegin, chend = min(channels), max(channels) + 1
        pixels = inp.read_image(part, 0, chbegin, chend, "float")
        if pixels is None or not isinstance(pixels, np.ndarray) or pixels.size == 0:
            reason = oiio_error(inp).replace(f"EXR Error ({path}): ", "")
            raise FrameError(f"{path}: cannot read pixels: {reason}", frame)
        pixels = pixels.reshape(spec.height, spec.width, chend - chbegin)
        rgb = np.ascontiguousarray(pixels[:, :, [c - chbegin for c in channels]], dtype=np.float32)
        file_format = inp.format_name()
    rgb, nonfinite, clamped = sanitize(rgb)
    warnings = []
    detected = colorspace_of(spec, file_format)
    if colorspace is None and detected is None:
        warnings.append(
            f"{path}: header chromaticities match no known colour space; assuming {_LINEAR_REC709} "
            "(set --colorspace)"
        )
    if nonfinite:
        warnings.append(f"{path}: {nonfinite} NaN/Inf pixel values replaced")
    if clamped:
        warnings.append(f"{path}: {clamped} pixel values beyond ±{HALF_MAX:g} clamped")
    return Plate(
        rgb=rgb,
        data_window=Window(spec.x, spec.y, spec.width, spec.height),
        display_window=Window(spec.full_x, spec.full_y, spec.full_width, spec.full_height),
        path=path,
        frame=frame,
        colorspace=colorspace or detected or _LINEAR_REC709,
        pixel_aspect=float(spec.get_float_attribute("PixelAspectRatio", 1.0)) or 1.0,
        attributes=[
            HeaderAttribute(a.name, str(a.type), a.value)
            for a in spec.extra_attribs
            if a.name not in _NOT_CARRIED and not a.name.startswith("vfxmatte:")
        ],
        fps=_fps_of(spec),
        timecode=_timecode_of(spec),
        nonfinite=nonfinite + clamped,
        warnings=warnings,
    )


def _fps_of(spec: oiio.ImageSpec) -> Fraction | None:
    """The header's ``framesPerSecond`` (a rational), or None when absent or invalid."""
    value = spec.getattribute("FramesPerSecond")
    try:
        fps = Fraction(int(value[0]), int(value[1])) if value is not None else None
    except (TypeError, ValueError, IndexError, ZeroDivisionError):
        return None
    return fps if fps is not None and fps > 0 else None


def _timecode_of(spec: oiio.ImageSpec) -> str | None:
    """The header's ``timeCode`` as ``HH:MM:SS:FF``, or None when absent."""
    value = spec.getattribute("smpte:TimeCode")
    try:
        return timecode_string(value) if value is not None else None
    except (TypeError, ValueError, IndexError):
        return None


def sanitize(rgb: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Replace NaN with 0 and ±Inf / out-of-half-range values with ±65504.

    Returns the cleaned array and the counts of non-finite and clamped values.
    """
    finite = np.isfinite(rgb)
    nonfinite = int(rgb.size - np.count_nonzero(finite))
    if nonfinite:
        rgb = np.nan_to_num(rgb, nan=0.0, posinf=HALF_MAX, neginf=-HALF_MAX)
    clamped = int(np.count_nonzero(np.abs(rgb) > HALF_MAX))
    if clamped:
        rgb = np.clip(rgb, -HALF_MAX, HALF_MAX)
    return rgb.astype(np.float32, copy=False), nonfinite, clamped


def _header_values(path: str, names: list[str]) -> dict[str, object]:
    """Attributes of an existing file's header as OIIO gives them (the file opened once); each is
    None when the file is unreadable or has no such attribute."""
    configure_limits()
    inp = oiio.ImageInput.open(path)
    if inp is None:
        oiio_error()
        return dict.fromkeys(names)
    try:
        spec = inp.spec()
        return {name: spec.getattribute(name) for name in names}
    finally:
        inp.close()


def read_header_attribute(path: str, name: str) -> str | None:
    """One string attribute of an existing file's header, or None when unreadable."""
    value = _header_values(path, [name])[name]
    return value if isinstance(value, str) else None


def remove_stale_temporaries(paths: list[str]) -> list[str]:
    """Delete ``write_exr``'s hidden temp files for ``paths`` left by a killed process; return them.

    A temp file goes when nobody holds its frame's lock (:mod:`vfxmatte.io.locks`): a run
    holds that lock while it mattes and writes the frame, so a temp file of a running writer
    is never touched, however long its write takes.
    """
    by_directory: dict[str, set[str]] = {}
    for path in paths:
        directory, name = os.path.split(os.path.abspath(path))
        by_directory.setdefault(directory, set()).add(name)
    removed: list[str] = []
    for directory, names in by_directory.items():
        try:
            entries = os.listdir(directory)
        except OSError:
            continue
        for entry in entries:
            if not (entry.startswith(".") and entry.endswith(".tmp.exr")):
                continue
            target = entry[1:-len(".tmp.exr")].rsplit(".", 1)[0]  # ".name.exr.<hex>.tmp.exr" → "name.exr"
            stale = os.path.join(directory, entry)
            if target not in names:
                continue
            with contextlib.suppress(OSError), free_lock(os.path.join(directory, target)) as free:
                if free:
                    os.unlink(stale)
                    removed.append(stale)
    return removed


def read_header_numbers(path: str, names: list[str]) -> dict[str, float | None]:
    """Numeric attributes of an existing file's header (e.g. ``vfxmatte:uncertainty``), the file
    opened once; each is None when unreadable, absent or not a number."""
    values = _header_values(path, names)
    return {
        name: float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        for name, value in values.items()
    }


def read_channels(path: str, names: list[str]) -> np.ndarray:
    """Named channels of an image's first part as float32 (H, W, len(names))."""
    with _open(path, None) as inp:
        spec = inp.spec()
        channelnames = list(spec.channelnames)
        missing = [n for n in names if n not in channelnames]
        if missing:
            raise FrameError(f"{path}: no channel(s) {', '.join(missing)} (has {', '.join(channelnames)})")
        pixels = inp.read_image(0, 0, 0, spec.nchannels, "float")
        if pixels is None:
            raise FrameError(f"{path}: cannot read pixels: {oiio_error(inp)}")
        pixels = np.asarray(pixels, dtype=np.float32).reshape(spec.height, spec.width, spec.nchannels)
        return pixels[:, :, [channelnames.index(n) for n in names]]


def write_exr(
    path: str,
    plate: Plate,
    channels: dict[str, np.ndarray],
    attributes: dict[str, str | float | int],
    compression: str = "zip",
) -> None:
    """Write a half-float scanline EXR atomically (temp file beside it, then ``os.replace``).

    ``channels`` maps channel names (``R``, ``A``, ``uncertainty.Y``…) to (H, W) arrays
    of the plate's data window.  The plate's windows, pixel aspect, frame rate, timecode
    and header attributes are kept; ``attributes`` adds string/float/int attributes.
    """
    if compression.lower().startswith("dwa"):
        raise OutputError(f"{path}: DWA compression would quantise the uncertainty layer; use zip or piz")
    dw, disp = plate.data_window, plate.display_window
    names = list(channels)
    arrays = [np.asarray(channels[n], dtype=np.float32) for n in names]
    for name, array in zip(names, arrays, strict=True):
        if array.shape != (dw.height, dw.width):
            size = "x".join(str(d) for d in array.shape[::-1])
            raise OutputError(
                f"{path}: channel {name} is {size}, the data window {dw.width}x{dw.height}"
            )
    data = np.stack(arrays, axis=-1)
    data = np.clip(np.nan_to_num(data, nan=0.0, posinf=HALF_MAX, neginf=-HALF_MAX), -HALF_MAX, HALF_MAX)
    spec = oiio.ImageSpec(dw.width, dw.height, len(names), "half")
    spec.x, spec.y = dw.x, dw.y
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = disp.x, disp.y, disp.width, disp.height
    spec.channelnames = tuple(names)
    if "A" in names:
        spec.alpha_channel = names.index("A")
    for attr in plate.attributes:
        with contextlib.suppress(Exception):  # an attribute OIIO cannot re-type is dropped, not fatal
            spec.attribute(attr.name, oiio.TypeDesc(attr.type), attr.value)
    spec.attribute("PixelAspectRatio", float(plate.pixel_aspect))
    if plate.fps is not None:
        spec.attribute("FramesPerSecond", oiio.TypeDesc("rational2i"), (plate.fps.numerator, plate.fps.denominator))
    if plate.timecode is not None:
        with contextlib.suppress(ValueError):  # a label SMPTE cannot hold (e.g. 120 fps frames) is dropped
            spec.attribute("smpte:TimeCode", oiio.TypeDesc("timecode"), timecode_bcd(plate.timecode))
    for key, value in attributes.items():
        spec.attribute(key, value)
    spec.attribute("compression", compression)
    spec.attribute("openexr:lineOrder", "increasingY")

    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        # Not mkstemp: its 0600 mode would hide the frame from other users; this honours the umask.
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp.exr")
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise OutputError(f"{path}: cannot create the output directory or temporary file: {exc.strerror}") from exc
    try:
        out = oiio.ImageOutput.create("openexr")
        if out is None or not out.open(tmp, spec):
            raise OutputError(f"{path}: cannot write: {_write_failure(directory, oiio_error(out))}")
        ok = out.write_image(data)
        closed = out.close()
        if not ok or not closed:
            raise OutputError(f"{path}: cannot write: {_write_failure(directory, oiio_error(out))}")
        _sync(tmp, directory, path)
        os.replace(tmp, path)
        _sync_directory(directory)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_failure(directory: str, detail: str) -> str:
    """OIIO's reason for a failed write, with the cause a user can act on when the disk is full."""
    with contextlib.suppress(OSError):
        if shutil.disk_usage(directory).free < 1 << 20:
            return f"no space left on the device ({detail or 'write failed'})"
    return detail or "write failed"


def _sync(tmp: str, directory: str, path: str) -> None:
    """Flush the finished temp file to disk before it takes the final name (power loss, NFS)."""
    try:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        reason = "no space left on the device" if exc.errno == errno.ENOSPC else exc.strerror
        raise OutputError(f"{path}: cannot write: {reason}") from exc


def _sync_directory(directory: str) -> None:
    """Make the rename itself durable; a filesystem that cannot sync a directory is left as it is."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def timecode_bcd(timecode: str) -> tuple[int, int]:
    """``"HH:MM:SS:FF"`` → the SMPTE 12M packed-BCD pair OpenEXR stores (time, user bits).

    A ``;`` (or ``.``/``,``) before the frames marks drop-frame and sets the drop-frame
    bit.  A label SMPTE 12M cannot hold (frames ≥ 40, minutes ≥ 60…) raises ValueError.
    """
    fields = re.split(r"[:;.,]", timecode.strip())
    if len(fields) != 4 or not all(f.isdigit() for f in fields):
        raise ValueError(f"timecode {timecode!r} is not HH:MM:SS:FF")
    hh, mm, ss, ff = (int(f) for f in fields)
    if hh > 23 or mm > 59 or ss > 59 or ff > 39:
        raise ValueError(f"timecode {timecode!r} is out of SMPTE range")

    def bcd(v: int) -> int:
        return ((v // 10) << 4) | (v % 10)

    drop = 0x40 if timecode.strip()[-len(fields[3]) - 1] != ":" else 0
    return (bcd(ff) | drop | bcd(ss) << 8 | bcd(mm) << 16 | bcd(hh) << 24, 0)


def timecode_string(value: tuple[int, int] | list[int]) -> str:
    """Inverse of :func:`timecode_bcd` (``;`` before the frames when drop-frame; colour-frame ignored)."""
    packed = int(value[0])

    def unbcd(v: int) -> int:
        return (v >> 4) * 10 + (v & 0xF)

    sep = ";" if packed & 0x40 else ":"
    return (
        f"{unbcd((packed >> 24) & 0x3F):02d}:{unbcd((packed >> 16) & 0x7F):02d}:"
        f"{unbcd((packed >> 8) & 0x7F):02d}{sep}{unbcd(packed & 0x3F):02d}"
    )
