"""Mutation fuzzing of the readers: seeded file mutators and a sandboxed runner.

:func:`mutate` damages a file's bytes deterministically from an integer seed: generic
mutations (bit flips, "interesting" integers at random and header offsets, truncation,
chunk duplication and deletion) and format-aware ones (EXR header attribute values and
sizes, offset tables and chunk headers; MP4/MOV atom sizes and table fields; PNG header
fields with the CRC fixed so the decoder gets past it).

:class:`Worker` feeds files to the product's own readers (the ones ``vfxmatte matte`` and
``vfxmatte info`` call) in a subprocess with an address-space cap, killing it when a case
makes no progress within the timeout.  Each case ends as ``ok``, ``error`` (a
:class:`~vfxmatte.errors.VfxmatteError` with a one-line message naming the file — what
the CLI prints), ``crash`` (killed by a signal, any other exception, or an unclean
message), ``hang`` or ``memory``.  :func:`fuzz` runs many cases and keeps the mutated
file of every non-clean one, named by its seed, so it can be reproduced.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

FINDINGS = ("crash", "hang", "memory")
OUTCOMES = ("ok", "error", *FINDINGS)
MOVIE_SUFFIXES = (".mov", ".mp4", ".m4v", ".mkv", ".webm", ".mxf", ".avi")

_I8 = (0x00, 0x01, 0x7F, 0x80, 0xFF)
_I16 = (0x0000, 0x0001, 0x7FFF, 0x8000, 0xFFFF)
_I32 = (0x00000000, 0x00000001, 0x0000FFFF, 0x00010000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)
_I64 = (0, 1, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 0xFFFFFFFFFFFFFFFF)
_FLOATS = (0.0, -1.0, 1e-45, 3.4e38, float("inf"), float("-inf"), float("nan"))
_EXR_MAGIC = b"\x76\x2f\x31\x01"
_EXR_TARGETS = ("dataWindow", "displayWindow", "chunkCount", "tiles", "channels", "compression", "lineOrder",
                "type", "pixelAspectRatio")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Atoms holding child atoms, with the bytes to skip before the first child.
_MP4_CONTAINERS = {b"moov": 0, b"trak": 0, b"mdia": 0, b"minf": 0, b"stbl": 0, b"edts": 0, b"dinf": 0,
                   b"udta": 0, b"mvex": 0, b"moof": 0, b"traf": 0, b"tref": 0, b"meta": 4, b"stsd": 8,
                   b"avc1": 78, b"hvc1": 78, b"hev1": 78, b"mp4v": 78, b"vp09": 78, b"av01": 78,
                   b"mp4a": 28}


def kind_of(path: str | os.PathLike[str]) -> str:
    """``exr``, ``movie`` or ``still``: which mutators and which reader a file gets."""
    suffix = Path(path).suffix.lower()
    return "exr" if suffix == ".exr" else "movie" if suffix in MOVIE_SUFFIXES else "still"


# --- mutators -----------------------------------------------------------------------------------------

Mutator = Callable[[random.Random, bytearray], str]
Order = Literal["little", "big"]


def _interesting(rng: random.Random, width: int) -> int:
    table = {1: _I8, 2: _I16, 4: _I32, 8: _I64}[width]
    return rng.choice(table)


def _put(buf: bytearray, offset: int, value: int, width: int, order: Order) -> None:
    end = min(len(buf), offset + width)
    buf[offset:end] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, order)[: end - offset]


def _nudge(rng: random.Random, value: int) -> int:
    """A value near or related to ``value``: off by one, doubled, negated, or plain interesting."""
    return rng.choice([value + 1, value - 1, value * 2, -value, value + 0x10000, value ^ 0x80000000,
                       rng.choice(_I32)])


def bit_flip(rng: random.Random, buf: bytearray) -> str:
    flips = [(rng.randrange(len(buf)), rng.randrange(8)) for _ in range(rng.randint(1, 8))]
    for offset, bit in flips:
        buf[offset] ^= 1 << bit
    return "bitflip " + ",".join(f"{o}.{b}" for o, b in flips)


def _overwrite_at(rng: random.Random, buf: bytearray, limit: int, what: str) -> str:
    width = rng.choice((1, 2, 4, 8))
    offset = rng.randrange(max(1, min(len(buf), limit)))
    order: Order = rng.choice(("little", "big"))
    value = _interesting(rng, width)
    _put(buf, offset, value, width, order)
    return f"{what} @{offset} {width}B {order[0]}e={value:#x}"


def overwrite_random(rng: random.Random, buf: bytearray) -> str:
    return _overwrite_at(rng, buf, len(buf), "overwrite")


def overwrite_header(rng: random.Random, buf: bytearray) -> str:
    limit = _exr_header_end(bytes(buf)) if buf.startswith(_EXR_MAGIC) else 0
    return _overwrite_at(rng, buf, limit or 1024, "overwrite-header")  # DPX's header alone is 2048 bytes


def truncate(rng: random.Random, buf: bytearray) -> str:
    cut = rng.randrange(len(buf))
    del buf[cut:]
    return f"truncate @{cut}"


def _span(rng: random.Random, buf: bytearray) -> tuple[int, int]:
    start = rng.randrange(len(buf))
    return start, min(len(buf), start + rng.randint(1, min(4096, len(buf))))


def duplicate_chunk(rng: random.Random, buf: bytearray) -> str:
    start, end = _span(rng, buf)
    at = rng.randrange(len(buf) + 1)
    buf[at:at] = buf[start:end]
    return f"duplicate [{start}:{end}] @{at}"


def delete_chunk(rng: random.Random, buf: bytearray) -> str:
    start, end = _span(rng, buf)
    del buf[start:end]
    return f"delete [{start}:{end}]"


@dataclass(frozen=True)
class _ExrAttr:
    name: str
    type: str
    size_at: int  # offset of the int32 size; the value follows it
    size: int


def _exr_header(data: bytes) -> tuple[list[_ExrAttr], int]:
    """The attributes of every part's header and the offset just past the headers (0: not EXR)."""
    if len(data) < 9 or not data.startswith(_EXR_MAGIC):
        return [], 0
    multipart = bool(int.from_bytes(data[4:8], "little") & 0x1000)
    attrs: list[_ExrAttr] = []
    pos = 8
    while pos < len(data):
        if data[pos] == 0:  # end of one header; a multi-part file ends its list with an empty one
            pos += 1
            if not multipart or (pos < len(data) and data[pos] == 0):
                return attrs, pos + (1 if multipart else 0)
            continue
        name_end = data.find(b"\0", pos, pos + 256)
        type_end = data.find(b"\0", name_end + 1, name_end + 257) if name_end >= 0 else -1
        if type_end < 0 or type_end + 5 > len(data):
            break
        size = int.from_bytes(data[type_end + 1 : type_end + 5], "little", signed=True)
        if size < 0 or type_end + 5 + size > len(data):
            break
        attrs.append(_ExrAttr(data[pos:name_end].decode("latin-1"), data[name_end + 1 : type_end].decode("latin-1"),
                              type_end + 1, size))
        pos = type_end + 5 + size
    return attrs, pos


def _exr_header_end(data: bytes) -> int:
    return _exr_header(data)[1]


def _exr_offsets(data: bytes, start: int) -> list[int]:
    """Positions of the offset-table entries: the run of uint64s after the header that point into the file."""
    entries: list[int] = []
    pos = start
    while pos + 8 <= len(data) and len(entries) < 1_000_000:
        value = int.from_bytes(data[pos : pos + 8], "little")
        if not start < value < len(data):
            break
        entries.append(pos)
        pos += 8
    return entries


def exr_attribute(rng: random.Random, buf: bytearray) -> str:
    """Change one header attribute's value (windows, chunk count, tile size, channel list…) or size."""
    attrs, _ = _exr_header(bytes(buf))
    if not attrs:
        return overwrite_header(rng, buf)
    targeted = [a for a in attrs if a.name in _EXR_TARGETS]
    attr = rng.choice(targeted if targeted and rng.random() < 0.85 else attrs)
    value_at = attr.size_at + 4
    if rng.random() < 0.15:
        old = attr.size
        new = _nudge(rng, old)
        _put(buf, attr.size_at, new, 4, "little")
        return f"exr {attr.name} size {old}->{new & 0xFFFFFFFF:#x}"
    if attr.type in ("float", "v2f", "box2f", "chromaticities", "v3f") and attr.size >= 4:
        slot = rng.randrange(attr.size // 4)
        value = rng.choice(_FLOATS)
        buf[value_at + 4 * slot : value_at + 4 * slot + 4] = struct.pack("<f", value)
        return f"exr {attr.name}[{slot}]={value}"
    if attr.type == "chlist" and attr.size > 17:
        # name\0, then int32 pixel type, uint8 pLinear + 3 reserved, int32 xSampling, int32 ySampling.
        ends = [i for i in range(value_at, value_at + attr.size - 1) if buf[i] == 0]
        end = rng.choice(ends) if ends else value_at
        field_at, label = rng.choice([(1, "pixelType"), (9, "xSampling"), (13, "ySampling")])
        new = rng.choice([0, 1, 2, 3, 3, -1, 0x7FFFFFFF, 0x80000000])
        _put(buf, end + field_at, new, 4, "little")
        return f"exr channels @{end + field_at - value_at} {label}={new & 0xFFFFFFFF:#x}"
    if attr.size >= 4 and attr.type not in ("string", "stringvector", "text"):
        slot = rng.randrange(attr.size // 4)
        at = value_at + 4 * slot
        new = _nudge(rng, int.from_bytes(buf[at : at + 4], "little", signed=True))
        _put(buf, at, new, 4, "little")
        return f"exr {attr.name}[{slot}]={new & 0xFFFFFFFF:#x}"
    if attr.size >= 1:
        at = value_at + rng.randrange(attr.size)
        buf[at] = rng.randrange(256)
        return f"exr {attr.name} byte {at - value_at}={buf[at]:#x}"
    return overwrite_header(rng, buf)


def exr_offset_table(rng: random.Random, buf: bytearray) -> str:
    """Point one chunk offset elsewhere, or change the header of the chunk it points to."""
    entries = _exr_offsets(bytes(buf), _exr_header_end(bytes(buf)))
    if not entries:
        return overwrite_header(rng, buf)
    entry = rng.choice(entries)
    if rng.random() < 0.5:
        new = rng.choice([*_I64, len(buf), len(buf) - 1, int.from_bytes(buf[rng.choice(entries):][:8], "little")])
        _put(buf, entry, new, 8, "little")
        return f"exr offset[{(entry - entries[0]) // 8}]={new:#x}"
    chunk = int.from_bytes(buf[entry : entry + 8], "little")
    slot = rng.randrange(6)  # part number / y / tile coordinates / data size: the first int32s of a chunk
    if chunk + 4 * slot + 4 > len(buf):
        return truncate(rng, buf)
    old = int.from_bytes(buf[chunk + 4 * slot : chunk + 4 * slot + 4], "little", signed=True)
    new = _nudge(rng, old)
    _put(buf, chunk + 4 * slot, new, 4, "little")
    return f"exr chunk[{(entry - entries[0]) // 8}] word {slot} {old}->{new & 0xFFFFFFFF:#x}"


@dataclass(frozen=True)
class _Atom:
    path: str
    at: int
    size: int
    header: int


def _mp4_atoms(data: bytes, start: int, end: int, parent: str = "", depth: int = 0) -> list[_Atom]:
    atoms: list[_Atom] = []
    pos = start
    while pos + 8 <= end and len(atoms) < 5000:
        size, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        header = 8
        if size == 1 and pos + 16 <= end:
            size, header = int.from_bytes(data[pos + 8 : pos + 16], "big"), 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            break
        path = f"{parent}/{kind.decode('latin-1')}"
        atoms.append(_Atom(path, pos, size, header))
        skip = _MP4_CONTAINERS.get(kind)
        if skip is not None and depth < 12:
            atoms += _mp4_atoms(data, pos + header + skip, pos + size, path, depth + 1)
        pos += size
    return atoms


def mp4_atom(rng: random.Random, buf: bytearray) -> str:
    """Change an atom's size, or a 32-bit field near the start of its payload (counts, sizes, scales)."""
    atoms = _mp4_atoms(bytes(buf), 0, len(buf))
    if not atoms:
        return overwrite_header(rng, buf)
    atom = rng.choice(atoms)
    if rng.random() < 0.5 or atom.size - atom.header < 4:
        new = rng.choice([_nudge(rng, atom.size), 0, 1, 7, 8, atom.size + 8, atom.size - 8, len(buf)])
        _put(buf, atom.at, new, 4, "big")
        return f"mp4 {atom.path} size {atom.size}->{new & 0xFFFFFFFF:#x}"
    slot = rng.randrange(min(8, (atom.size - atom.header) // 4))
    at = atom.at + atom.header + 4 * slot
    new = _nudge(rng, int.from_bytes(buf[at : at + 4], "big", signed=True))
    _put(buf, at, new, 4, "big")
    return f"mp4 {atom.path} word {slot}={new & 0xFFFFFFFF:#x}"


def png_chunk(rng: random.Random, buf: bytearray) -> str:
    """Change IHDR fields or a chunk's length, fixing the CRC so libpng acts on the new value."""
    chunks = []
    pos = len(_PNG_MAGIC)
    while buf.startswith(_PNG_MAGIC) and pos + 12 <= len(buf):
        length = int.from_bytes(buf[pos : pos + 4], "big")
        chunks.append((pos, length, bytes(buf[pos + 4 : pos + 8])))
        pos += 12 + length
    if not chunks:
        return overwrite_header(rng, buf)
    pos, length, kind = rng.choice(chunks)
    if kind == b"IHDR" and length == 13 and rng.random() < 0.7:
        field_at, width = rng.choice([(0, 4), (4, 4), (8, 1), (9, 1), (10, 1), (11, 1), (12, 1)])
        value = _interesting(rng, width) if rng.random() < 0.6 else rng.randrange(1 << (8 * width))
        _put(buf, pos + 8 + field_at, value, width, "big")
        what = f"png IHDR +{field_at}={value:#x}"
    elif rng.random() < 0.5:
        new = _nudge(rng, length)
        _put(buf, pos, new, 4, "big")
        return f"png {kind.decode('latin-1')}@{pos} length {length}->{new & 0xFFFFFFFF:#x}"
    elif length:
        at = pos + 8 + rng.randrange(min(length, len(buf) - pos - 8) or 1)
        buf[at] ^= 1 << rng.randrange(8)
        what = f"png {kind.decode('latin-1')}@{pos} bitflip @{at}"
    else:
        return overwrite_header(rng, buf)
    if pos + 12 + length <= len(buf):
        crc = zlib.crc32(bytes(buf[pos + 4 : pos + 8 + length]))
        buf[pos + 8 + length : pos + 12 + length] = crc.to_bytes(4, "big")
    return what


_GENERIC: list[tuple[Mutator, int]] = [
    (bit_flip, 3), (overwrite_random, 2), (overwrite_header, 3), (truncate, 2), (duplicate_chunk, 1),
    (delete_chunk, 1),
]
_TARGETED: dict[str, list[tuple[Mutator, int]]] = {
    "exr": [(exr_attribute, 6), (exr_offset_table, 3)],
    "mp4": [(mp4_atom, 8)],
    "png": [(png_chunk, 6)],
}


def _family(kind: str, data: bytes) -> str:
    if kind == "exr":
        return "exr"
    if data.startswith(_PNG_MAGIC):
        return "png"
    return "mp4" if data[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip") else "other"


def mutate(data: bytes, seed: int, kind: str = "still") -> tuple[bytes, list[str]]:
    """A damaged copy of ``data`` and what was done to it; the same seed always gives the same bytes."""
    rng = random.Random(seed)
    buf = bytearray(data)
    mutators = _GENERIC + _TARGETED.get(_family(kind, data), [])
    count = rng.choices((1, 2, 3, 4), weights=(6, 3, 1, 1))[0]
    done = []
    for _ in range(count):
        if not buf:
            buf += bytes([rng.choice(_I8)]) * rng.randint(1, 64)
            done.append(f"fill {len(buf)}")
            continue
        mutator = rng.choices([m for m, _ in mutators], weights=[w for _, w in mutators])[0]
        done.append(mutator(rng, buf))
    return bytes(buf), done


# Seeds made from a real picture for what ../shared/data lacks: other EXR codecs (DWA, B44, HTJ2K…),
# the still formats a drop folder takes (vfxmatte.io.discover: TIFF, DPX, JPEG) and the intra-frame
# movie codecs of VFX work (ProRes 4444, PNG, MJPEG, FFV1).
DERIVED = {"dwaa.exr": ("half", "dwaa", 0), "dwab.exr": ("half", "dwab", 0), "b44a.exr": ("half", "b44a", 0),
           "rle.exr": ("half", "rle", 0), "pxr24-float.exr": ("float", "pxr24", 0),
           "zip-tiled.exr": ("half", "zip", 32), "htj2k.exr": ("half", "htj2k", 0),
           "lzw16.tif": ("uint16", "lzw", 0), "10bit.dpx": ("uint10", "", 0), "q90.jpg": ("uint8", "jpeg:90", 0)}
DERIVED_MOVIES = {"prores4444.mov": ("prores_ks", "yuva444p10le", {"profile": "4"}),
                  "png.mov": ("png", "rgb24", {}), "mjpeg.mov": ("mjpeg", "yuvj420p", {}),
                  "ffv1.mkv": ("ffv1", "yuv420p", {})}


def derive_seeds(picture: str | os.PathLike[str], folder: str | os.PathLike[str],
                 names: Iterable[str] = (*DERIVED, *DERIVED_MOVIES), size: tuple[int, int] = (96, 64)) -> list[Path]:
    """Write a centre crop of ``picture`` in each encoding named (movies: 4 frames panning); return the files."""
    import av
    import numpy as np
    import OpenImageIO as oiio

    source = oiio.ImageBuf(os.fspath(picture))
    spec = source.spec()
    x, y = max(0, (spec.width - size[0]) // 2), max(0, (spec.height - size[1]) // 2)
    Path(folder).mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        target = Path(folder) / name
        crops = [oiio.ImageBufAlgo.cut(source, oiio.ROI(x + 4 * i, x + 4 * i + size[0], y, y + size[1], 0, 1, 0,
                                                         min(3, spec.nchannels))) for i in range(4)]
        if name in DERIVED_MOVIES:
            codec, pix_fmt, options = DERIVED_MOVIES[name]
            with av.open(str(target), "w") as out:
                stream = out.add_stream(codec, rate=24, options=options)
                stream.width, stream.height, stream.pix_fmt = size[0], size[1], pix_fmt
                for crop in crops:
                    rgb = np.ascontiguousarray(np.asarray(crop.get_pixels("uint8"))[:, :, :3])
                    out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
                out.mux(stream.encode())
            written.append(target)
            continue
        pixel_format, compression, tile = DERIVED[name]
        crop = crops[0]
        if compression:
            crop.specmod().attribute("compression", compression)
        crop.set_write_format(pixel_format)
        crop.set_write_tiles(tile, tile)
        if not crop.write(str(target)):
            raise RuntimeError(f"{target}: {crop.geterror()}")
        written.append(target)
    return written


# --- targets: what the product does with an input --------------------------------------------------------

Beat = Callable[[], None]


class InvalidResult(AssertionError):
    """A reader returned without error but with a malformed plate."""


def _check_plate(plate: Any) -> None:
    import numpy as np

    dw = plate.data_window
    if plate.rgb.shape != (dw.height, dw.width, 3) or plate.rgb.dtype != np.float32:
        raise InvalidResult(f"plate {plate.rgb.shape} {plate.rgb.dtype} for data window {dw.width}x{dw.height}")
    if not np.isfinite(plate.rgb).all():
        raise InvalidResult("plate holds non-finite values")


def read_still(path: str, beat: Beat) -> None:
    """``vfxmatte info`` (describe) and ``vfxmatte matte`` (read_windows, then read_plate with the CLI budget)."""
    from vfxmatte.errors import VfxmatteError
    from vfxmatte.io.exr import DEFAULT_MAX_PIXELS, describe, read_plate, read_windows

    first: VfxmatteError | None = None
    for stage in (lambda: describe(path), lambda: read_windows(path, 1),
                  lambda: _check_plate(read_plate(path, 1, max_pixels=DEFAULT_MAX_PIXELS))):
        try:
            stage()
        except VfxmatteError as exc:
            first = first or exc
        beat()
    if first is not None:
        raise first


def read_movie(path: str, beat: Beat) -> None:
    """``vfxmatte info`` / ``matte`` on a movie: probe it, then decode every frame (one beat per frame)."""
    from vfxmatte.io.movie import probe_movie
    from vfxmatte.io.movie import read_movie as frames

    info = probe_movie(path)
    if info.declared_frames is not None and info.declared_frames > os.path.getsize(path):
        # Callers list every declared frame number (pipeline.open_shot, discover.is_complete).
        raise InvalidResult(f"{info.declared_frames} frames declared in {os.path.getsize(path)} bytes")
    beat()
    for plate in frames(path):
        _check_plate(plate)
        beat()


def read_any(path: str, beat: Beat) -> None:
    (read_movie if kind_of(path) == "movie" else read_still)(path, beat)


# --- the worker ---------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    """How one input fared in the worker."""

    outcome: str
    message: str = ""
    error_type: str = ""
    clean: bool = False  # the error was a one-line message naming the file
    seconds: float = 0.0
    beats: int = 0
    peak_rss_mb: float = 0.0
    stderr: str = ""
    note: str = ""  # what a second run without the address-space cap showed


# Resource exhaustion the readers wrap as a clean error: ENOMEM, and EAGAIN from a thread that could not start.
_EXHAUSTED = ("Cannot allocate memory", "Resource temporarily unavailable", "bad_alloc")


def _memory_in_chain(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, MemoryError):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def classify(exc: BaseException, path: str) -> tuple[str, str]:
    """(outcome, why) for an exception a target raised on ``path``."""
    from vfxmatte.errors import VfxmatteError

    if not isinstance(exc, VfxmatteError):
        if _memory_in_chain(exc):
            return "memory", f"{type(exc).__name__}: {exc}"
        tb = traceback.extract_tb(exc.__traceback__)[-3:]
        where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(tb))
        return "crash", f"uncaught {type(exc).__name__}: {exc!s:.300} at {where}"
    message = str(exc)
    if "\n" in message or "\r" in message:
        return "crash", f"multi-line message: {message[:300]!r}"
    if not message.isprintable():  # damaged headers' bytes could carry terminal escape sequences
        return "crash", f"unprintable characters in the message: {message[:300]!r}"
    if path not in message:
        return "crash", f"message does not name the file: {message[:300]!r}"
    if _memory_in_chain(exc) or any(s in message for s in _EXHAUSTED):
        return "memory", message  # Worker.run tells the cap's doing from an error code that reads the same
    return "error", message


def _rss_mb(pid: int) -> float:
    """A process's resident memory now (0 where /proc is unavailable)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return int(next(x for x in status if x.startswith("VmRSS:")).split()[1]) / 1024
    except (OSError, StopIteration, ValueError):
        return 0.0


def _peak_rss_mb() -> float:
    """This process's peak resident memory; VmHWM, as ru_maxrss keeps the parent's from before exec."""
    try:
        with open("/proc/self/status") as status:
            line = next(x for x in status if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration, ValueError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker_main(target_name: str, memory_mb: int) -> None:
    """Loop: read a path per line on stdin, run the target, answer with JSON lines (beats, then a result)."""
    import faulthandler
    import importlib
    import resource

    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # C libraries that print to stdout must not garble the protocol
    faulthandler.enable()
    if memory_mb > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    module, _, name = target_name.rpartition(":")
    target: Callable[[str, Beat], None] = getattr(importlib.import_module(module or "vfxmatte.fuzz"), name)
    if not module:
        import vfxmatte.io.exr
        import vfxmatte.io.movie  # noqa: F401  (imported before the first case so it is not timed)

    def send(record: dict[str, Any]) -> None:
        proto.write(json.dumps(record) + "\n")

    send({"ready": True})
    for line in sys.stdin:
        path = line.rstrip("\n")
        started = time.monotonic()
        beats = 0

        def beat() -> None:
            nonlocal beats
            beats += 1
            send({"beat": beats})

        outcome, message, error_type, clean = "ok", "", "", False
        try:
            target(path, beat)
        except Exception as exc:  # every exception is a finding or a clean error; SystemExit ends the worker
            outcome, message = classify(exc, path)
            error_type = type(exc).__name__
            clean = outcome in ("error", "memory") and message == str(exc)  # one line naming the file
        rss = _peak_rss_mb()
        send({"outcome": outcome, "message": message, "error_type": error_type, "clean": clean, "beats": beats,
              "seconds": time.monotonic() - started, "peak_rss_mb": rss})


class _OverMemory(Exception):
    """The worker's resident memory went over the watchdog's limit."""


class Worker:
    """A subprocess running one target under a memory cap; restarted after a crash or a hang.

    ``timeout`` is the longest a case may go without progress (a still is one frame; a movie
    beats once per decoded frame); ``case_timeout`` bounds a whole case.
    """

    def __init__(self, target: str = "read_any", *, timeout: float = 10.0, case_timeout: float | None = None,
                 memory_mb: int = 3072, rss_limit_mb: float | None = None,
                 log_dir: str | os.PathLike[str] | None = None) -> None:
        self.target, self.timeout, self.memory_mb, self.rss_limit_mb = target, timeout, memory_mb, rss_limit_mb
        self.case_timeout = case_timeout if case_timeout is not None else 30 * timeout
        self._log_dir = Path(log_dir) if log_dir is not None else Path(tempfile.gettempdir())
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._buffer = b""
        self.restarts = 0

    def _start(self) -> subprocess.Popen[bytes]:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        self._stderr = tempfile.TemporaryFile(dir=self._log_dir)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), MALLOC_ARENA_MAX="2",
                   OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONFAULTHANDLER="1")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "vfxmatte.fuzz", self.target, str(self.memory_mb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env,
        )
        self._buffer = b""
        ready = self._read(time.monotonic() + 120)
        if not ready or not ready.get("ready"):
            tail = self._stderr_tail(0)
            self.close()
            raise RuntimeError(f"fuzz worker did not start: {tail}")
        return self._proc

    def _read(self, deadline: float) -> dict[str, Any] | None:
        """The next protocol record, None on timeout; EOFError when the worker died."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if not select.select([fd], [], [], min(remaining, 0.05) if self.rss_limit_mb else remaining)[0]:
                if self.rss_limit_mb and _rss_mb(self._proc.pid) > self.rss_limit_mb:
                    raise _OverMemory
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        record: dict[str, Any] = json.loads(line)
        return record

    def _stderr_tail(self, since: int, limit: int = 4000) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(max(since, self._stderr.seek(0, os.SEEK_END) - limit))
        return self._stderr.read().decode("utf-8", "replace").strip()

    def run(self, path: str) -> Outcome:
        """Read ``path`` in the worker and say how it went.

        An exhaustion-like clean error (ENOMEM, EAGAIN) is run again in a worker without the
        address-space cap, watched for resident memory instead: the same error again, with
        memory under the cap, is the library's error code (FFmpeg returns ENOMEM for some
        damaged atoms), so the case counts as a clean error.
        """
        result = self._attempt(path)
        if result.outcome == "memory" and result.clean and self.memory_mb > 0:
            with Worker(self.target, timeout=self.timeout, case_timeout=self.case_timeout, memory_mb=0,
                        rss_limit_mb=self.memory_mb, log_dir=self._log_dir) as uncapped:
                again = uncapped._attempt(path)
            if (again.outcome, again.message) == (result.outcome, result.message):
                result.outcome = "error"
                result.note = (f"same error without the address-space cap, peak RSS {again.peak_rss_mb:.0f} MB: "
                               "the library's error code, not exhaustion")
            else:
                what = again.outcome if again.message == result.message else f"{again.outcome} ({again.message})"
                result.note = f"without the address-space cap: {what}, peak RSS {again.peak_rss_mb:.0f} MB"
        return result

    def _attempt(self, path: str) -> Outcome:
        proc = self._proc if self._proc is not None and self._proc.poll() is None else self._start()
        assert proc.stdin is not None and self._stderr is not None
        log_at = self._stderr.seek(0, os.SEEK_END)
        started = time.monotonic()
        beats = 0
        try:
            proc.stdin.write(path.encode() + b"\n")
            proc.stdin.flush()
            while True:
                deadline = min(time.monotonic() + self.timeout, started + self.case_timeout)
                record = self._read(deadline)
                if record is None:
                    elapsed = time.monotonic() - started
                    self.close()
                    self.restarts += 1
                    why = "the whole case" if elapsed >= self.case_timeout else "one frame"
                    return Outcome("hang", f"no result after {elapsed:.1f} s ({why} over its limit; "
                                           f"{beats} frame(s) done)", seconds=elapsed, beats=beats)
                if "beat" in record:
                    beats = int(record["beat"])
                    continue
                return Outcome(**record)
        except (EOFError, BrokenPipeError):
            code = proc.wait()
            elapsed = time.monotonic() - started
            tail = self._stderr_tail(log_at)
            self.close()
            self.restarts += 1
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
            memory = any(s in tail for s in (*_EXHAUSTED, "MemoryError", "out of memory"))
            return Outcome("memory" if memory else "crash", f"worker {how}", seconds=elapsed, beats=beats,
                           stderr=tail)
        except _OverMemory:
            elapsed = time.monotonic() - started
            self.close()
            self.restarts += 1
            return Outcome("memory", f"resident memory over {self.rss_limit_mb:.0f} MB", seconds=elapsed,
                           beats=beats, peak_rss_mb=float(self.rss_limit_mb or 0))

    def close(self) -> None:
        """Stop the worker (kill it if it is busy)."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            for stream in (self._proc.stdin, self._proc.stdout):
                if stream is not None:
                    stream.close()
            self._proc = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- a run --------------------------------------------------------------------------------------------------

@dataclass
class Case:
    """One mutated input and how the reader fared on it."""

    index: int
    source: str
    kind: str
    seed: int | None  # None: the source itself, unmutated
    mutations: list[str]
    size: int
    result: Outcome = field(default_factory=lambda: Outcome("ok"))
    kept: str | None = None

    def record(self) -> dict[str, Any]:
        return asdict(self)


def case_seed(run_seed: int, index: int) -> int:
    """The mutation seed of case ``index`` of a run: readable back (run 7, case 123 → 7000123)."""
    return run_seed * 1_000_000 + index


def fuzz(
    sources: Iterable[str | os.PathLike[str]],
    cases: int,
    out: str | os.PathLike[str],
    *,
    seed: int = 0,
    originals: bool = False,
    worker: Worker | None = None,
    on_case: Callable[[Case], None] | None = None,
) -> list[Case]:
    """Run ``cases`` mutated inputs (sources taken in turn) and keep every non-clean one under ``out``.

    A kept case is ``out/findings/<outcome>-<seed>-<name>`` plus a ``.json`` with the
    source, seed, mutations and what happened; ``mutate(source bytes, seed, kind)``
    rebuilds the same file.  With ``originals``, each source is first run unmutated.
    """
    paths = [os.fspath(s) for s in sources]
    if not paths:
        raise ValueError("no sources to fuzz")
    out_dir = Path(out)
    scratch = out_dir / "scratch"
    findings = out_dir / "findings"
    scratch.mkdir(parents=True, exist_ok=True)
    plan: list[tuple[str, int | None]] = [(p, None) for p in paths] if originals else []
    plan += [(paths[i % len(paths)], case_seed(seed, i)) for i in range(cases)]
    own = worker is None
    runner = worker or Worker(log_dir=scratch)
    done: list[Case] = []
    try:
        for index, (source, mutation_seed) in enumerate(plan):
            kind = kind_of(source)
            original = Path(source).read_bytes()
            data, mutations = (original, []) if mutation_seed is None else mutate(original, mutation_seed, kind)
            name = f"{mutation_seed if mutation_seed is not None else 'orig'}-{Path(source).name}"
            target = scratch / name
            target.write_bytes(data)
            case = Case(index, source, kind, mutation_seed, mutations, len(data))
            case.result = runner.run(str(target))
            if case.result.outcome in FINDINGS:
                findings.mkdir(parents=True, exist_ok=True)
                kept = findings / f"{case.result.outcome}-{name}"
                os.replace(target, kept)
                case.kept = str(kept)
                kept.with_name(kept.name + ".json").write_text(json.dumps(case.record(), indent=2))
            else:
                target.unlink()
            done.append(case)
            if on_case is not None:
                on_case(case)
    finally:
        if own:
            runner.close()
    return done


if __name__ == "__main__":
    _worker_main(sys.argv[1], int(sys.argv[2]))
