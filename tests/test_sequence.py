"""Frame sequences: patterns, single files, frames on disk, gaps, ranges, output names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vfxmatte.errors import InputError, UsageError
from vfxmatte.io.sequence import (
    MAX_FRAMES,
    FrameSequence,
    format_ranges,
    gaps,
    output_sequence,
    parse_frame_range,
    sequence_stem,
)


def _touch(directory: Path, *names: str) -> None:
    for name in names:
        (directory / name).write_bytes(b"")


# -- parse ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "padding", "frame", "expected"),
    [
        ("plate.####.exr", 4, 1001, "plate.1001.exr"),
        ("plate.####.exr", 4, 7, "plate.0007.exr"),
        ("plate.%04d.exr", 4, 7, "plate.0007.exr"),
        ("plate.%d.exr", 0, 7, "plate.7.exr"),
        ("plate.@.exr", 0, 7, "plate.7.exr"),
        ("plate.@@@@.exr", 4, 7, "plate.0007.exr"),
        ("plate_##.tif", 2, 3, "plate_03.tif"),
        ("plate.###.exr", 3, 12345, "plate.12345.exr"),
    ],
)
def test_parse_patterns(pattern: str, padding: int, frame: int, expected: str) -> None:
    seq = FrameSequence.parse(os.path.join("shots", pattern))
    assert seq.padding == padding
    assert not seq.is_single
    assert seq.path(frame) == os.path.join("shots", expected)
    assert seq.directory == "shots"


def test_parse_keeps_directory_tokens_out() -> None:
    # "@" and "#" in a directory name are not frame tokens; only the file name is parsed.
    seq = FrameSequence.parse(os.path.join("a@b", "plate.####.exr"))
    assert seq.head == os.path.join("a@b", "plate.")
    assert seq.path(1) == os.path.join("a@b", "plate.0001.exr")


def test_pattern_property_normalises_to_hashes() -> None:
    assert FrameSequence.parse("plate.%04d.exr").pattern == "plate.####.exr"
    assert FrameSequence.parse("plate.@@@@.exr").pattern == "plate.####.exr"
    assert FrameSequence.parse("plate.@.exr").pattern == "plate.%d.exr"


def test_parse_rejects_two_tokens() -> None:
    with pytest.raises(UsageError, match="more than one"):
        FrameSequence.parse("plate.####.####.exr")


@pytest.mark.parametrize(
    ("name", "frame", "padding", "stem"),
    [
        ("plate.1001.exr", 1001, 4, "plate"),
        ("plate_0012.tif", 12, 4, "plate"),
        ("shot_v2.1001.exr", 1001, 4, "shot_v2"),
        ("plate.-0005.exr", -5, 4, "plate"),
        ("photo.png", 1, 0, "photo"),
        ("1001.exr", 1, 0, "1001"),
    ],
)
def test_parse_single_files(name: str, frame: int, padding: int, stem: str) -> None:
    seq = FrameSequence.parse(name)
    assert seq.is_single
    assert seq.single_frame == frame
    assert seq.padding == padding
    assert seq.path(frame) == name
    assert seq.pattern == name
    assert sequence_stem(seq) == stem


def test_single_file_holds_one_frame_only() -> None:
    seq = FrameSequence.parse("plate.1001.exr")
    with pytest.raises(UsageError, match="1001"):
        seq.path(1002)


def test_single_negative_frame_matches_pattern_naming() -> None:
    # A pattern names frame -5 "plate.-0005.exr"; that file on its own is frame -5 too.
    name = FrameSequence.parse("plate.####.exr").path(-5)
    assert name == "plate.-0005.exr"
    assert FrameSequence.parse(name).single_frame == -5


def test_path_negative_frames() -> None:
    assert FrameSequence.parse("p.####.exr").path(-5) == "p.-0005.exr"
    assert FrameSequence.parse("p.####.exr").path(-12345) == "p.-12345.exr"
    assert FrameSequence.parse("p.%d.exr").path(-5) == "p.-5.exr"
    assert FrameSequence.parse("p.####.exr").path(0) == "p.0000.exr"


# -- on disk ----------------------------------------------------------------------------


def test_frames_on_disk_with_gaps(tmp_path: Path) -> None:
    _touch(tmp_path, "plate.1001.exr", "plate.1002.exr", "plate.1005.exr", "plate.10000.exr", "plate.-0002.exr")
    _touch(tmp_path, "plate.1003.exr.tmp", "other.1004.exr", "plate.1004.tif")
    seq = FrameSequence.parse(str(tmp_path / "plate.####.exr"))
    frames = seq.frames_on_disk()
    assert frames == [-2, 1001, 1002, 1005, 10000]
    assert all(os.path.exists(seq.path(f)) for f in frames)


def test_frames_on_disk_ignores_sibling_with_other_padding(tmp_path: Path) -> None:
    # plate.####.exr and plate.#####.exr are two sequences sharing a directory.
    _touch(tmp_path, "plate.1001.exr", "plate.1002.exr", "plate.01003.exr", "plate.01004.exr", "plate.001.exr")
    four = FrameSequence.parse(str(tmp_path / "plate.####.exr"))
    five = FrameSequence.parse(str(tmp_path / "plate.#####.exr"))
    three = FrameSequence.parse(str(tmp_path / "plate.###.exr"))
    assert four.frames_on_disk() == [1001, 1002]
    assert five.frames_on_disk() == [1003, 1004]
    assert three.frames_on_disk() == [1, 1001, 1002]  # 1001 needs no padding at ###
    for seq in (four, five, three):
        assert all(os.path.exists(seq.path(f)) for f in seq.frames_on_disk())


def test_frames_on_disk_unpadded_skips_zero_padded(tmp_path: Path) -> None:
    _touch(tmp_path, "p.1.exr", "p.2.exr", "p.0003.exr", "p.10.exr", "p.0.exr")
    assert FrameSequence.parse(str(tmp_path / "p.%d.exr")).frames_on_disk() == [0, 1, 2, 10]
    assert FrameSequence.parse(str(tmp_path / "p.@.exr")).frames_on_disk() == [0, 1, 2, 10]


def test_frames_on_disk_single_file(tmp_path: Path) -> None:
    _touch(tmp_path, "plate.1001.exr")
    assert FrameSequence.parse(str(tmp_path / "plate.1001.exr")).frames_on_disk() == [1001]
    assert FrameSequence.parse(str(tmp_path / "plate.1002.exr")).frames_on_disk() == []


def test_frames_on_disk_missing_directory(tmp_path: Path) -> None:
    seq = FrameSequence.parse(str(tmp_path / "nope" / "plate.####.exr"))
    with pytest.raises(InputError, match="does not exist"):
        seq.frames_on_disk()


def test_gaps() -> None:
    assert gaps([1001, 1002, 1005, 1006, 1008]) == [(1003, 1004), (1007, 1007)]
    assert gaps([3, 1, 2]) == []
    assert gaps([]) == []
    assert gaps([-1, 2]) == [(0, 1)]


def test_format_ranges() -> None:
    assert format_ranges([1001, 1002, 1003, 1007]) == "1001-1003,1007"
    assert format_ranges([5, 1, 3, 2, 3]) == "1-3,5"
    assert format_ranges([]) == ""
    assert format_ranges([-2, -1, 0, 4]) == "-2-0,4"


# -- --frames ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "frames"),
    [
        ("1001-1010", list(range(1001, 1011))),
        ("1001-1010x3", [1001, 1004, 1007, 1010]),
        ("1,5,7-9", [1, 5, 7, 8, 9]),
        ("1005", [1005]),
        ("7-9, 1", [1, 7, 8, 9]),
        ("3,3,1-3", [1, 2, 3]),
        ("-3--1", [-3, -2, -1]),
    ],
)
def test_parse_frame_range(text: str, frames: list[int]) -> None:
    assert parse_frame_range(text) == frames


@pytest.mark.parametrize("text", ["", "abc", "1001-", "10-5", "1-10x0", "1-10x", "1..5", "1;2", "1001-1010y2"])
def test_parse_frame_range_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="--frames"):
        parse_frame_range(text)


def test_parse_frame_range_refuses_huge_ranges() -> None:
    with pytest.raises(UsageError, match="more than"):
        parse_frame_range(f"1-{MAX_FRAMES * 100}")
    assert len(parse_frame_range(f"1-{MAX_FRAMES * 100}x100")) == MAX_FRAMES


# -- outputs ----------------------------------------------------------------------------


def test_output_sequence_directory(tmp_path: Path) -> None:
    src = FrameSequence.parse("plates/plate.####.exr")
    out = output_sequence("out/", src, sequence_stem(src))
    assert out.path(1001) == os.path.join("out", "plate.1001.exr")
    # An existing directory works without the trailing slash; padding follows the input.
    src5 = FrameSequence.parse("plates/plate.#####.exr")
    out5 = output_sequence(str(tmp_path), src5, "plate")
    assert out5.path(7) == str(tmp_path / "plate.00007.exr")
    # Movies (no input sequence) and unpadded inputs get 4 digits.
    assert output_sequence("out/", None, "clip").path(1) == os.path.join("out", "clip.0001.exr")


def test_output_sequence_pattern_and_single() -> None:
    out = output_sequence("o/matte.%04d.exr", None, "x")
    assert out.path(12) == os.path.join("o", "matte.0012.exr")
    single = output_sequence("matte.exr", None, "x")
    assert single.is_single and single.single_path == "matte.exr"


@pytest.mark.parametrize("name", ["out/plate.####.png", "matte.tif", "out/plate.####"])
def test_output_sequence_refuses_non_exr(name: str) -> None:
    with pytest.raises(UsageError, match=r"\.exr"):
        output_sequence(name, None, "plate")
