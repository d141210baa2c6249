"""Find shots in a drop folder: every frame sequence and every movie, and whether its output is complete."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from vfxmatte.io.sequence import FrameSequence, output_sequence, sequence_stem

_FRAME_FILE = re.compile(r"^(?P<head>.*?[._])(?P<digits>\d+)(?P<tail>\.(?:exr|dpx|tif|tiff|png|jpg|jpeg))$", re.I)
MOVIE_SUFFIXES = (".mov", ".mp4", ".mkv", ".webm")


@dataclass(frozen=True)
class FoundShot:
    name: str  # a stable, filesystem-safe name: the sequence or movie stem, with its folder
    input: str  # a ``####`` pattern or a movie path
    frames: tuple[int, ...]  # frames on disk (empty for a movie: decoded, not listed)


def find_shots(drop: str | os.PathLike[str]) -> list[FoundShot]:
    """Every image sequence (a run of numbered files) and movie under ``drop``, hidden entries skipped."""
    found: list[FoundShot] = []
    root = Path(drop)
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        groups: dict[tuple[str, str, int], list[int]] = {}
        for name in sorted(names):
            if name.startswith("."):
                continue
            if name.lower().endswith(MOVIE_SUFFIXES):
                path = Path(directory) / name
                found.append(FoundShot(_shot_name(root, path.parent, path.stem), str(path), ()))
                continue
            m = _FRAME_FILE.match(name)
            if m:
                groups.setdefault((m["head"], m["tail"], len(m["digits"])), []).append(int(m["digits"]))
        for (head, tail, padding), frames in sorted(groups.items()):
            sequence = FrameSequence(head=os.path.join(directory, head), tail=tail, padding=padding)
            stem = sequence_stem(sequence)
            found.append(FoundShot(_shot_name(root, Path(directory), stem), sequence.pattern, tuple(sorted(frames))))
    return found


def _shot_name(root: Path, directory: Path, stem: str) -> str:
    parts = [*directory.relative_to(root).parts, stem] if directory != root else [stem]
    return "_".join(re.sub(r"[^A-Za-z0-9_.-]+", "-", p) for p in parts if p)


def output_for(shot: FoundShot, output_root: str | os.PathLike[str]) -> str:
    """``<output_root>/<shot name>/<stem>.####.exr``: where a shot found by :func:`find_shots` is written."""
    directory = Path(output_root) / shot.name
    in_seq = FrameSequence.parse(shot.input) if shot.frames else None
    stem = sequence_stem(in_seq) if in_seq is not None else Path(shot.input).stem
    return output_sequence(str(directory) + os.sep, in_seq, stem).pattern


def is_complete(shot: FoundShot, output_pattern: str, start_frame: int = 1001) -> bool:
    """Every input frame has an output EXR carrying vfxmatte parameters.

    A movie's frames are its declared frame count from ``start_frame``; a movie that declares
    none counts as complete once any output frame exists.
    """
    from vfxmatte.io.exr import read_header_attribute
    from vfxmatte.io.movie import probe_movie

    out_seq = FrameSequence.parse(output_pattern)
    if not os.path.isdir(out_seq.directory):
        return False
    done = set(out_seq.frames_on_disk())
    if shot.frames:
        wanted = set(shot.frames)
    else:
        declared = probe_movie(shot.input).declared_frames
        wanted = set(range(start_frame, start_frame + declared)) if declared else set(sorted(done)[:1])
    if not wanted or not wanted <= done:
        return False
    return all(read_header_attribute(out_seq.path(f), "vfxmatte:params") for f in wanted)
