"""Frame sequences as value objects: patterns, frame ranges, gaps.

Patterns follow the conventions compositors type every day:

* ``plate.####.exr`` — one ``#`` per digit of padding (Nuke);
* ``plate.%04d.exr`` — printf style (``%d`` is unpadded);
* ``plate.@.exr`` / ``plate.@@@@.exr`` — one ``@`` per digit (``@`` alone: unpadded);
* a single file such as ``plate.1001.exr`` — a one-frame sequence whose frame number is
  the trailing number of the name (1 when there is none).

Frame numbers are never renumbered: a gap on disk stays a gap in the output.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from vfxmatte.errors import InputError, UsageError

_HASHES = re.compile(r"#+")
_PRINTF = re.compile(r"%(0?)(\d*)d")
_ATS = re.compile(r"@+")
# A single file's frame number follows a separator: "plate.1001.exr", "plate_1001.exr".
_TRAILING_NUMBER = re.compile(r"^(?P<head>.*?[._])(?P<digits>-?\d+)(?P<tail>\.[^./\\]+)$")


@dataclass(frozen=True)
class FrameSequence:
    """A frame sequence on disk: ``head`` + zero-padded frame number + ``tail``.

    ``padding`` 0 means unpadded.  ``single`` marks a sequence made from one explicit
    file name (whose own path is returned for its frame, whatever its padding).
    """

    head: str
    tail: str
    padding: int
    single_path: str | None = None
    single_frame: int | None = None

    # -- construction ---------------------------------------------------------------

    @classmethod
    def parse(cls, pattern: str | os.PathLike[str]) -> FrameSequence:
        """Parse a pattern (``####``, ``%04d``, ``@``) or a single file name."""
        text = os.fspath(pattern)
        directory, name = os.path.split(text)
        for regex, padding_of in (
            (_HASHES, lambda m: len(m.group(0))),
            (_PRINTF, lambda m: int(m.group(2) or 0)),
            (_ATS, lambda m: 0 if len(m.group(0)) == 1 else len(m.group(0))),
        ):
            matches = list(regex.finditer(name))
            if len(matches) > 1:
                raise UsageError(f"{text}: more than one frame-number token in the pattern")
            if matches:
                m = matches[0]
                return cls(
                    head=os.path.join(directory, name[: m.start()]),
                    tail=name[m.end() :],
                    padding=padding_of(m),
                )
        single = _TRAILING_NUMBER.match(name)
        if single:
            # The number follows a "." or "_" separator, so a "-" before it is a sign
            # ("plate.-0005.exr" is frame -5, the name ``path(-5)`` gives).
            digits = single.group("digits")
            return cls(
                head=os.path.join(directory, single.group("head")),
                tail=single.group("tail"),
                padding=len(digits.lstrip("-")),
                single_path=text,
                single_frame=int(digits),
            )
        return cls(head=text, tail="", padding=0, single_path=text, single_frame=1)

    @property
    def is_single(self) -> bool:
        return self.single_path is not None

    @property
    def pattern(self) -> str:
        """The sequence written with ``#`` padding (``%d`` when unpadded)."""
        if self.single_path is not None:
            return self.single_path
        token = "#" * self.padding if self.padding else "%d"
        return f"{self.head}{token}{self.tail}"

    @property
    def directory(self) -> str:
        return os.path.dirname(self.head) or "."

    def path(self, frame: int) -> str:
        """The file name of ``frame``."""
        if self.single_path is not None:
            if frame != self.single_frame:
                raise UsageError(f"{self.single_path}: a single file holds frame {self.single_frame} only")
            return self.single_path
        sign = "-" if frame < 0 else ""
        return f"{self.head}{sign}{abs(frame):0{self.padding}d}{self.tail}"

    # -- what is on disk ------------------------------------------------------------

    def frames_on_disk(self) -> list[int]:
        """Sorted frame numbers whose files exist (any padding ≥ the pattern's)."""
        if self.single_path is not None:
            return [self.single_frame] if os.path.exists(self.single_path) and self.single_frame is not None else []
        directory = self.directory
        base = os.path.basename(self.head)
        digits = r"-?\d+" if self.padding == 0 else rf"-?\d{{{self.padding},}}"
        regex = re.compile(re.escape(base) + f"({digits})" + re.escape(self.tail) + "$")
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            raise InputError(f"{self.pattern}: directory {directory} does not exist") from None
        except NotADirectoryError:
            raise InputError(f"{self.pattern}: {directory} is not a directory") from None
        frames = set()
        for name in names:
            m = regex.match(name)
            if m:
                frame = int(m.group(1))
                # Only names this pattern writes: a sibling sequence with other padding
                # ("plate.01001.exr" beside "plate.####.exr") is another sequence.
                if os.path.basename(self.path(frame)) == name:
                    frames.add(frame)
        return sorted(frames)


def gaps(frames: Iterable[int]) -> list[tuple[int, int]]:
    """Inclusive ranges of missing frame numbers between the first and last frame."""
    ordered = sorted(set(frames))
    missing: list[tuple[int, int]] = []
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b - a > 1:
            missing.append((a + 1, b - 1))
    return missing


def format_ranges(frames: Iterable[int]) -> str:
    """``[1001, 1002, 1003, 1007]`` → ``"1001-1003,1007"``."""
    ordered = sorted(set(frames))
    parts: list[str] = []
    for start, end in _runs(ordered):
        parts.append(str(start) if start == end else f"{start}-{end}")
    return ",".join(parts)


def _runs(ordered: list[int]) -> Iterator[tuple[int, int]]:
    if not ordered:
        return
    start = prev = ordered[0]
    for f in ordered[1:]:
        if f != prev + 1:
            yield start, prev
            start = f
        prev = f
    yield start, prev


#: Most frames a ``--frames`` value may name (a typo such as 1-100000000 would exhaust memory).
MAX_FRAMES = 1_000_000
#: Longest ``--frames`` text accepted (a request is refused before it is parsed).
MAX_RANGE_TEXT = 10_000
# Frame numbers have at most 9 digits: no range item can hide a number Python refuses to convert.
_RANGE_ITEM = re.compile(r"^(-?\d{1,9})(?:-(-?\d{1,9})(?:x(\d{1,9}))?)?$")


def parse_frame_range(text: str) -> list[int]:
    """Parse ``1001-1100``, ``1001-1100x2``, ``1001,1005,1010-1012`` into sorted frames."""
    if len(text) > MAX_RANGE_TEXT:
        raise UsageError(f"--frames {text[:40]!r}…: longer than {MAX_RANGE_TEXT} characters")
    frames: set[int] = set()
    total = 0
    for item in text.replace(" ", "").split(","):
        m = _RANGE_ITEM.match(item)
        if not m:
            raise UsageError(
                f"--frames {text[:80]!r}: cannot read {item[:40]!r} (expected e.g. 1001-1100, 1001-1100x2, 1005)"
            )
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) is not None else start
        step = int(m.group(3) or 1)
        if end < start or step < 1:
            raise UsageError(f"--frames {text[:80]!r}: {item!r} is an empty range")
        total += (end - start) // step + 1
        if total > MAX_FRAMES:  # checked before anything is expanded, over all items together
            raise UsageError(f"--frames {text[:80]!r}: more than {MAX_FRAMES} frames")
        frames.update(range(start, end + 1, step))
    return sorted(frames)


def output_sequence(output: str, input_sequence: FrameSequence | None, input_stem: str) -> FrameSequence:
    """Resolve the ``-o`` argument: a ``####`` pattern, a single file, or a directory.

    A directory (existing, or written with a trailing slash) receives
    ``<input name>.####.exr`` with the input's padding (4 for movies and single files).
    """
    if output.endswith(("/", os.sep)) or os.path.isdir(output):
        padding = input_sequence.padding if input_sequence and input_sequence.padding else 4
        name = f"{input_stem}.{'#' * padding}.exr"
        return FrameSequence.parse(str(Path(output) / name))
    sequence = FrameSequence.parse(output)
    if not output.lower().endswith(".exr"):
        raise UsageError(f"{output}: outputs are EXR files; give a name ending in .exr or a directory")
    return sequence


def sequence_stem(sequence: FrameSequence) -> str:
    """A name for a sequence without directory, frame token and extension (``plate``)."""
    base = os.path.basename(sequence.head).rstrip("._-")
    if sequence.single_path is not None:
        stem = Path(sequence.single_path).stem
        if sequence.single_frame is not None and sequence.padding:
            stem = base or stem
        return stem
    return base or "frame"
