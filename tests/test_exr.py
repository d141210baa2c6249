"""EXR and still images through OpenImageIO, on real third-party files.

Reads keep windows, pixel aspect and header attributes; writes are half-float scanline
zip EXRs that carry them over, atomically; damaged files fail fast with one line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import OpenImageIO as oiio
import pytest

from vfxmatte.errors import FrameError, OutputError
from vfxmatte.io import exr
from vfxmatte.io.exr import (
    HALF_MAX,
    describe,
    read_channels,
    read_plate,
    sanitize,
    timecode_bcd,
    timecode_string,
    write_exr,
)
from vfxmatte.io.frames import Plate

SRGB = "sRGB Encoded Rec.709 (sRGB)"
LINEAR = "Linear Rec.709 (sRGB)"
OUT_CHANNELS = ("R", "G", "B", "A", "uncertainty.Y")


@pytest.fixture(scope="module")
def exr_dir(shared_data: Path) -> Path:
    return shared_data / "exr"


def _spec(path: Path | str, part: int = 0) -> oiio.ImageSpec:
    inp = oiio.ImageInput.open(str(path))
    assert inp is not None, oiio.geterror()
    try:
        assert inp.seek_subimage(part, 0)
        return inp.spec().copy()
    finally:
        inp.close()


def _attributes(spec: oiio.ImageSpec) -> dict[str, Any]:
    return {a.name: a.value for a in spec.extra_attribs}


def _raw(path: Path | str, part: int = 0) -> np.ndarray:
    """All channels of one part as float32 (H, W, C), straight from OIIO."""
    inp = oiio.ImageInput.open(str(path))
    assert inp is not None
    try:
        assert inp.seek_subimage(part, 0)
        spec = inp.spec()
        pixels = inp.read_image(part, 0, 0, spec.nchannels, "float")
        return np.asarray(pixels, dtype=np.float32).reshape(spec.height, spec.width, spec.nchannels)
    finally:
        inp.close()


def _matte_channels(plate: Plate) -> dict[str, np.ndarray]:
    h, w = plate.rgb.shape[:2]
    alpha = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :].repeat(h, axis=0)
    return {
        "R": plate.rgb[..., 0] * alpha,
        "G": plate.rgb[..., 1] * alpha,
        "B": plate.rgb[..., 2] * alpha,
        "A": alpha,
        "uncertainty.Y": np.full((h, w), 0.125, dtype=np.float32),
    }


def _half(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).astype(np.float16).astype(np.float32)


def _tmp_files(directory: Path) -> list[str]:
    return [n for n in os.listdir(directory) if ".tmp" in n]


# -- read + write round trip ----------------------------------------------------------------

ROUND_TRIP = [
    "DisplayWindow/t01.exr",
    "DisplayWindow/t03.exr",
    "DisplayWindow/t08.exr",
    "DisplayWindow/t09.exr",
    "DisplayWindow/t13.exr",
    "DisplayWindow/t15.exr",
    "DisplayWindow/t16.exr",
    "OpenImageIO-images/grid-overscan.exr",
    "EncodingGuidelines/hdr_test.exr",
    "ScanLines/Carrots.exr",
    "Beachball/multipart.0001.exr",
]


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_round_trip_keeps_windows_header_and_pixels(exr_dir: Path, tmp_path: Path, name: str) -> None:
    src = exr_dir / name
    src_spec = _spec(src)
    plate = read_plate(str(src), 1001)

    # The plate is the file's data window, untouched (half values are exact in float32).
    assert (plate.data_window.x, plate.data_window.y) == (src_spec.x, src_spec.y)
    assert (plate.data_window.width, plate.data_window.height) == (src_spec.width, src_spec.height)
    assert plate.display_window.x == src_spec.full_x and plate.display_window.y == src_spec.full_y
    assert plate.display_window.width == src_spec.full_width
    assert plate.display_window.height == src_spec.full_height
    assert plate.rgb.dtype == np.float32 and plate.rgb.shape == (src_spec.height, src_spec.width, 3)
    raw = _raw(src)
    names = list(src_spec.channelnames)
    np.testing.assert_array_equal(plate.rgb, raw[..., [names.index(c) for c in "RGB"]])

    out = tmp_path / "out.exr"
    channels = _matte_channels(plate)
    write_exr(str(out), plate, channels, {"vfxmatte:seed": 7, "vfxmatte:params": "{}"})
    assert _tmp_files(tmp_path) == []
    spec = _spec(out)

    assert (spec.x, spec.y, spec.width, spec.height) == (src_spec.x, src_spec.y, src_spec.width, src_spec.height)
    assert (spec.full_x, spec.full_y, spec.full_width, spec.full_height) == (
        src_spec.full_x,
        src_spec.full_y,
        src_spec.full_width,
        src_spec.full_height,
    )
    assert spec.get_float_attribute("PixelAspectRatio", 1.0) == pytest.approx(
        src_spec.get_float_attribute("PixelAspectRatio", 1.0)
    )
    assert tuple(spec.channelnames) == OUT_CHANNELS
    assert str(spec.format) == "half"
    assert all(str(f) == "half" for f in spec.channelformats)  # empty when all share spec.format
    assert spec.getattribute("compression") == "zip"
    assert spec.tile_width == 0  # scanline
    assert spec.getattribute("vfxmatte:seed") == 7

    # Every picture attribute of the input is carried with its value (encoding ones are not;
    # OIIO's EXR writer itself drops other formats' tiff:* encoding attributes).
    src_attrs = _attributes(src_spec)
    out_attrs = _attributes(spec)
    skip = set(exr._NOT_CARRIED) | {"FramesPerSecond", "smpte:TimeCode"}
    carried = {k: v for k, v in src_attrs.items() if k not in skip and not k.startswith("tiff:")}
    assert carried, "every fixture has some picture attributes (screenWindow…)"
    for key, value in carried.items():
        assert key in out_attrs, f"{key} not carried"
        assert out_attrs[key] == value, key

    # Values round-trip within half precision.
    back = _raw(out)
    for i, c in enumerate(OUT_CHANNELS):
        np.testing.assert_array_equal(back[..., i], _half(channels[c]), err_msg=c)
    again = read_plate(str(out), 1001)
    np.testing.assert_array_equal(again.rgb[..., 1], _half(channels["G"]))
    assert again.pixel_aspect == pytest.approx(plate.pixel_aspect)


def test_carrots_chromaticities_and_camera_survive(exr_dir: Path, tmp_path: Path) -> None:
    src = exr_dir / "ScanLines/Carrots.exr"
    plate = read_plate(str(src), 1)
    assert plate.colorspace == "ACES2065-1"  # from the AP0 chromaticities
    out = tmp_path / "carrots.exr"
    write_exr(str(out), plate, _matte_channels(plate), {})
    src_attrs, out_attrs = _attributes(_spec(src)), _attributes(_spec(out))
    assert out_attrs["chromaticities"] == pytest.approx(src_attrs["chromaticities"])
    assert out_attrs["cameraModel"] == src_attrs["cameraModel"] == "SLT-A99"
    assert out_attrs["adoptedNeutral"] == pytest.approx(src_attrs["adoptedNeutral"])
    assert read_plate(str(out), 1).colorspace == "ACES2065-1"


def test_pixel_aspect_15_and_overscan(exr_dir: Path) -> None:
    t15 = read_plate(str(exr_dir / "DisplayWindow/t15.exr"), 1)
    assert t15.pixel_aspect == pytest.approx(1.5)
    grid = read_plate(str(exr_dir / "OpenImageIO-images/grid-overscan.exr"), 1)
    assert (grid.data_window.x, grid.data_window.y) == (-250, -250)
    assert (grid.display_window.width, grid.display_window.height) == (1000, 1000)


def test_unknown_chromaticities_warn(exr_dir: Path) -> None:
    xyz = read_plate(str(exr_dir / "Chromaticities/XYZ.exr"), 1)
    assert xyz.colorspace == LINEAR
    assert any("chromaticities" in w and "XYZ.exr" in w for w in xyz.warnings)
    chosen = read_plate(str(exr_dir / "Chromaticities/XYZ.exr"), 1, colorspace="ACEScg")
    assert chosen.colorspace == "ACEScg" and chosen.warnings == []


# -- layouts: tiled, luminance, single channel ----------------------------------------------


@pytest.mark.parametrize("name", ["MultiResolution/ColorCodedLevels.exr", "MultiResolution/PeriodicPattern.exr"])
def test_tiled_mipmap_reads_level_zero(exr_dir: Path, name: str) -> None:
    src = exr_dir / name
    spec = _spec(src)
    assert spec.tile_width > 0
    plate = read_plate(str(src), 1)
    assert plate.rgb.shape == (spec.height, spec.width, 3)
    np.testing.assert_array_equal(plate.rgb, _raw(src)[..., :3])


@pytest.mark.parametrize("name", ["LuminanceChroma/Garden.exr", "TestImages/GrayRampsHorizontal.exr"])
def test_luminance_only_replicated_to_rgb(exr_dir: Path, name: str) -> None:
    src = exr_dir / name
    assert list(_spec(src).channelnames) == ["Y"]
    plate = read_plate(str(src), 1)
    y = _raw(src)[..., 0]
    for c in range(3):
        np.testing.assert_array_equal(plate.rgb[..., c], y)
    assert float(y.max()) > float(y.min())


def test_wide_float_range_single_channel_sanitised(exr_dir: Path) -> None:
    src = exr_dir / "TestImages/WideFloatRange.exr"
    raw = _raw(src)[..., 0]
    assert list(_spec(src).channelnames) == ["G"]
    beyond = int(np.count_nonzero(~np.isfinite(raw) | (np.abs(raw) > HALF_MAX)))
    assert beyond > 0
    plate = read_plate(str(src), 1)
    assert np.isfinite(plate.rgb).all()
    assert np.abs(plate.rgb).max() <= HALF_MAX
    assert plate.nonfinite == 3 * beyond  # the one channel is read as grey
    assert plate.warnings and all(str(src) in w for w in plate.warnings)
    inside = np.isfinite(raw) & (np.abs(raw) <= HALF_MAX)
    np.testing.assert_array_equal(plate.rgb[..., 0][inside], raw[inside])


@pytest.mark.parametrize("name", ["TestImages/AllHalfValues.exr", "TestImages/BrightRingsNanInf.exr"])
def test_nan_inf_sanitised_and_counted(exr_dir: Path, tmp_path: Path, name: str) -> None:
    src = exr_dir / name
    raw = _raw(src)[..., :3]
    bad = int(np.count_nonzero(~np.isfinite(raw)))
    assert bad > 0
    plate = read_plate(str(src), 1)
    assert np.isfinite(plate.rgb).all()
    assert np.abs(plate.rgb).max() <= HALF_MAX
    assert plate.nonfinite == bad
    assert any("NaN/Inf" in w and str(src) in w for w in plate.warnings)
    finite = np.isfinite(raw)
    np.testing.assert_array_equal(plate.rgb[finite], raw[finite])
    # Written back, nothing non-finite reaches the file.
    out = tmp_path / "clean.exr"
    write_exr(str(out), plate, _matte_channels(plate), {})
    assert np.isfinite(_raw(out)).all()


def test_sanitize_direct() -> None:
    rgb = np.array([[[np.nan, np.inf, -np.inf], [1e6, -1e6, 0.5]]], dtype=np.float32)
    clean, nonfinite, clamped = sanitize(rgb)
    assert (nonfinite, clamped) == (3, 2)
    np.testing.assert_array_equal(clean, [[[0.0, HALF_MAX, -HALF_MAX], [HALF_MAX, -HALF_MAX, 0.5]]])


# -- stereo, multi-part, layers -------------------------------------------------------------


def _common(a: Plate, b: Plate) -> tuple[np.ndarray, np.ndarray]:
    """The two plates' pixels over the columns/rows both data windows cover."""
    x0 = max(a.data_window.x, b.data_window.x)
    x1 = min(a.data_window.x + a.data_window.width, b.data_window.x + b.data_window.width)
    y0 = max(a.data_window.y, b.data_window.y)
    y1 = min(a.data_window.y + a.data_window.height, b.data_window.y + b.data_window.height)
    assert x1 > x0 and y1 > y0

    def crop(p: Plate) -> np.ndarray:
        return p.rgb[y0 - p.data_window.y : y1 - p.data_window.y, x0 - p.data_window.x : x1 - p.data_window.x]

    return crop(a), crop(b)


def test_stereo_default_is_hero_view(exr_dir: Path) -> None:
    multi = str(exr_dir / "Beachball/multipart.0001.exr")
    single = str(exr_dir / "Beachball/singlepart.0001.exr")
    parts = describe(multi).parts
    hero = read_plate(multi, 1)
    right_part = next(p for p in parts if p["name"] == "rgba_right")
    assert right_part["view"] == "right"
    assert [hero.data_window.x, hero.data_window.y, hero.data_window.width, hero.data_window.height] == right_part[
        "data_window"
    ]
    views = _spec(single).getattribute("multiView")
    assert list(views)[0] == "right"
    single_hero = read_plate(single, 1)
    names = list(_spec(single).channelnames)
    np.testing.assert_array_equal(single_hero.rgb, _raw(single)[..., [names.index(c) for c in "RGB"]])
    a, b = _common(hero, single_hero)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(read_plate(multi, 1, view="right").rgb, hero.rgb)


def test_stereo_left_view(exr_dir: Path) -> None:
    multi = str(exr_dir / "Beachball/multipart.0001.exr")
    single = str(exr_dir / "Beachball/singlepart.0001.exr")
    left = read_plate(multi, 1, view="left")
    right = read_plate(multi, 1)
    left_part = next(p for p in describe(multi).parts if p["name"] == "rgba_left")
    assert [left.data_window.x, left.data_window.y, left.data_window.width, left.data_window.height] == left_part[
        "data_window"
    ]
    np.testing.assert_array_equal(left.rgb, _raw(multi, int(str(left_part["part"])))[..., :3])
    assert left.data_window != right.data_window
    assert not np.array_equal(*_common(left, right))

    single_left = read_plate(single, 1, view="left")
    names = list(_spec(single).channelnames)
    np.testing.assert_array_equal(single_left.rgb, _raw(single)[..., [names.index(f"left.{c}") for c in "RGB"]])
    np.testing.assert_array_equal(*_common(left, single_left))
    # The layer name reads the same channels as the view.
    np.testing.assert_array_equal(read_plate(single, 1, layer="left").rgb, single_left.rgb)
    # A part name selects that part.
    np.testing.assert_array_equal(read_plate(multi, 1, layer="rgba_left").rgb, left.rgb)


@pytest.mark.parametrize("name", ["Beachball/multipart.0001.exr", "Beachball/singlepart.0001.exr"])
def test_missing_layer_names_file_and_layers(exr_dir: Path, name: str) -> None:
    path = str(exr_dir / name)
    with pytest.raises(FrameError) as info:
        read_plate(path, 5, layer="nope")
    message = str(info.value)
    assert message.startswith(path + ":")
    assert "'nope'" in message and "layers:" in message and "disparityL" in message
    assert "\n" not in message
    assert info.value.frame == 5
    with pytest.raises(FrameError, match="view 'center'"):
        read_plate(path, 5, view="center")


# -- damaged and unreadable inputs ----------------------------------------------------------


def _damaged(exr_dir: Path) -> list[Path]:
    files = sorted((exr_dir / "Damaged").glob("*.exr"))
    assert len(files) >= 10
    return [*files, exr_dir / "LuminanceChroma/Flowers.exr"]


def test_damaged_files_fail_fast_with_one_line(exr_dir: Path) -> None:
    started = time.perf_counter()
    for path in _damaged(exr_dir):
        with pytest.raises(FrameError) as info:
            read_plate(str(path), 1001)
        message = str(info.value)
        assert str(path) in message, message
        assert "\n" not in message and "\r" not in message
        assert message.isprintable(), message
        assert info.value.frame == 1001
    assert time.perf_counter() - started < 10.0


def test_damaged_files_fail_in_describe_too(exr_dir: Path) -> None:
    opened = 0
    for path in _damaged(exr_dir):
        try:
            describe(str(path))
            opened += 1  # some open (headers fine), failing only at the pixel read
        except FrameError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
    assert opened < len(_damaged(exr_dir))


def test_damaged_files_do_not_allocate(exr_dir: Path) -> None:
    """Peak RSS of a process reading every damaged file stays small (no giant allocations)."""
    reader = (
        "import sys\n"
        "from vfxmatte.errors import FrameError\n"
        "from vfxmatte.io.exr import read_plate\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n"
        "        read_plate(p, 1)\n"
        "    except FrameError:\n"
        "        pass\n"
        "    else:\n"
        "        sys.exit('read ' + p)\n"
    )
    # Measured in a wrapper, so RUSAGE_CHILDREN holds this reader only, not earlier children.
    wrapper = (
        "import resource, subprocess, sys\n"
        "rc = subprocess.run([sys.executable, '-c', *sys.argv[1:]]).returncode\n"
        "print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    args = [reader, *(str(p) for p in _damaged(exr_dir))]
    proc = subprocess.run(
        [sys.executable, "-c", wrapper, *args], capture_output=True, text=True, timeout=120, check=True
    )
    rc, max_rss_kb = (int(v) for v in proc.stdout.split())
    assert rc == 0, proc.stderr
    assert 0 < max_rss_kb < 500_000


def test_pixel_budget_checked_before_reading(exr_dir: Path) -> None:
    path = str(exr_dir / "DisplayWindow/t01.exr")
    with pytest.raises(FrameError, match="pixel budget"):
        read_plate(path, 1, max_pixels=1000)


def test_bad_inputs_are_one_line_frame_errors(exr_dir: Path, tmp_path: Path) -> None:
    real = (exr_dir / "DisplayWindow/t01.exr").read_bytes()
    cases = {
        "zero.exr": b"",
        "truncated.exr": real[:200],
        "half.exr": real[: len(real) // 2],
        "text.exr": b"this is not an image\n",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(FrameError) as info:
            read_plate(str(path), 3)
        message = str(info.value)
        assert message.startswith(str(path) + ":"), message
        assert "\n" not in message
    assert "empty" in _error(tmp_path / "zero.exr")
    assert "does not exist" in _error(tmp_path / "missing.exr")
    (tmp_path / "folder.exr").mkdir()
    assert "directory" in _error(tmp_path / "folder.exr")


def _error(path: Path) -> str:
    with pytest.raises(FrameError) as info:
        read_plate(str(path), 1)
    assert str(path) in str(info.value)
    return str(info.value)


def _write_still(path: Path, fmt: str = "uint8") -> np.ndarray:
    # Smooth ramps, so a JPEG's chroma subsampling barely changes them.
    yy, xx = np.mgrid[0:24, 0:40].astype(np.float32)
    pixels = np.stack([xx / 39, yy / 23, 1 - xx / 78], axis=-1).astype(np.float32)
    buf = oiio.ImageBuf(oiio.ImageSpec(40, 24, 3, fmt))
    buf.set_pixels(oiio.ROI(), pixels)
    assert buf.write(str(path)), buf.geterror()
    return pixels


@pytest.mark.parametrize("ext", ["png", "tif", "jpg"])
def test_still_images_are_srgb(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"photo.{ext}"
    pixels = _write_still(path)
    plate = read_plate(str(path), 1)
    assert plate.colorspace == SRGB
    assert plate.rgb.shape == (24, 40, 3)
    assert plate.rgb.min() >= 0.0 and plate.rgb.max() <= 1.0
    tolerance = 0.03 if ext == "jpg" else 1 / 255 + 1e-6
    assert np.abs(plate.rgb - pixels).max() < tolerance


def test_png_renamed_exr_reads_as_png(tmp_path: Path) -> None:
    # OIIO falls back to the format the bytes are in; the still is sRGB-encoded.
    png = tmp_path / "photo.png"
    pixels = _write_still(png)
    renamed = tmp_path / "photo.exr"
    renamed.write_bytes(png.read_bytes())
    plate = read_plate(str(renamed), 1)
    assert plate.colorspace == SRGB
    assert np.abs(plate.rgb - pixels).max() <= 1 / 255 + 1e-6


def test_float_tiff_is_linear(tmp_path: Path) -> None:
    path = tmp_path / "linear.tif"
    _write_still(path, "float")
    assert read_plate(str(path), 1).colorspace == LINEAR


# -- timecode and frame rate ----------------------------------------------------------------


@pytest.mark.parametrize("label", ["00:00:00:00", "01:02:03:04", "23:59:59:29", "10:20:30;15", "12:34:56:39"])
def test_timecode_round_trip(label: str) -> None:
    packed = timecode_bcd(label)
    assert packed[1] == 0
    assert timecode_string(packed) == label


def test_timecode_bcd_layout() -> None:
    assert timecode_bcd("01:02:03:04") == (0x01020304, 0)
    assert timecode_bcd("12:34:56:17")[0] == 0x12345617
    assert timecode_bcd("00:00:00;02")[0] & 0x40  # drop-frame flag


@pytest.mark.parametrize("label", ["1:2:3", "00:00:00:40", "24:00:00:00", "aa:bb:cc:dd", "00:61:00:00"])
def test_timecode_bcd_rejects(label: str) -> None:
    with pytest.raises(ValueError, match="timecode"):
        timecode_bcd(label)


def test_fps_and_timecode_written_and_read_back(exr_dir: Path, tmp_path: Path) -> None:
    plate = read_plate(str(exr_dir / "TestImages/stripes.exr"), 1)
    assert plate.fps is None and plate.timecode is None
    plate.fps = Fraction(24000, 1001)
    plate.timecode = "01:00:10:12"
    out = tmp_path / "tc.exr"
    write_exr(str(out), plate, _matte_channels(plate), {})
    attrs = _attributes(_spec(out))
    assert tuple(attrs["FramesPerSecond"]) == (24000, 1001)
    assert timecode_string(attrs["smpte:TimeCode"]) == "01:00:10:12"
    back = read_plate(str(out), 1)
    assert back.fps == Fraction(24000, 1001)
    assert back.timecode == "01:00:10:12"
    # …and carried unchanged through a second generation.
    again = tmp_path / "tc2.exr"
    write_exr(str(again), back, _matte_channels(back), {})
    second = read_plate(str(again), 1)
    assert (second.fps, second.timecode) == (Fraction(24000, 1001), "01:00:10:12")


def test_unrepresentable_timecode_is_dropped_not_fatal(exr_dir: Path, tmp_path: Path) -> None:
    plate = read_plate(str(exr_dir / "TestImages/stripes.exr"), 1)
    plate.timecode = "00:00:01:100"  # a 120 fps movie's label: SMPTE BCD cannot hold it
    out = tmp_path / "tc.exr"
    write_exr(str(out), plate, _matte_channels(plate), {})
    assert "smpte:TimeCode" not in _attributes(_spec(out))


# -- atomic writes --------------------------------------------------------------------------


@pytest.fixture
def stripes(exr_dir: Path) -> Plate:
    return read_plate(str(exr_dir / "TestImages/stripes.exr"), 1)


def test_write_success_leaves_no_temp_and_honours_umask(stripes: Plate, tmp_path: Path) -> None:
    out = tmp_path / "deep" / "er" / "matte.exr"
    old = os.umask(0o022)
    try:
        write_exr(str(out), stripes, _matte_channels(stripes), {"vfxmatte:uncertainty": 0.25})
    finally:
        os.umask(old)
    assert out.exists()
    assert _tmp_files(out.parent) == []
    assert out.stat().st_mode & 0o777 == 0o644  # readable by the rest of the farm, like any open()
    assert _spec(out).getattribute("vfxmatte:uncertainty") == pytest.approx(0.25)


def _existing(tmp_path: Path) -> tuple[Path, bytes]:
    out = tmp_path / "matte.exr"
    out.write_bytes(b"previous frame bytes")
    return out, out.read_bytes()


def test_write_failure_create_returns_none(stripes: Plate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, before = _existing(tmp_path)
    monkeypatch.setattr(oiio.ImageOutput, "create", staticmethod(lambda *a, **k: None))
    with pytest.raises(OutputError) as info:
        write_exr(str(out), stripes, _matte_channels(stripes), {})
    assert str(out) in str(info.value) and "\n" not in str(info.value)
    assert out.read_bytes() == before
    assert _tmp_files(tmp_path) == []


def test_write_failure_channel_size_mismatch(stripes: Plate, tmp_path: Path) -> None:
    out, before = _existing(tmp_path)
    channels = _matte_channels(stripes)
    channels["uncertainty.Y"] = channels["uncertainty.Y"][:-1]
    with pytest.raises(OutputError, match="uncertainty.Y"):
        write_exr(str(out), stripes, channels, {})
    every = {k: v[:-1, :-1] for k, v in _matte_channels(stripes).items()}
    with pytest.raises(OutputError, match="data window"):
        write_exr(str(out), stripes, every, {})
    assert out.read_bytes() == before
    assert _tmp_files(tmp_path) == []


def test_write_interrupted_before_replace(stripes: Plate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, before = _existing(tmp_path)

    def interrupted(src: str, dst: str) -> None:
        assert os.path.exists(src) and src.endswith(".tmp.exr")
        assert os.path.dirname(src) == os.path.dirname(os.path.abspath(dst))
        raise KeyboardInterrupt

    monkeypatch.setattr(exr.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_exr(str(out), stripes, _matte_channels(stripes), {})
    assert out.read_bytes() == before
    assert _tmp_files(tmp_path) == []


def test_write_refuses_dwa(stripes: Plate, tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="DWA"):
        write_exr(str(tmp_path / "m.exr"), stripes, _matte_channels(stripes), {}, compression="dwaa")
    assert os.listdir(tmp_path) == []


def test_write_replaces_existing_file(stripes: Plate, tmp_path: Path) -> None:
    out, before = _existing(tmp_path)
    write_exr(str(out), stripes, _matte_channels(stripes), {})
    assert out.read_bytes() != before
    assert tuple(_spec(out).channelnames) == OUT_CHANNELS


def test_read_channels(stripes: Plate, tmp_path: Path) -> None:
    out = tmp_path / "m.exr"
    channels = _matte_channels(stripes)
    write_exr(str(out), stripes, channels, {})
    got = read_channels(str(out), ["A", "uncertainty.Y"])
    np.testing.assert_array_equal(got[..., 0], _half(channels["A"]))
    np.testing.assert_array_equal(got[..., 1], _half(channels["uncertainty.Y"]))
    with pytest.raises(FrameError, match="trimap.Y"):
        read_channels(str(out), ["trimap.Y"])


def test_header_numbers_read_together(stripes: Plate, tmp_path: Path) -> None:
    """The flows' summary reads a frame's numbers from one open of its header: a float, an int,
    a string attribute (not a number), an absent one and an unreadable file each come back right."""
    out = tmp_path / "m.exr"
    attributes = {"vfxmatte:uncertainty": 0.125, "vfxmatte:keyframe_doubt": 3, "vfxmatte:colorspace": "ACEScg"}
    write_exr(str(out), stripes, _matte_channels(stripes), attributes)
    names = ["vfxmatte:uncertainty", "vfxmatte:keyframe_doubt", "vfxmatte:colorspace", "vfxmatte:clean_plate_missed"]
    assert exr.read_header_numbers(str(out), names) == {
        "vfxmatte:uncertainty": 0.125,
        "vfxmatte:keyframe_doubt": 3.0,
        "vfxmatte:colorspace": None,
        "vfxmatte:clean_plate_missed": None,
    }
    assert exr.read_header_attribute(str(out), "vfxmatte:colorspace") == "ACEScg"
    (tmp_path / "bad.exr").write_bytes(b"not an exr")
    assert exr.read_header_numbers(str(tmp_path / "bad.exr"), names[:2]) == dict.fromkeys(names[:2])
