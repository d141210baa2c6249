"""Movie reading against real third-party files (../shared/data/video) and small PyAV-made movies."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from vfxmatte.errors import FrameError, InputError, MovieDecodeError
from vfxmatte.io.frames import Plate
from vfxmatte.io.movie import (
    SOURCE_TIME_ATTRIBUTE,
    _reason,
    is_movie,
    movie_frame_count_hint,
    probe_movie,
    read_movie,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def video() -> Path:
    folder = DATA / "video"
    if not folder.is_dir():
        pytest.skip("../shared/data not found: real-file fixtures unavailable")
    return folder


def _source_time(plate: Plate) -> float:
    (attr,) = [a for a in plate.attributes if a.name == SOURCE_TIME_ATTRIBUTE]
    assert attr.type == "float"
    return float(attr.value)


def _make_movie(
    path: Path,
    frames: int = 8,
    timecode: str | None = None,
    on_container: bool = False,
    rotation: int | None = None,
    hflip: bool = False,
) -> np.ndarray:
    """Encode an asymmetric 64x48 picture (white block top-left); returns the source image."""
    img = np.zeros((48, 64, 3), np.uint8)
    img[:24, :16] = 255
    with av.open(str(path), "w") as out:
        if timecode and on_container:
            out.metadata["timecode"] = timecode
        stream = out.add_stream("mpeg4", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        if timecode and not on_container:
            stream.metadata["timecode"] = timecode
        if rotation is not None:
            stream.set_display_rotation(rotation, hflip=hflip)
        for _ in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return img.astype(np.float32) / 255.0


def test_is_movie_by_extension() -> None:
    assert is_movie("a/shot.MOV") and is_movie(Path("x.webm")) and is_movie("y.Mxf")
    assert not is_movie("plate.1001.exr") and not is_movie("movie")


def test_chaplin_counts_rate_and_numbering(video: Path) -> None:
    info = probe_movie(video / "chaplin.mp4")
    assert (info.fps, info.declared_frames, info.width, info.height) == (Fraction(25), 241, 640, 360)
    assert not info.variable_frame_rate and info.timecode is None and movie_frame_count_hint(info) == 241
    plates = list(read_movie(video / "chaplin.mp4", start_frame=1))
    assert [p.frame for p in plates] == list(range(1, 242))
    last = plates[-1]
    assert last.rgb.dtype == np.float32 and last.rgb.shape == (360, 640, 3)
    assert 0.0 <= float(last.rgb.min()) and float(last.rgb.max()) <= 1.0
    assert last.fps == Fraction(25) and last.nonfinite == 0 and last.timecode is None
    assert last.data_window == last.display_window and last.data_window.pixels == 640 * 360
    assert _source_time(last) == pytest.approx(240 / 25)


def test_frames_subset_stops_before_later_damage(video: Path) -> None:
    # no_timescale.mp4 fails after 8 pictures: stopping early must never reach the damage
    plates = list(read_movie(video / "no_timescale.mp4", frames={1002, 1004}))
    assert [p.frame for p in plates] == [1002, 1004]


def test_rotation_follows_display_matrix_clockwise(video: Path) -> None:
    path = video / "video_rotation_90.mp4"
    info = probe_movie(path)
    assert (info.width, info.height, info.coded_width, info.coded_height) == (60, 100, 100, 60)
    assert info.rotation == 90 and not info.mirrored
    (plate,) = read_movie(path)
    assert plate.rgb.shape == (100, 60, 3) and plate.data_window.width == 60
    with av.open(str(path)) as container:
        raw = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(np.float32) / 255
    # frame.rotation is -90 (counter-clockwise), i.e. FFmpeg's autorotate turns it clockwise
    assert np.array_equal(plate.rgb, np.rot90(raw, -1))
    assert not np.array_equal(plate.rgb, np.rot90(raw, 1))
    assert plate.rgb[:20].mean() > 0.9 and plate.rgb[-20:].mean() < 0.1  # white band on top


@pytest.mark.parametrize(
    ("degrees", "hflip", "expected_rotation", "mirrored"),
    [(90, False, 270, False), (-90, False, 90, False), (180, False, 180, False), (0, True, 0, True)],
)
def test_written_display_matrix_round_trips(
    tmp_path: Path, degrees: int, hflip: bool, expected_rotation: int, mirrored: bool
) -> None:
    source = _make_movie(tmp_path / "r.mp4", frames=2, rotation=degrees, hflip=hflip)
    info = probe_movie(tmp_path / "r.mp4")
    assert (info.rotation, info.mirrored) == (expected_rotation, mirrored)
    want = np.rot90(source[:, ::-1] if hflip else source, degrees // 90)  # rot90: counter-clockwise
    plate = next(read_movie(tmp_path / "r.mp4"))
    assert plate.rgb.shape == want.shape
    assert float(np.abs(plate.rgb - want).mean()) < 0.05


def test_anamorphic_pixel_aspect(video: Path) -> None:
    assert probe_movie(video / "sar_2x1.mp4").pixel_aspect == 2.0
    plate = next(read_movie(video / "sar_2x1.mp4", frames={1001}))
    assert plate.pixel_aspect == 2.0 and plate.rgb.shape == (360, 640, 3)


def test_full_range_grey_ramp_spans_zero_to_one(video: Path) -> None:
    (plate,) = read_movie(video / "greyscale-gamma22.mov", frames={1001})
    row = plate.rgb[75, :, 0]
    assert float(row[0]) == 0.0 and float(row[-1]) == 1.0
    assert np.all(np.diff(row) >= 0) and len(np.unique(row)) == 256
    # read as limited range, 16/255 of the ramp would clip to black and 20/255 to white
    assert float((row == 0).mean()) < 0.01 and float((row == 1).mean()) < 0.01


def test_hevc_10bit_keeps_more_than_8_bits(video: Path) -> None:
    info = probe_movie(video / "output_srgb.mov")
    assert info.codec == "hevc" and info.declared_frames == 1
    (plate,) = read_movie(video / "output_srgb.mov", colorspace="Rec.1886 Rec.709 - Display")
    assert plate.rgb.shape == (1080, 1920, 3) and plate.colorspace == "Rec.1886 Rec.709 - Display"
    assert len(np.unique(plate.rgb[..., 1])) > 256


def test_vfr_numbers_in_presentation_order(video: Path) -> None:
    info = probe_movie(video / "cursed-vfr.mp4")
    assert info.variable_frame_rate and info.declared_frames == 63
    plates = list(read_movie(video / "cursed-vfr.mp4", frames={1001, 1002, 1003}))
    assert [p.frame for p in plates] == [1001, 1002, 1003]
    times = [_source_time(p) for p in plates]
    assert times[0] == 0.0 and times[0] < times[1] < times[2]
    assert times[1] == pytest.approx(64236 / 57600)  # nowhere near 1/fps: irregular timestamps


def test_vp8_webm_reads_without_declared_count(video: Path) -> None:
    info = probe_movie(video / "transparency-faulty.webm")
    assert info.declared_frames is None and info.fps == Fraction(60)
    assert movie_frame_count_hint(info) == 300
    plates = list(read_movie(video / "transparency-faulty.webm", frames={1001, 1002}))
    assert [p.rgb.shape for p in plates] == [(1080, 1920, 3)] * 2


def test_header_only_movie_is_an_input_error(video: Path) -> None:
    path = video / "bipbop_nonfragment_header.mp4"
    assert probe_movie(path).declared_frames == 297
    with pytest.raises(InputError, match=r"bipbop_nonfragment_header\.mp4: 0 of 297 declared frames"):
        list(read_movie(path))


def test_damage_yields_good_frames_then_raises(video: Path) -> None:
    got = []
    with pytest.raises(MovieDecodeError) as caught:
        for plate in read_movie(video / "no_timescale.mp4"):
            got.append(plate)
    assert [p.frame for p in got] == list(range(1001, 1009))
    assert caught.value.frame == 1009 and isinstance(caught.value, FrameError)
    message = str(caught.value)
    assert "no_timescale.mp4: decoding stopped after 8 of" in message and "\n" not in message
    # its display matrix is all zeros (rotation INT_MIN): ignored, with a warning
    assert got[0].rgb.shape == (240, 320, 3) and "not a multiple of 90" in got[0].warnings[0]


@pytest.mark.parametrize("name", ["chunk_out_of_range.mp4", "test420-test_8_420-vp8.mp4"])
def test_unopenable_files_are_input_errors(video: Path, name: str) -> None:
    with pytest.raises(InputError, match=name.replace(".", r"\.")) as caught:
        probe_movie(video / name)
    assert "\n" not in str(caught.value)
    with pytest.raises(InputError, match=name.replace(".", r"\.")):
        next(read_movie(video / name))


def test_missing_file_and_audio_only_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such movie file"):
        probe_movie(tmp_path / "absent.mov")
    sound = tmp_path / "sound.mkv"
    with av.open(str(sound), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    with pytest.raises(InputError, match=r"sound\.mkv: holds no video stream"):
        probe_movie(sound)


def test_generated_movie_timecode_advances(tmp_path: Path) -> None:
    path = tmp_path / "tc.mov"
    source = _make_movie(path, frames=8, timecode="00:59:59:20")
    info = probe_movie(path)
    assert info.fps == Fraction(24) and info.declared_frames == 8 and info.timecode == "00:59:59:20"
    plates = list(read_movie(path, start_frame=1))
    assert [p.timecode for p in plates] == [
        "00:59:59:20", "00:59:59:21", "00:59:59:22", "00:59:59:23",
        "01:00:00:00", "01:00:00:01", "01:00:00:02", "01:00:00:03",
    ]  # fmt: skip
    assert [p.frame for p in plates] == list(range(1, 9)) and plates[0].fps == Fraction(24)
    assert float(np.abs(plates[0].rgb - source).mean()) < 0.05 and plates[0].path == str(path)


def test_container_timecode_tag_in_matroska(tmp_path: Path) -> None:
    path = tmp_path / "tc.mkv"
    _make_movie(path, frames=3, timecode="01:00:00:00", on_container=True)
    assert probe_movie(path).timecode == "01:00:00:00"
    assert [p.timecode for p in read_movie(path)] == ["01:00:00:00", "01:00:00:01", "01:00:00:02"]


def test_reason_is_one_printable_line() -> None:
    text = _reason(RuntimeError("bad\ndata \udcff\x00 here"))
    assert "\n" not in text and text.isprintable() and text.startswith("bad data")
    assert _reason(RuntimeError()) == "RuntimeError"


def test_truncated_movie_raises_after_the_frames_it_has(tmp_path: Path) -> None:
    whole, cut = tmp_path / "whole.mov", tmp_path / "cut.mov"
    rng = np.random.default_rng(7)
    with av.open(str(whole), "w", options={"movflags": "faststart"}) as out:  # moov first, then data
        stream = out.add_stream("mpeg4", rate=24)
        stream.width, stream.height, stream.pix_fmt, stream.gop_size = 64, 48, "yuv420p", 1
        for _ in range(8):
            noise = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(noise, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    got = []
    with pytest.raises(MovieDecodeError) as caught:
        for plate in read_movie(cut):
            got.append(plate.frame)
    assert 0 < len(got) < 8 and got == list(range(1001, 1001 + len(got)))
    assert caught.value.frame == 1001 + len(got)
    assert str(caught.value) == f"{cut}: only {len(got)} of 8 declared frames decoded"


# -- matting movies: movie output, damage, unsupported codecs (tiny model, 64 px) ---------------

MATTE_FAST = ["--steps", "2", "--seeds", "2", "--lr-size", "64", "--hr", "off", "--quiet"]


def _vfxmatte(model_dir: Path, *args: object) -> tuple[int, str, str]:
    """``vfxmatte matte …`` in-process with the tiny model: (exit code, stdout, stderr)."""
    import contextlib
    import io

    from vfxmatte.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["matte", *(str(a) for a in args), "--model", str(model_dir), *MATTE_FAST])
    return code, out.getvalue(), err.getvalue()


def _moving_clip(path: Path, frames: int = 3) -> None:
    """A 64x48 mpeg4 clip of a bright block moving right over a dark ramp."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            img = np.tile(np.linspace(20, 90, 64, dtype=np.uint8)[None, :, None], (48, 1, 3))
            img[12:36, 8 + 6 * i : 28 + 6 * i] = (240, 180, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _decode(path: Path, fmt: str) -> tuple[Any, list[np.ndarray]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format=fmt) for f in container.decode(stream)]
        return stream, frames


def test_prores_4444_output_carries_the_matte_as_alpha(tiny_model_dir: Path, tmp_path: Path) -> None:
    import OpenImageIO as oiio

    clip = tmp_path / "clip.mp4"
    _moving_clip(clip)
    code, _, err = _vfxmatte(tiny_model_dir, clip, "-o", tmp_path / "review.mov", "--start-frame", "1")
    assert code == 0, err
    with av.open(str(tmp_path / "review.mov")) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.profile) == ("prores", "4444")
        assert stream.average_rate == 25 and (stream.width, stream.height) == (64, 48)
        pictures = [f.to_ndarray(format="rgba64le") for f in container.decode(stream)]
    assert len(pictures) == 3 and stream.pix_fmt.startswith("yuva444p")
    # the alpha channel is the matte the EXR path writes, to 10-bit precision
    code, _, err = _vfxmatte(tiny_model_dir, clip, "-o", tmp_path / "exr" / "m.####.exr", "--start-frame", "1")
    assert code == 0, err
    for number, picture in enumerate(pictures, start=1):
        alpha = np.asarray(oiio.ImageBuf(str(tmp_path / "exr" / f"m.{number:04d}.exr")).get_pixels(oiio.FLOAT))[..., 3]
        assert float(alpha.std()) > 0.001  # a real matte, not a constant
        assert float(np.abs(picture[..., 3] / 65535.0 - alpha).max()) < 2.5 / 1023
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_preview_is_h264_comp_with_heat(tiny_model_dir: Path, tmp_path: Path) -> None:
    clip = tmp_path / "clip.mov"
    _moving_clip(clip, frames=2)
    code, stdout, err = _vfxmatte(tiny_model_dir, clip, "-o", tmp_path / "preview.mp4", "--preview", "--json")
    assert code == 0, err
    assert json.loads(stdout)["frames"]["written"] == [1001, 1002]
    stream, pictures = _decode(tmp_path / "preview.mp4", "rgb24")
    assert (stream.codec_context.name, stream.pix_fmt, len(pictures)) == ("h264", "yuv420p", 2)
    assert pictures[0].shape == (48, 64, 3)


def test_movie_writer_pads_odd_sizes_and_heat_marks_uncertainty(tmp_path: Path) -> None:
    from vfxmatte.io.movie_out import MovieWriter, preview_picture

    fg = np.full((31, 45, 3), 0.5, np.float32)
    alpha = np.ones((31, 45), np.float32)
    calm = preview_picture(fg, alpha, np.zeros_like(alpha))
    hot = preview_picture(fg, alpha, np.full_like(alpha, 0.2))
    assert np.allclose(calm, 0.5) and hot[0, 0, 0] > 0.8 and hot[0, 0, 2] < 0.2  # red where unsure
    writer = MovieWriter(str(tmp_path / "odd.mkv"), "preview", Fraction(30000, 1001))
    for _ in range(2):
        writer.write(hot)
    assert not (tmp_path / "odd.mkv").exists()  # only the hidden temp file until close
    writer.close()
    stream, pictures = _decode(tmp_path / "odd.mkv", "rgb24")
    assert len(pictures) == 2 and pictures[0].shape == (32, 46, 3) and stream.average_rate == Fraction(30000, 1001)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mkv"]


def test_movie_output_refusals_are_one_line(tiny_model_dir: Path, tmp_path: Path) -> None:
    clip = tmp_path / "clip.mov"
    _moving_clip(clip, frames=1)
    cases = [
        (("-o", tmp_path / "r.mp4"), "r.mp4: .mp4 cannot hold ProRes 4444"),
        (("-o", tmp_path / "out" / "m.####.exr", "--preview"), "--preview writes a movie"),
        (("-o", clip), "output would overwrite the input"),
    ]
    (tmp_path / "exists.mov").write_bytes(b"x")
    cases.append((("-o", tmp_path / "exists.mov"), "exists.mov: already exists; pass --overwrite"))
    for args, needle in cases:
        code, _, err = _vfxmatte(tiny_model_dir, clip, *args)
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert (tmp_path / "exists.mov").read_bytes() == b"x"


def test_damaged_movie_writes_frames_before_the_damage_and_exits_1(
    tiny_model_dir: Path, video: Path, tmp_path: Path
) -> None:
    movie = video / "no_timescale.mp4"  # 8 pictures, then the decoder fails
    frames = ("--frames", "1007-1010", "--json")
    code, stdout, err = _vfxmatte(tiny_model_dir, movie, "-o", tmp_path / "m.####.exr", *frames)
    summary = json.loads(stdout)
    assert code == 1 and summary["exit_code"] == 1
    assert summary["frames"]["written"] == [1007, 1008]
    failed = {f["frame"]: f["error"] for f in summary["frames"]["failed"]}
    assert sorted(failed) == [1009, 1010] and "decoding stopped after 8" in failed[1009]
    assert "error: frame 1009:" in err and sorted(p.name for p in tmp_path.iterdir()) == ["m.1007.exr", "m.1008.exr"]
    # the same into a movie: the two good frames, the failure reported, exit 1
    code, stdout, err = _vfxmatte(tiny_model_dir, movie, "-o", tmp_path / "m.mov", *frames)
    assert code == 1 and json.loads(stdout)["frames"]["written"] == [1007, 1008]
    assert any("holds the 2 matted frame(s) only" in n for n in json.loads(stdout)["notes"])
    assert len(_decode(tmp_path / "m.mov", "rgba64le")[1]) == 2


def test_unsupported_codec_is_a_clear_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    made = tmp_path / "made.mkv"
    _make_movie(made, frames=2)
    data = made.read_bytes()
    assert b"V_MPEG4/ISO/ASP" in data
    odd = tmp_path / "odd.mkv"
    odd.write_bytes(data.replace(b"V_MPEG4/ISO/ASP", b"V_VFXM/NOCODEC!"))  # a codec id no decoder knows
    with pytest.raises(InputError, match=r"odd\.mkv: unsupported video codec"):
        probe_movie(odd)
    code, _, err = _vfxmatte(tiny_model_dir, odd, "-o", tmp_path / "out.mov")
    assert code == 2 and err.strip() == f"vfxmatte: error: {odd}: unsupported video codec (no decoder available)"
