"""`vfxmatte info`: what an input holds, without matting it."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from vfxmatte.errors import FrameError, InputError
from vfxmatte.io.exr import describe
from vfxmatte.io.sequence import FrameSequence, format_ranges, gaps


def describe_input(path: str) -> dict[str, Any]:
    """Frames, gaps, resolution, windows and channels of a sequence, image or movie."""
    from vfxmatte.io.movie import is_movie, probe_movie

    if is_movie(path):
        info = probe_movie(path)
        record = {k: (str(v) if v is not None and k == "fps" else v) for k, v in asdict(info).items()}
        record["kind"] = "movie"
        return record
    sequence = FrameSequence.parse(path)
    frames = sequence.frames_on_disk()
    if not frames:
        raise InputError(f"{path}: {'file does not exist' if sequence.is_single else 'no frames match the pattern'}")
    try:
        first = describe(sequence.path(frames[0]))
    except FrameError as exc:  # for `info`, an unreadable file is an unreadable input
        raise InputError(str(exc)) from exc
    return {
        "kind": "image" if sequence.is_single else "sequence",
        "pattern": sequence.pattern,
        "frames": format_ranges(frames),
        "count": len(frames),
        "gaps": [f"{a}-{b}" if a != b else str(a) for a, b in gaps(frames)],
        "format": first.format,
        "parts": first.parts,
    }
