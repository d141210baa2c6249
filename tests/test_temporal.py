"""Temporal modes (off / shared), chunked and resumed runs, and the removed prev-latent, on 64 px frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
import torch
from conftest import run_cli
from scipy import ndimage

from vfxmatte.config import MatteParams
from vfxmatte.errors import UsageError
from vfxmatte.io.frames import Plate, Window
from vfxmatte.model.core import MattingModel, load_model
from vfxmatte.pipeline import matte_plate, matte_shot
from vfxmatte.sampling import make_scheduler, noised_start
from vfxmatte.temporal import TemporalState, frame_seed

FAST = {"steps": 2, "seeds": 2, "lr_size": 64, "hr": "off"}


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> MattingModel:
    return load_model(tiny_model_dir)


def _frame(index: int, size: int = 64) -> np.ndarray:
    """A soft disc moving right over a textured background, linear RGB."""
    rng = np.random.default_rng(3)
    bg = ndimage.gaussian_filter(rng.random((size, size, 3)), (2, 2, 0)).astype(np.float32) * 0.4
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    disc = np.clip(12 - np.hypot(xs - 20 - 3 * index, ys - 32), 0, 1)[..., None]
    return (bg * (1 - disc) + np.array([0.9, 0.6, 0.2], np.float32) * disc).astype(np.float32)


def _plate(index: int, frame: int | None = None) -> Plate:
    window = Window(0, 0, 64, 64)
    return Plate(_frame(index), window, window, "mem", 1001 + index if frame is None else frame, "ACES - ACEScg")


def _sequence(folder: Path, count: int) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        path = str(folder / f"shot.{1001 + i:04d}.exr")
        out = oiio.ImageOutput.create(path)
        assert out is not None and out.open(path, oiio.ImageSpec(64, 64, 3, "half"))
        assert out.write_image(_frame(i)) and out.close()
    return str(folder / "shot.####.exr")


def _alpha(path: Path) -> np.ndarray:
    buf = oiio.ImageBuf(str(path))
    return np.asarray(buf.get_pixels(oiio.FLOAT))[..., 3]


@pytest.mark.parametrize("mode", ["off", "shared"])
def test_same_seed_same_frame_same_matte(model: MattingModel, mode: str) -> None:
    params = MatteParams(**FAST, seed=7, temporal=mode)  # type: ignore[arg-type]
    runs = []
    for _ in range(2):
        state = TemporalState(mode=params.temporal, seed=7)  # type: ignore[arg-type]
        runs.append([matte_plate(model, _plate(i), params, temporal=state).alpha for i in range(2)])
    for first, second in zip(*runs, strict=True):
        assert np.array_equal(first, second)


def test_shared_noise_is_identical_across_frames_and_off_is_not(model: MattingModel) -> None:
    shape = (2, 4, 16, 16)
    shared = TemporalState(mode="shared", seed=3)
    off = TemporalState(mode="off", seed=3)
    assert torch.equal(shared.noise(1001, shape), shared.noise(1050, shape))
    assert not torch.equal(off.noise(1001, shape), off.noise(1002, shape))
    assert torch.equal(off.noise(1001, shape), TemporalState(mode="off", seed=3).noise(1001, shape))
    assert frame_seed(3, 1001) != frame_seed(4, 1001)
    # the same picture at two frame numbers: shared gives one matte, off gives two
    params = {"shared": MatteParams(**FAST, temporal="shared"), "off": MatteParams(**FAST, temporal="off")}
    a, b = (matte_plate(model, _plate(0, frame), params["shared"]).alpha for frame in (1001, 1002))
    assert np.array_equal(a, b)
    a, b = (matte_plate(model, _plate(0, frame), params["off"]).alpha for frame in (1001, 1002))
    assert not np.array_equal(a, b)


def test_shared_keeps_the_previous_matte_for_its_successor_only(model: MattingModel) -> None:
    """The prior-jump check follows the predecessor's LR matte; off keeps nothing."""
    shared, off = TemporalState(mode="shared"), TemporalState(mode="off")
    for state, mode in ((shared, "shared"), (off, "off")):
        matte_plate(model, _plate(0), MatteParams(**FAST, temporal=mode), temporal=state)
    assert shared.frame == 1001 and shared.matte is not None and shared.matte.shape == (64, 64)
    assert shared.previous_matte(1002, (64, 64)) is shared.matte
    assert shared.previous_matte(1003, (64, 64)) is None  # 1002 was not matted just before
    assert shared.previous_matte(1002, (32, 32)) is None  # another LR size
    assert off.frame is None and off.previous_matte(1002, (64, 64)) is None


def test_the_previous_matte_is_moved_with_the_picture_and_followed_two_frames_at_most() -> None:
    """A moving subject is compared (and followed) where it is now: the predecessor's matte moved by
    optical flow.  A prior that disagrees three frames in a row is taken (no lock-in on a stale matte)."""
    state = TemporalState(mode="shared")

    def picture(index: int) -> np.ndarray:
        return np.asarray(np.round(np.clip(_frame(index), 0, 1) * 255), dtype=np.uint8)

    def disc(index: int) -> np.ndarray:
        ys, xs = np.mgrid[0:64, 0:64].astype(np.float32)
        return np.clip(12 - np.hypot(xs - 20 - 3 * index, ys - 32), 0, 1).astype(np.float32)

    def iou(a: np.ndarray, b: np.ndarray) -> float:
        return float(((a > 0.5) & (b > 0.5)).sum() / ((a > 0.5) | (b > 0.5)).sum())

    state.update(1001, disc(0), picture(0))
    moved = state.previous_matte(1003 - 1, (64, 64), picture(2))  # two frames' motion (6 px) at once
    assert moved is not None and iou(moved, disc(2)) > 0.85 and iou(disc(0), disc(2)) < 0.6
    assert state.previous_matte(1002, (64, 64)) is state.matte  # without a picture: as it was
    assert [state.follow(True), state.follow(True), state.follow(True)] == [True, True, False]
    assert state.followed == 0 and state.follow(True) and not state.follow(False) and state.followed == 0


def test_noised_start_runs_the_strength_fraction_of_the_schedule() -> None:
    scheduler = make_scheduler()
    scheduler.set_timesteps(10)
    clean, noise = torch.zeros(1, 4, 8, 8), torch.ones(1, 4, 8, 8)
    for strength, count in ((1.0, 10), (0.5, 5), (0.3, 3), (0.01, 1)):
        latents, timesteps = noised_start(scheduler, clean, noise, strength)
        assert len(timesteps) == count and int(timesteps[0]) == int(scheduler.timesteps[10 - count])
        alpha_bar = float(scheduler.alphas_cumprod[int(timesteps[0])])
        assert torch.allclose(latents, torch.full_like(latents, (1 - alpha_bar) ** 0.5))


@pytest.mark.parametrize(("mode", "window"), [("off", 0), ("shared", 0), ("shared", 1)])
def test_chunked_and_resumed_runs_match_a_single_run(
    model: MattingModel, tmp_path: Path, mode: str, window: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vfxmatte import steady

    steadied: list[int] = []
    real = steady.steady
    monkeypatch.setattr(steady, "steady", lambda own, *a: steadied.append(own.frame) or real(own, *a))
    shot = _sequence(tmp_path / "in", 4)
    # prior_jump_iou 0: a chunk's first frame has no previous matte for the prior-jump check, the
    # one documented difference (docs/VIDEO.md); the tiny model's grey mattes would trip it.
    # A steadied prior (window 1) reads the frames beside a chunk, so it matches too.
    params = MatteParams(**FAST, temporal=mode, prior_jump_iou=0.0, prior_window=window)
    single = matte_shot(shot, str(tmp_path / "single" / "m.####.exr"), params, model=model)
    # The synthetic shot is locked off: every run gathers the same clean plate from the whole input.
    plate_note = [n for n in single.notes if n.startswith("clean plate from frames 1001,1002,1003,1004:")]
    assert single.exit_code == 0 and single.notes == plate_note and len(plate_note) == 1
    assert steadied == ([1001, 1002, 1003, 1004] if window else [])  # each frame's prior steadied once
    summaries = [
        matte_shot(shot, str(tmp_path / "chunks" / "m.####.exr"), params, frames=chunk, model=model)
        for chunk in ([1001, 1002], [1003, 1004])
    ]
    assert [s.frames("written") for s in summaries] == [[1001, 1002], [1003, 1004]]
    assert summaries[1].notes == plate_note  # nothing is matted for state only; the same plate
    resumed = tmp_path / "resumed" / "m.####.exr"
    matte_shot(shot, str(resumed), params, frames=[1001, 1002], model=model)
    again = matte_shot(shot, str(resumed), params, model=model)
    assert again.frames("skipped") == [1001, 1002] and again.frames("written") == [1003, 1004]
    for frame in range(1001, 1005):
        a = _alpha(tmp_path / "single" / f"m.{frame}.exr")
        for run in ("chunks", "resumed"):
            assert np.array_equal(a, _alpha(tmp_path / run / f"m.{frame}.exr")), (run, frame)
    header = oiio.ImageBuf(str(resumed).replace("####", "1003")).spec().get_string_attribute("vfxmatte:params")
    record = json.loads(header)
    assert record["temporal"] == mode and not {"temporal_strength", "temporal_flow"} & set(record)
    assert record["prior_window"] == window


def test_bad_and_removed_temporal_modes_are_one_line_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="^--temporal sideways: choose off or shared$"):
        MatteParams(temporal="sideways")
    with pytest.raises(UsageError, match="^--temporal prev-latent: removed: .*use shared or off$"):
        MatteParams(temporal="prev-latent")
    shot = _sequence(tmp_path / "in", 1)
    code, out, err = run_cli("matte", shot, "-o", str(tmp_path / "out") + "/", "--temporal", "prev-latent")
    assert code == 2 and out == "" and not (tmp_path / "out").exists()
    assert err.splitlines() == [
        "vfxmatte: error: --temporal prev-latent: removed: it made mattes worse than off on a moving shot "
        "(docs/VIDEO.md); use shared or off"
    ]
