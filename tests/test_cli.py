"""The `vfxmatte` CLI end to end: the contracts of DESIGN §4 (CLI) and §5 (output EXR).

Runs in-process through ``vfxmatte.cli.main`` (fast) and, where the process itself is
the subject (exit status, tracebacks), through the real console entry in a subprocess.
Always with the tiny untrained model, 2 steps, 2 seeds, a 64 px LR pass and small frames.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import OpenImageIO as oiio
import pytest
from conftest import run_cli

from vfxmatte import config, pipeline
from vfxmatte.cli import main

OUT_CHANNELS = ("R", "G", "B", "A", "uncertainty.Y")
FRAMES = (1001, 1002, 1003)
DATA_WINDOW = (8, 4, 96, 64)  # x, y, width, height
DISPLAY_WINDOW = (0, 0, 128, 80)
TIMECODE = (0x01000000, 0)  # 01:00:00:00
FAST = ["--steps", "2", "--seeds", "2", "--lr-size", "64", "--quiet"]


def write_plate(
    path: Path,
    *,
    seed: int = 0,
    size: tuple[int, int] = (96, 64),
    values: Callable[[np.ndarray], None] | None = None,
    fmt: str = "half",
) -> np.ndarray:
    """One RGB EXR frame with an offset data window, a bigger display window and a header."""
    width, height = size
    rng = np.random.default_rng(seed)
    img = (rng.random((height, width, 3)) * 0.3).astype(np.float32)
    img[height // 4 : 3 * height // 4, width // 3 : 2 * width // 3] = (0.9, 0.7, 0.2)
    if values is not None:
        values(img)
    spec = oiio.ImageSpec(width, height, 3, fmt)
    spec.x, spec.y = DATA_WINDOW[:2]
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = DISPLAY_WINDOW
    spec.attribute("FramesPerSecond", oiio.TypeDesc("rational2i"), (24, 1))
    spec.attribute("smpte:TimeCode", oiio.TypeDesc("timecode"), TIMECODE)
    spec.attribute("PixelAspectRatio", 2.0)
    spec.attribute("cameraModel", "TestCam 3000")
    out = oiio.ImageOutput.create(str(path))
    assert out is not None and out.open(str(path), spec), oiio.geterror()
    assert out.write_image(img)
    assert out.close()
    return img


def make_sequence(directory: Path, frames: tuple[int, ...] = FRAMES) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for frame in frames:
        write_plate(directory / f"plate.{frame}.exr", seed=frame)
    return directory / "plate.####.exr"


def spec_of(path: Path) -> oiio.ImageSpec:
    inp = oiio.ImageInput.open(str(path))
    assert inp is not None, oiio.geterror()
    try:
        return inp.spec().copy()
    finally:
        inp.close()


def pixels_of(path: Path) -> np.ndarray:
    inp = oiio.ImageInput.open(str(path))
    assert inp is not None, oiio.geterror()
    try:
        spec = inp.spec()
        data = inp.read_image(0, 0, 0, spec.nchannels, "float")
        return np.asarray(data, dtype=np.float32).reshape(spec.height, spec.width, spec.nchannels)
    finally:
        inp.close()


def output_frames(directory: Path) -> list[int]:
    return sorted(int(p.name.split(".")[-2]) for p in directory.glob("*.exr"))


Runner = Callable[..., tuple[int, str, str]]


def runner(model_dir: Path) -> Runner:
    """``vfxmatte …`` in-process (``matte`` with the tiny model): (exit code, stdout, stderr)."""

    def run(*args: object) -> tuple[int, str, str]:
        argv = [str(a) for a in args]
        if argv[:1] == ["matte"]:
            argv += ["--model", str(model_dir), *FAST]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        return code, out.getvalue(), err.getvalue()

    return run


@pytest.fixture(scope="module")
def cli(tiny_model_dir: Path) -> Runner:
    return runner(tiny_model_dir)


@pytest.fixture(scope="module")
def matted(tmp_path_factory: pytest.TempPathFactory, cli: Runner) -> tuple[Path, Path, dict[str, Any]]:
    """One run over a three-frame sequence: (input folder, output folder, JSON summary)."""
    root = tmp_path_factory.mktemp("matted")
    pattern = make_sequence(root / "in")
    code, out, err = cli("matte", pattern, "-o", root / "out" / "plate.####.exr", "--json")
    assert code == 0, err
    return root / "in", root / "out", summary_of(out)


def summary_of(stdout: str) -> dict[str, Any]:
    record = json.loads(stdout)
    assert isinstance(record, dict)
    return record


def assert_one_line_error(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


# -- the output contract ----------------------------------------------------------------------


def test_matte_sequence_writes_the_output_contract(matted: tuple[Path, Path, dict[str, Any]]) -> None:
    in_dir, out_dir, summary = matted
    assert summary["exit_code"] == 0
    assert summary["frames"]["written"] == list(FRAMES)
    assert summary["frames"]["skipped"] == [] and summary["frames"]["failed"] == []
    assert output_frames(out_dir) == list(FRAMES)
    assert sorted(summary["uncertainty"]) == [str(f) for f in FRAMES]
    assert set(summary["timings"]["per_frame_s"]) == {str(f) for f in FRAMES}
    assert [n for n in os.listdir(out_dir) if "tmp" in n] == []

    for frame in FRAMES:
        path = out_dir / f"plate.{frame}.exr"
        spec = spec_of(path)
        src = spec_of(in_dir / f"plate.{frame}.exr")
        assert (spec.x, spec.y, spec.width, spec.height) == DATA_WINDOW
        assert (spec.full_x, spec.full_y, spec.full_width, spec.full_height) == DISPLAY_WINDOW
        assert tuple(spec.channelnames) == OUT_CHANNELS
        assert str(spec.format) == "half"
        assert spec.getattribute("compression") == "zip"
        assert spec.tile_width == 0
        assert spec.get_float_attribute("PixelAspectRatio") == pytest.approx(2.0)
        assert tuple(spec.getattribute("FramesPerSecond")) == tuple(src.getattribute("FramesPerSecond")) == (24, 1)
        assert tuple(spec.getattribute("smpte:TimeCode")) == TIMECODE
        assert spec.getattribute("cameraModel") == "TestCam 3000"

        params = json.loads(spec.getattribute("vfxmatte:params"))
        assert (params["steps"], params["seeds"], params["seed"]) == (2, 2, 0)
        model = spec.getattribute("vfxmatte:model")
        assert "tiny-test" in model and "sha256:" in model and params["model"] == model
        assert spec.getattribute("vfxmatte:seed") == 0
        assert spec.getattribute("vfxmatte:version")
        header_u = spec.getattribute("vfxmatte:uncertainty")
        assert header_u == pytest.approx(summary["uncertainty"][str(frame)], rel=1e-6, abs=1e-9)
        assert spec.getattribute("vfxmatte:picture") is None  # no black bars to cut off

        px = pixels_of(path)
        rgb, alpha, unc = px[..., :3], px[..., 3], px[..., 4]
        assert np.isfinite(px).all()
        assert alpha.min() >= 0.0 and alpha.max() <= 1.0
        assert unc.min() >= 0.0
        # Premultiplied: no colour where there is no alpha, and colour bounded by alpha.
        assert np.all(rgb[alpha == 0] == 0)
        # The foreground solver works in [0, 1] (scaled for HDR plates), so RGB <= A * max(1, plate).
        plate_max = max(1.0, float(pixels_of(in_dir / f"plate.{frame}.exr").max()))
        assert np.all(np.abs(rgb) <= alpha[..., None] * plate_max * (1 + 2e-3) + 1e-3)


def test_black_bars_are_background_and_the_header_names_the_picture(tmp_path: Path, cli: Runner) -> None:
    # A pillarboxed plate (10 px of black either side of the 96 px data window): trimap-free, the
    # bars are background and the header gives the picture as a box in the file's pixels.
    def pillarbox(img: np.ndarray) -> None:
        img[:, :10] = 0.0
        img[:, -10:] = 0.0

    write_plate(tmp_path / "plate.1001.exr", values=pillarbox)
    code, _, err = cli("matte", tmp_path / "plate.####.exr", "-o", tmp_path / "out" / "m.####.exr")
    assert code == 0, err
    path = tmp_path / "out" / "m.1001.exr"
    spec = oiio.ImageBuf(str(path)).spec()
    x, y, width, height = DATA_WINDOW
    assert spec.getattribute("vfxmatte:picture") == f"{x + 10} {y} {x + width - 11} {y + height - 1}"
    alpha = pixels_of(path)[..., 3]
    assert not alpha[:, :10].any() and not alpha[:, -10:].any()


def test_the_people_prior_is_named_in_the_header(tmp_path: Path, cli: Runner) -> None:
    write_plate(tmp_path / "plate.1001.exr")
    code, _, err = cli("matte", tmp_path / "plate.####.exr", "-o", tmp_path / "out" / "m.####.exr", "--prior", "people")
    assert code == 0, err
    spec = spec_of(tmp_path / "out" / "m.1001.exr")
    model = spec.getattribute("vfxmatte:model")
    assert "; prior people sha256:" in model and "+ mediapipe-selfie-segmentation sha256:9ee168ec" in model
    assert json.loads(spec.getattribute("vfxmatte:params"))["prior"] == "people"
    code, _, err = cli("matte", tmp_path / "plate.####.exr", "-o", tmp_path / "bad" / "m.####.exr", "--prior", "folk")
    assert code != 0 and "people" in err and not (tmp_path / "bad").exists()


def background_cleared(root: Path, frame: int, rows: slice, cols: slice) -> float:
    """The alpha the clean plate took away outside the subject's box (grown 3 px) on ``frame``,
    comparing ``root``/on against ``root``/off: it takes only background, and leaves the subject."""
    on, off = (pixels_of(root / d / f"m.{frame}.exr")[..., 3] for d in ("on", "off"))
    subject = np.zeros(on.shape, bool)
    subject[rows.start - 3 : rows.stop + 3, max(0, cols.start - 3) : cols.stop + 3] = True
    assert on[~subject].sum() <= off[~subject].sum() + 1e-3  # only background is cleared
    np.testing.assert_allclose(on[rows, cols].mean(), off[rows, cols].mean(), atol=0.02)
    return float(off[~subject].sum() - on[~subject].sum())


def test_a_locked_off_shot_is_matted_with_its_clean_plate(tmp_path: Path, cli: Runner) -> None:
    """A still background with grain and a subject that moves: the run gathers the clean plate,
    says so, records the share it cleared in each header, and clears only background."""
    rng = np.random.default_rng(7)
    still = (rng.random((64, 96, 3)) * 0.3).astype(np.float32)
    boxes = {}
    (tmp_path / "in").mkdir()
    for i, frame in enumerate(range(1001, 1007)):
        box = (slice(14, 50), slice(6 + 14 * i, 30 + 14 * i))
        boxes[frame] = box

        def values(img: np.ndarray, box: tuple[slice, slice] = box) -> None:
            img[:] = still + rng.normal(0.0, 0.004, still.shape).astype(np.float32)
            img[box] = (0.9, 0.7, 0.2)

        write_plate(tmp_path / "in" / f"plate.{frame}.exr", values=values)
    pattern = tmp_path / "in" / "plate.####.exr"
    code, out, err = cli("matte", pattern, "-o", tmp_path / "on" / "m.####.exr", "--json")
    assert code == 0, err
    notes = summary_of(out)["notes"]
    assert any(n.startswith("clean plate from frames 1001,1002,1003,1004,1005,1006:") for n in notes), notes
    missed = summary_of(out)["missed"]  # frames whose matte leaves out what the plate calls subject
    for frame, share in missed.items():
        assert share > 0.001
        assert float(spec_of(tmp_path / "on" / f"m.{frame}.exr").getattribute("vfxmatte:clean_plate_missed")) == (
            pytest.approx(share, abs=1e-6)
        )
    code, out, err = cli("matte", pattern, "-o", tmp_path / "off" / "m.####.exr", "--json", "--clean-plate", "off")
    assert code == 0, err
    assert not any("clean plate" in n for n in summary_of(out)["notes"])
    cleared = 0.0
    for frame, (rows, cols) in boxes.items():
        on_spec = spec_of(tmp_path / "on" / f"m.{frame}.exr")
        assert 0.0 < float(on_spec.getattribute("vfxmatte:clean_plate")) <= 1.0
        assert 0.0 <= float(on_spec.getattribute("vfxmatte:clean_plate_missed")) <= 1.0
        assert json.loads(on_spec.getattribute("vfxmatte:params"))["clean_plate"] == "auto"
        assert spec_of(tmp_path / "off" / f"m.{frame}.exr").getattribute("vfxmatte:clean_plate") is None
        cleared += background_cleared(tmp_path, frame, rows, cols)
    assert cleared > 1.0, cleared  # the spill past the subject that the colour solve left
    code, _, err = cli("matte", pattern, "-o", tmp_path / "bad" / "m.####.exr", "--clean-plate", "on")
    assert code == 2 and "--clean-plate" in err and not (tmp_path / "bad").exists()
    # Asked to fill, each header records the share the plate made subject instead of the share it
    # calls subject and the matte left out.
    fill = tmp_path / "fill" / "m.####.exr"
    code, _, err = cli("matte", pattern, "-o", fill, "--clean-plate", "fill", "--frames", "1003")
    assert code == 0, err
    fill_spec = spec_of(tmp_path / "fill" / "m.1003.exr")
    assert json.loads(fill_spec.getattribute("vfxmatte:params"))["clean_plate"] == "fill"
    assert 0.0 <= float(fill_spec.getattribute("vfxmatte:clean_plate_subject")) <= 1.0
    assert fill_spec.getattribute("vfxmatte:clean_plate_missed") is None  # filled, not left out
    assert spec_of(tmp_path / "on" / "m.1003.exr").getattribute("vfxmatte:clean_plate_subject") is None
    # A chunk of the shot (a farm task, a resumed run) gathers the same plate from the whole input:
    # its frames come out as the whole run's (gathered afresh, as another process would).
    pipeline._PLATES.clear()
    code, out, err = cli("matte", pattern, "-o", tmp_path / "chunk" / "m.####.exr", "--frames", "1005-1006", "--json")
    assert code == 0, err
    assert any(n.startswith("clean plate from frames 1001,1002,1003,1004,1005,1006:") for n in summary_of(out)["notes"])
    for frame in (1005, 1006):
        chunk, whole = (spec_of(tmp_path / d / f"m.{frame}.exr") for d in ("chunk", "on"))
        assert chunk.getattribute("vfxmatte:clean_plate") == whole.getattribute("vfxmatte:clean_plate")
        chunk_alpha, whole_alpha = (pixels_of(tmp_path / d / f"m.{frame}.exr")[..., 3] for d in ("chunk", "on"))
        np.testing.assert_array_equal(chunk_alpha, whole_alpha)


def test_a_panning_shot_is_matted_with_a_tracked_clean_plate(
    tmp_path: Path, cli: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The camera pans over a detailed background while a subject crosses: the run tracks the
    samples into one plate, places the frames between them by their own features, clears only
    background, and a chunk of the shot gives the whole run's frames."""
    from scipy import ndimage

    from vfxmatte import cleanplate

    # Four samples of seven frames, so that three are placed between samples (the default is 12).
    monkeypatch.setattr(cleanplate, "SETTINGS", cleanplate.CleanPlateSettings(samples=4))
    rng = np.random.default_rng(5)
    height, width, step = 120, 200, 8
    texture = ndimage.gaussian_filter(rng.random((height, width + step * 8, 3)), (1.2, 1.2, 0))
    scene = (0.3 * (texture - texture.min()) / (texture.max() - texture.min())).astype(np.float32)
    boxes = {}
    (tmp_path / "in").mkdir()
    for i, frame in enumerate(range(1001, 1008)):
        box = (slice(30, 100), slice(20 + 14 * i, 50 + 14 * i))
        boxes[frame] = box

        def values(img: np.ndarray, i: int = i, box: tuple[slice, slice] = box) -> None:
            img[:] = scene[:, step * i : step * i + width] + rng.normal(0.0, 0.003, img.shape).astype(np.float32)
            img[box] = (0.9, 0.7, 0.2)

        write_plate(tmp_path / "in" / f"plate.{frame}.exr", size=(width, height), values=values)
    pattern = tmp_path / "in" / "plate.####.exr"
    code, out, err = cli("matte", pattern, "-o", tmp_path / "on" / "m.####.exr", "--json")
    assert code == 0, err
    summary = summary_of(out)
    note = "clean plate tracked over a moving camera from frames 1001,1003,1005,1007:"
    assert any(n.startswith(note) for n in summary["notes"]), summary["notes"]
    assert summary["warnings"] == [], summary["warnings"]
    code, out, err = cli("matte", pattern, "-o", tmp_path / "off" / "m.####.exr", "--clean-plate", "off")
    assert code == 0, err
    cleared = 0.0
    for frame, (rows, cols) in boxes.items():
        share = spec_of(tmp_path / "on" / f"m.{frame}.exr").getattribute("vfxmatte:clean_plate")
        assert 0.1 < float(share) <= 1.0, (frame, share)  # the frames between samples too
        cleared += background_cleared(tmp_path, frame, rows, cols)
    assert cleared > 1.0, cleared
    # A chunk holding a frame between samples gathers the same plate and places it the same way.
    pipeline._PLATES.clear()
    code, out, err = cli("matte", pattern, "-o", tmp_path / "chunk" / "m.####.exr", "--frames", "1004", "--json")
    assert code == 0, err
    assert any(n.startswith(note) for n in summary_of(out)["notes"])
    chunk, whole = (pixels_of(tmp_path / d / "m.1004.exr")[..., 3] for d in ("chunk", "on"))
    np.testing.assert_array_equal(chunk, whole)


def test_chunks_in_one_process_gather_the_clean_plate_once(
    tmp_path: Path, cli: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chunks of a flow run one after another in one process: the second gets the first's
    plate without reading the samples again, and a changed sample file gathers afresh."""
    from vfxmatte import cleanplate

    gathered: list[int] = []
    real = cleanplate.gather

    def counting(*args: Any, **kwargs: Any) -> Any:
        gathered.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(cleanplate, "gather", counting)
    pipeline._PLATES.clear()
    rng = np.random.default_rng(3)
    still = (rng.random((64, 96, 3)) * 0.3).astype(np.float32)
    (tmp_path / "in").mkdir()
    for i, frame in enumerate(range(1001, 1007)):

        def values(img: np.ndarray, i: int = i) -> None:
            img[:] = still + rng.normal(0.0, 0.004, still.shape).astype(np.float32)
            img[14:50, 6 + 14 * i : 30 + 14 * i] = (0.9, 0.7, 0.2)

        write_plate(tmp_path / "in" / f"plate.{frame}.exr", values=values)
    pattern = tmp_path / "in" / "plate.####.exr"
    notes = []
    for chunk in ("1001-1003", "1004-1006"):
        code, out, err = cli("matte", pattern, "-o", tmp_path / "a" / "m.####.exr", "--frames", chunk, "--json")
        assert code == 0, err
        notes.append(summary_of(out)["notes"])
    assert len(gathered) == 1 and notes[0] == notes[1] and notes[0][0].startswith("clean plate from frames 1001,")
    pipeline._PLATES.clear()  # another process: gathered afresh, the same frames
    code, _, err = cli("matte", pattern, "-o", tmp_path / "b" / "m.####.exr", "--frames", "1004-1006")
    assert code == 0, err and len(gathered) == 2
    for frame in (1004, 1005, 1006):
        np.testing.assert_array_equal(
            pixels_of(tmp_path / "a" / f"m.{frame}.exr"), pixels_of(tmp_path / "b" / f"m.{frame}.exr")
        )
    # A sample rewritten since (a new version of the plate): the plate is gathered again.
    stat = os.stat(tmp_path / "in" / "plate.1002.exr")
    os.utime(tmp_path / "in" / "plate.1002.exr", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    code, _, err = cli("matte", pattern, "-o", tmp_path / "c" / "m.####.exr", "--frames", "1004")
    assert code == 0, err
    assert len(gathered) == 3


def test_same_seed_is_bit_identical_other_seed_differs(
    matted: tuple[Path, Path, dict[str, Any]], tmp_path: Path, cli: Runner
) -> None:
    in_dir, _, _ = matted
    # Without the salient-object prior the LR ensemble's samples decide the matte: the seed shows.
    # (With the prior, the trimap-free matte is the prior's core plus its solved edge band, which no
    # seed changes; hr.prior_band_trimap.)
    runs = {"first": "3", "again": "3", "other": "8"}
    for name, seed in runs.items():
        code, _, err = cli(
            "matte", in_dir / "plate.####.exr", "-o", tmp_path / name / "m.####.exr", "--seed", seed,
            "--frames", "1002", "--prior", "none",
        )
        assert code == 0, err
    first, again, other = (pixels_of(tmp_path / n / "m.1002.exr") for n in runs)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first[..., 3], other[..., 3])
    # uncertainty.Y is the estimated error of the matte (vfxmatte.uncertainty): the fit gave the seed
    # ensemble's spread no weight, so it follows the matte, not the seed; it stays a map in [0, 1].
    assert 0.0 <= float(other[..., 4].min()) and float(other[..., 4].max()) <= 1.0
    assert spec_of(tmp_path / "other" / "m.1002.exr").getattribute("vfxmatte:seed") == 8


def test_resume_skip_refuse_and_overwrite(
    matted: tuple[Path, Path, dict[str, Any]], tmp_path: Path, cli: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_dir, out_dir, _ = matted
    pattern = in_dir / "plate.####.exr"
    shutil.copytree(out_dir, tmp_path / "out")
    out = tmp_path / "out" / "plate.####.exr"
    before = {f: (tmp_path / "out" / f"plate.{f}.exr").read_bytes() for f in FRAMES}

    code, stdout, err = cli("matte", pattern, "-o", out, "--json")
    assert code == 0, err
    summary = summary_of(stdout)
    assert summary["frames"]["skipped"] == list(FRAMES)
    assert summary["frames"]["written"] == []
    assert {f: (tmp_path / "out" / f"plate.{f}.exr").read_bytes() for f in FRAMES} == before

    code, stdout, err = cli("matte", pattern, "-o", out, "--seed", "5")
    assert code == 2
    assert_one_line_error(err, "--overwrite", "plate.1001.exr")
    assert {f: (tmp_path / "out" / f"plate.{f}.exr").read_bytes() for f in FRAMES} == before

    # The same parameters from another build of the code (an upgrade mid-shot, a farm node on an
    # older install) are not skipped as done: the shot would mix two versions of the algorithm.
    header = json.loads(spec_of(tmp_path / "out" / "plate.1001.exr").getattribute("vfxmatte:params"))
    assert header["build"] == config.code_build()
    monkeypatch.setattr(config, "code_build", lambda: "0.1.0+000000000000")
    code, stdout, err = cli("matte", pattern, "-o", out)
    assert code == 2
    assert_one_line_error(err, "another vfxmatte build", "--overwrite")
    assert {f: (tmp_path / "out" / f"plate.{f}.exr").read_bytes() for f in FRAMES} == before
    monkeypatch.undo()

    # Only the frames asked for are checked and redone.
    code, stdout, err = cli("matte", pattern, "-o", out, "--seed", "5", "--overwrite", "--frames", "1003", "--json")
    assert code == 0, err
    assert summary_of(stdout)["frames"]["written"] == [1003]
    assert spec_of(tmp_path / "out" / "plate.1003.exr").getattribute("vfxmatte:seed") == 5
    assert (tmp_path / "out" / "plate.1003.exr").read_bytes() != before[1003]
    assert (tmp_path / "out" / "plate.1001.exr").read_bytes() == before[1001]


def test_single_file_output_resumes(tmp_path: Path, cli: Runner) -> None:
    make_sequence(tmp_path, (1001,))
    single_in, single_out = tmp_path / "plate.1001.exr", tmp_path / "matte.exr"
    assert cli("matte", single_in, "-o", single_out)[0] == 0
    assert tuple(spec_of(single_out).channelnames) == OUT_CHANNELS
    code, stdout, err = cli("matte", single_in, "-o", single_out, "--json")
    assert code == 0, err
    assert summary_of(stdout)["frames"]["skipped"] == [1001]


def test_output_over_input_refused(tmp_path: Path, cli: Runner) -> None:
    pattern = make_sequence(tmp_path / "in")
    before = {p.name: p.read_bytes() for p in (tmp_path / "in").iterdir()}
    for target in (pattern, tmp_path / "in", f"{tmp_path / 'in'}{os.sep}"):
        code, _, err = cli("matte", pattern, "-o", target)
        assert code == 2
        assert_one_line_error(err, "overwrite an input")
    assert {p.name: p.read_bytes() for p in (tmp_path / "in").iterdir()} == before


# -- frames that fail --------------------------------------------------------------------------


def test_missing_frames_and_resolution_change(tmp_path: Path, cli: Runner) -> None:
    # 1002 missing inside the shot, 1003 another resolution, 1005 past the end of --frames.
    pattern = make_sequence(tmp_path / "in", (1001, 1003, 1004))
    write_plate(tmp_path / "in" / "plate.1003.exr", size=(80, 64))
    out = tmp_path / "out" / "plate.####.exr"
    code, stdout, err = cli("matte", pattern, "-o", out)
    assert code == 1
    assert "1 written" not in stdout and "2 written" in stdout and "2 failed" in stdout
    assert "note: missing on disk: frames 1002" in stdout
    lines = err.splitlines()
    assert [line.split(":")[0] for line in lines] == ["error"] * 2, err
    assert "frame 1002" in lines[0] and "missing" in lines[0]
    assert "frame 1003" in lines[1] and "plate.1003.exr" in lines[1] and "80x64" in lines[1]
    assert output_frames(tmp_path / "out") == [1001, 1004]

    code, stdout, _ = cli("matte", pattern, "-o", out, "--frames", "1001-1005", "--json")
    assert code == 1
    summary = summary_of(stdout)
    assert summary["frames"]["skipped"] == [1001, 1004]  # resumed: same parameters
    assert summary["frames"]["written"] == []
    assert [f["frame"] for f in summary["frames"]["failed"]] == [1002, 1003, 1005]
    assert summary["notes"] == [
        "missing on disk: frames 1002,1005",
        # The frame of another size is left out of the clean plate too (vfxmatte.cleanplate).
        "no clean plate: 2 frame(s) of the shot's size to gather from, at least 3 needed",
    ]


def test_damaged_frame_in_the_middle(shared_data: Path, tmp_path: Path, cli: Runner) -> None:
    pattern = make_sequence(tmp_path / "in")
    shutil.copy(shared_data / "exr/Damaged/autofuzz_141647077.exr", tmp_path / "in" / "plate.1002.exr")
    code, stdout, err = cli("matte", pattern, "-o", tmp_path / "out" / "plate.####.exr")
    assert code == 1
    assert output_frames(tmp_path / "out") == [1001, 1003]
    assert_one_line_error(err, "1002", "plate.1002.exr")
    assert "1 failed" in stdout


def test_hdr_plate_keeps_highlights(tmp_path: Path, cli: Runner) -> None:
    def bright(img: np.ndarray) -> None:
        img[16:48, 32:64] = (8.0, 6.0, 4.0)  # scene-linear highlights well above 1

    write_plate(tmp_path / "hdr.1001.exr", values=bright)
    code, _, err = cli("matte", tmp_path / "hdr.1001.exr", "-o", f"{tmp_path / 'out'}{os.sep}")
    assert code == 0, err
    px = pixels_of(tmp_path / "out" / "hdr.1001.exr")
    fg = px[..., :3] / np.maximum(px[..., 3], 1e-3)[..., None]
    assert float(fg[20:40, 40:56, 0].mean()) > 4.0  # not clipped to 1 where the matte is soft


def test_nan_inf_plate_gives_finite_matte(tmp_path: Path, cli: Runner) -> None:
    def poison(img: np.ndarray) -> None:
        img[0, :8] = np.nan
        img[1, :8] = np.inf
        img[2, :8] = -np.inf
        img[3, :8] = -2.5
        img[4, :8] = 1e6
        img[20:30, 40:50] = np.nan

    write_plate(tmp_path / "bad.1001.exr", values=poison, fmt="float")
    code, stdout, err = cli("matte", tmp_path / "bad.1001.exr", "-o", f"{tmp_path / 'out'}{os.sep}", "--json")
    assert code == 0, err
    summary = summary_of(stdout)
    assert any("NaN/Inf" in w for w in summary["warnings"])
    assert "warning:" in err and "NaN/Inf" in err
    px = pixels_of(tmp_path / "out" / "bad.1001.exr")
    assert np.isfinite(px).all()
    assert px[..., 3].min() >= 0.0 and px[..., 3].max() <= 1.0
    assert np.isfinite(summary["uncertainty"]["1001"])


# -- unusable inputs: the process itself ---------------------------------------------------------


def test_zero_byte_input_exits_2_with_one_line(tmp_path: Path, tiny_model_dir: Path, cli: Runner) -> None:
    empty = tmp_path / "empty.exr"
    empty.write_bytes(b"")
    out = str(tmp_path / "out") + os.sep
    code, _, err = run_cli("matte", str(empty), "-o", out, "--model", str(tiny_model_dir), *FAST)
    assert code == 2
    assert_one_line_error(err, str(empty), "empty")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    # --debug adds where it was raised (in-process: the same code path, without the start-up cost).
    code, _, err = cli("matte", empty, "-o", out, "--debug")
    assert code == 2
    assert "Traceback" in err and "FrameError" in err and "file is empty" in err


def test_unreadable_input_traceback_only_when_debugging(tmp_path: Path, cli: Runner) -> None:
    missing = str(tmp_path / "nope.####.exr")
    code, _, err = cli("--debug", "matte", missing, "-o", str(tmp_path / "o") + os.sep)
    assert code == 2
    assert "Traceback" in err and "InputError" in err
    code, _, err = cli("matte", missing, "-o", str(tmp_path / "o") + os.sep)
    assert code == 2
    assert_one_line_error(err, missing, "no frames")


def test_nonexistent_and_bad_arguments(tmp_path: Path, cli: Runner) -> None:
    pattern = make_sequence(tmp_path / "in", (1001,))
    cases: list[tuple[list[Any], str]] = [
        (["matte", tmp_path / "missing.exr", "-o", tmp_path / "o" / "m.####.exr"], "does not exist"),
        (["matte", tmp_path / "none.####.exr", "-o", tmp_path / "o" / "m.####.exr"], "no frames"),
        (["matte", pattern, "-o", tmp_path / "o" / "m.####.png"], ".exr"),
        (["matte", pattern, "-o", tmp_path / "o" / "m.####.exr", "--frames", "10-1"], "--frames"),
        (["matte", pattern, "-o", tmp_path / "o" / "m.####.exr", "--frames", "abc"], "--frames"),
        (["matte", pattern, "-o", tmp_path / "o" / "m.####.exr", "--frames", "2000-2010"], "none of the requested"),
        (["matte", pattern, "-o", tmp_path / "o" / "m.####.exr", "--seed", str(2**40)], "--seed"),
        (["matte", pattern, "-o", tmp_path / "o" / "m.####.exr", "--colorspace", "NoSuchSpace"], "NoSuchSpace"),
        (["matte", pattern, "-o", tmp_path / "o" / "m.####.exr", "--no-such-flag"], "unrecognized"),
        (["info", tmp_path / "missing.####.exr"], "no frames"),
    ]
    for args, needle in cases:
        code, _, err = cli(*args)
        assert code == 2, (args, err)
        assert_one_line_error(err, needle)
    assert not (tmp_path / "o").exists()


def test_debug_flag_after_the_subcommand(tmp_path: Path, cli: Runner) -> None:
    # DESIGN §4 lists --debug among `matte`'s options; it must not be a usage error there.
    code, _, err = cli("matte", tmp_path / "nope.####.exr", "-o", tmp_path / "o" / "m.####.exr", "--debug")
    assert code == 2
    assert "unrecognized" not in err
    assert "Traceback" in err and "no frames" in err


# -- movies -------------------------------------------------------------------------------------


def test_rotated_movie(shared_data: Path, tmp_path: Path, cli: Runner) -> None:
    movie = shared_data / "video" / "video_rotation_90.mp4"
    code, stdout, err = cli("matte", movie, "-o", f"{tmp_path / 'a'}{os.sep}", "--json")
    assert code == 0, err
    assert summary_of(stdout)["frames"]["written"] == [1001]
    path = tmp_path / "a" / "video_rotation_90.1001.exr"
    spec = spec_of(path)
    assert (spec.x, spec.y, spec.width, spec.height) == (0, 0, 60, 100)  # coded 100x60, shown upright
    assert (spec.full_x, spec.full_y, spec.full_width, spec.full_height) == (0, 0, 60, 100)
    assert tuple(spec.channelnames) == OUT_CHANNELS
    assert tuple(spec.getattribute("FramesPerSecond")) == (24, 1)

    # Numbered from --start-frame; requested frames past the movie's end are failures, not silence.
    code, stdout, err = cli(
        "matte", movie, "-o", tmp_path / "b" / "clip.####.exr", "--start-frame", "1", "--frames", "1-3", "--json"
    )
    assert code == 1, err
    summary = summary_of(stdout)
    assert summary["frames"]["written"] == [1]
    assert [f["frame"] for f in summary["frames"]["failed"]] == [2, 3]
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["clip.0001.exr"]


def test_broken_movie_frame_range(shared_data: Path, tmp_path: Path, cli: Runner) -> None:
    movie = shared_data / "video" / "no_timescale.mp4"  # decodes 8 frames, then fails
    code, stdout, err = cli("matte", movie, "-o", f"{tmp_path}{os.sep}", "--frames", "1001-1003", "--json")
    assert code == 0, err
    assert summary_of(stdout)["frames"]["written"] == [1001, 1002, 1003]
    assert output_frames(tmp_path) == [1001, 1002, 1003]


# -- info ---------------------------------------------------------------------------------------


def test_info_lists_gaps(tmp_path: Path, cli: Runner) -> None:
    pattern = make_sequence(tmp_path, (1001, 1002, 1005, 1007))
    code, stdout, err = cli("info", pattern, "--json")
    assert code == 0, err
    record = summary_of(stdout)
    assert record["kind"] == "sequence"
    assert record["frames"] == "1001-1002,1005,1007"
    assert record["count"] == 4
    assert record["gaps"] == ["1003-1004", "1006"]
    part = record["parts"][0]
    assert part["data_window"] == list(DATA_WINDOW)
    assert part["display_window"] == list(DISPLAY_WINDOW)
    assert part["channels"] == ["R", "G", "B"]
    assert part["pixel_aspect"] == pytest.approx(2.0)

    code, stdout, _ = cli("info", pattern)
    assert code == 0
    assert "1003-1004" in stdout and "1006" in stdout


def test_info_movie_and_damaged(shared_data: Path, cli: Runner) -> None:
    code, stdout, _ = cli("info", shared_data / "video" / "video_rotation_90.mp4", "--json")
    assert code == 0
    record = summary_of(stdout)
    assert (record["kind"], record["width"], record["height"], record["rotation"]) == ("movie", 60, 100, 90)
    damaged = shared_data / "exr" / "Damaged" / "memory_DOS_1.exr"
    code, _, err = cli("info", damaged)
    assert code == 2
    assert_one_line_error(err, str(damaged))
